"""A Poisson autoencoder whose smooth latent trajectories GNOCCHI's diffusion can generate.

Spike counts (batch, neurons, bins) → latents (batch, latent_dim, bins) → firing rates, trained
on the Poisson likelihood of the counts (as LDNS, Kapoor et al. 2024, does). Diffusing over these
latents instead of over smoothed spikes means a sample *is* a rate (smooth, non-negative) and
spikes come from Poisson sampling; the diffusion model no longer has to reproduce single-trial
spike noise, which it otherwise does (a conditional mean then needs many samples to be smooth).

What keeps the latents a description of the rates rather than of the noise:
- a bottleneck per bin (``latent_dim`` ≪ neurons) and a per-bin readout, so every bit of
  temporal structure in the rates has to pass through the latents;
- coordinated dropout (Keshtkaran & Pandarinath 2019, used by LFADS): a random fraction of the
  input counts is zeroed and the likelihood is scored only on those entries, so copying a spike
  from input to output earns nothing;
- a penalty on the latents' squared bin-to-bin change, relative to their variance.

The encoder reads sqrt counts standardised per neuron (the statistics are buffers, saved with the
weights); after training, the latents are standardised per channel (also buffers), so the
diffusion sees zero-mean, unit-variance channels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LOG_RATE_MAX = 10.0  # clamp on the log expected count per bin (e^10 spikes per bin is already absurd)


def _block(channels: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.GroupNorm(math.gcd(8, channels), channels), nn.SiLU(),
                         nn.Conv1d(channels, channels, kernel, padding=kernel // 2))


class PoissonAutoencoder(nn.Module):
    """Counts → standardised latents → log expected counts per bin."""

    def __init__(self, n_neurons: int, latent_dim: int = 16, channels: int = 64, kernel: int = 5,
                 coordinated_dropout: float = 0.3, smoothness: float = 0.1):
        super().__init__()
        self.coordinated_dropout = coordinated_dropout
        self.smoothness = smoothness
        self.register_buffer("input_mean", torch.zeros(n_neurons, 1))
        self.register_buffer("input_std", torch.ones(n_neurons, 1))
        self.register_buffer("latent_mean", torch.zeros(latent_dim, 1))
        self.register_buffer("latent_std", torch.ones(latent_dim, 1))
        self.inp = nn.Conv1d(n_neurons, channels, 1)
        self.blocks = nn.ModuleList([_block(channels, kernel) for _ in range(3)])
        self.to_latent = nn.Sequential(nn.GroupNorm(math.gcd(8, channels), channels), nn.SiLU(),
                                       nn.Conv1d(channels, latent_dim, 1))
        self.readout = nn.Sequential(nn.Conv1d(latent_dim, channels, 1), nn.SiLU(), nn.Conv1d(channels, n_neurons, 1))

    # ------------------------------------------------------------------ fitting helpers
    @torch.no_grad()
    def set_input_scaling(self, counts: torch.Tensor) -> None:
        """Per-neuron mean/std of sqrt counts (batch, neurons, bins) of the training trials; the
        readout starts at each neuron's mean log count, so training starts from the right rates."""
        x = counts.clamp(min=0).sqrt().transpose(0, 1).reshape(counts.shape[1], -1)
        self.input_mean.copy_(x.mean(dim=1, keepdim=True))
        self.input_std.copy_(x.std(dim=1, keepdim=True).clamp(min=1e-3))
        mean_count = counts.clamp(min=0).mean(dim=(0, 2))
        self.readout[-1].bias.copy_(mean_count.clamp(min=1e-3).log())

    @torch.no_grad()
    def set_latent_scaling(self, counts: torch.Tensor, batch: int = 256) -> None:
        """Per-channel mean/std of the raw latents of the training trials, so `encode` is standardised."""
        raw = torch.cat([self._raw_latents(chunk) for chunk in counts.split(batch)])
        flat = raw.transpose(0, 1).reshape(raw.shape[1], -1)
        self.latent_mean.copy_(flat.mean(dim=1, keepdim=True))
        self.latent_std.copy_(flat.std(dim=1, keepdim=True).clamp(min=1e-6))

    # ------------------------------------------------------------------ the maps
    def _raw_latents(self, counts: torch.Tensor) -> torch.Tensor:
        h = self.inp((counts.clamp(min=0).sqrt() - self.input_mean) / self.input_std)
        for block in self.blocks:
            h = h + block(h)
        return self.to_latent(h)

    def encode(self, counts: torch.Tensor) -> torch.Tensor:
        """Counts (batch, neurons, bins) → standardised latents (batch, latent_dim, bins)."""
        return (self._raw_latents(counts) - self.latent_mean) / self.latent_std

    def log_counts(self, latents: torch.Tensor) -> torch.Tensor:
        """Standardised latents → log expected spike count per bin (batch, neurons, bins)."""
        raw = latents * self.latent_std + self.latent_mean
        return self.readout(raw).clamp(max=LOG_RATE_MAX)

    # ------------------------------------------------------------------ training
    def losses(self, batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Poisson NLL of held-back counts (coordinated dropout) + latent smoothness.

        Validation drops counts too (the trainer fixes its noise), so the best checkpoint is the
        one that predicts unseen counts best, not the one that copies its input best."""
        counts = batch[0]
        if self.coordinated_dropout > 0:
            keep = self.coordinated_dropout_mask(counts)
            latents = self._raw_latents(counts * keep / (1 - self.coordinated_dropout))
            scored = ~keep
        else:
            latents = self._raw_latents(counts)
            scored = torch.ones_like(counts, dtype=torch.bool)
        log_mean = self.readout(latents).clamp(max=LOG_RATE_MAX)
        nll = F.poisson_nll_loss(log_mean, counts, log_input=True, full=False, reduction="none")
        nll = (nll * scored).sum() / scored.sum().clamp(min=1)
        change = (latents[..., 1:] - latents[..., :-1]).pow(2).mean()
        smooth = change / latents.var().clamp(min=1e-6)
        return {"loss": nll + self.smoothness * smooth, "nll": nll, "smooth": smooth}

    def coordinated_dropout_mask(self, counts: torch.Tensor) -> torch.Tensor:
        return torch.rand_like(counts) >= self.coordinated_dropout
