"""GNOCCHI's two networks: a trial encoder (trial → code) and a code-conditioned denoiser.

Both treat neurons as channels and convolve over time (trials are short, 50–150 bins, and the
activity is smooth after preprocessing), which keeps CPU sampling fast.

The denoiser is a two-level 1-D U-Net. Every residual block is conditioned, as in
InfoDiffusion, by adaptive group norm: GN(h)·(1 + s) + b, where (s, b) come from the
diffusion-step embedding plus a projection of the code. The U-Net's output starts at zero so an
untrained model predicts ε ≈ x_t (right at high noise) rather than garbage. A per-neuron
depthwise path beside the U-Net carries the full-rank noise that its bottleneck cannot.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _groups(channels: int) -> int:
    return math.gcd(8, channels)


class StepEmbedding(nn.Module):
    """Sinusoidal embedding of the diffusion step, then an MLP."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 2), nn.SiLU(), nn.Linear(dim * 2, dim))

    def forward(self, step: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=step.device) / half)
        angles = step.float()[:, None] * freqs[None]
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=-1))


class ResBlock(nn.Module):
    """Conv residual block with adaptive group norm driven by the conditioning vector."""

    def __init__(self, channels_in: int, channels_out: int, cond_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(channels_in), channels_in)
        self.conv1 = nn.Conv1d(channels_in, channels_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(_groups(channels_out), channels_out, affine=False)
        self.film = nn.Linear(cond_dim, 2 * channels_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(channels_out, channels_out, 3, padding=1)
        self.skip = nn.Conv1d(channels_in, channels_out, 1) if channels_in != channels_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(cond)[:, :, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return h + self.skip(x)


def bin_positions(n_bins: int, channels: int, device=None) -> torch.Tensor:
    """Sinusoidal features (channels, bins) of each bin's index, periods from 4 to 256 bins."""
    periods = torch.logspace(math.log10(4), math.log10(256), channels // 2, device=device)
    angles = 2 * math.pi * torch.arange(n_bins, device=device, dtype=torch.float32)[None] / periods[:, None]
    return torch.cat([angles.sin(), angles.cos()])


class Denoiser(nn.Module):
    """Output (v or ε) over (batch, channels, bins), conditioned on step and code.

    ``positional`` channels of sinusoidal bin-index features join the input: the code and step
    condition every bin alike (FiLM), so without them the network would have only the padding at
    the trial's edges to tell *when* it is, and at high noise, where the input holds nothing, could
    not turn a code into a time-varying trial.
    """

    def __init__(self, n_neurons: int, code_dim: int, channels: int = 64, cond_dim: int = 128,
                 dropout: float = 0.0, positional: int = 0):
        super().__init__()
        c = channels
        self.positional = positional
        self.step_embed = StepEmbedding(cond_dim)
        self.code_embed = nn.Sequential(nn.Linear(code_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        # the "no code" embedding that classifier-free guidance trains and samples against
        self.null_code = nn.Parameter(torch.zeros(cond_dim))
        self.inp = nn.Conv1d(n_neurons + positional, c, 3, padding=1)
        self.down1 = ResBlock(c, c, cond_dim, dropout)
        self.downsample = nn.Conv1d(c, c, 3, stride=2, padding=1)
        self.down2 = ResBlock(c, 2 * c, cond_dim, dropout)
        self.mid = ResBlock(2 * c, 2 * c, cond_dim, dropout)
        self.up = ResBlock(3 * c, c, cond_dim, dropout)
        self.out_norm = nn.GroupNorm(_groups(c), c)
        self.out = nn.Conv1d(c, n_neurons, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        # Per-neuron path around the U-Net: the noise is full-rank across neurons, so it cannot
        # pass through a bottleneck narrower than the neuron count. A depthwise temporal filter
        # (identity at init) with a step- and code-dependent gain per neuron carries it.
        self.neuron_filter = nn.Conv1d(n_neurons, n_neurons, 5, padding=2, groups=n_neurons)
        nn.init.zeros_(self.neuron_filter.weight)
        nn.init.zeros_(self.neuron_filter.bias)
        with torch.no_grad():
            self.neuron_filter.weight[:, 0, 2] = 1.0
        self.neuron_gain = nn.Linear(cond_dim, n_neurons)
        nn.init.zeros_(self.neuron_gain.weight)
        nn.init.zeros_(self.neuron_gain.bias)

    def forward(self, x: torch.Tensor, step: torch.Tensor, code: torch.Tensor,
                drop: torch.Tensor | None = None) -> torch.Tensor:
        """``drop`` (batch,) bool: use the null code instead of ``code`` for those trials."""
        code_embedding = self.code_embed(code)
        if drop is not None:
            code_embedding = torch.where(drop[:, None], self.null_code.expand_as(code_embedding), code_embedding)
        cond = F.silu(self.step_embed(step) + code_embedding)
        inp = x
        if self.positional:
            inp = torch.cat([x, bin_positions(x.shape[-1], self.positional, x.device).expand(len(x), -1, -1)], dim=1)
        h1 = self.down1(self.inp(inp), cond)
        h2 = self.mid(self.down2(self.downsample(h1), cond), cond)
        up = F.interpolate(h2, size=h1.shape[-1], mode="nearest")
        h = self.up(torch.cat([up, h1], dim=1), cond)
        gain = 1 + self.neuron_gain(cond)[:, :, None]
        return self.out(F.silu(self.out_norm(h))) + gain * self.neuron_filter(x)


class Encoder(nn.Module):
    """Whole trial (batch, neurons, bins) → deterministic code (batch, code_dim).

    Strided convolutions summarise local dynamics at a quarter of the time resolution; the
    head then reads the whole (aligned) trial, so *when* something happens shapes the code.
    """

    def __init__(self, n_neurons: int, n_bins: int, code_dim: int, channels: int = 64):
        super().__init__()
        c = channels
        self.convs = nn.Sequential(
            nn.Conv1d(n_neurons, c, 5, padding=2), nn.GroupNorm(_groups(c), c), nn.SiLU(),
            nn.Conv1d(c, c, 5, stride=2, padding=2), nn.GroupNorm(_groups(c), c), nn.SiLU(),
            nn.Conv1d(c, c, 5, stride=2, padding=2), nn.GroupNorm(_groups(c), c), nn.SiLU(),
        )
        reduced = math.ceil(math.ceil(n_bins / 2) / 2)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * reduced, 2 * c), nn.SiLU(), nn.Linear(2 * c, code_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(x))
