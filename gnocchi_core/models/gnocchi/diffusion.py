"""Noise schedule and samplers, kept apart from the denoising network (as diffusers does).

Forward process: x_i = sqrt(ᾱ_i)·x0 + sqrt(1−ᾱ_i)·ε, i = 0 … T−1. The samplers take any
callable ``model(x, i)`` (the code is bound in by the caller), so the network never needs to
know how it is sampled. What the network outputs is named by ``prediction`` (as in diffusers):
``"epsilon"`` (ε̂ itself) or ``"v"`` (v = √ᾱ·ε − √(1−ᾱ)·x0, Salimans & Ho 2022), from which
ε̂ = √(1−ᾱ)·x + √ᾱ·v̂ and x̂0 = √ᾱ·x − √(1−ᾱ)·v̂ follow without dividing by √ᾱ — so x̂0 stays
well-conditioned at the noisiest steps, where an ε-network's x̂0 = (x − √(1−ᾱ)·ε̂)/√ᾱ blows up.

- `ddim_sample` (η = 0 by default): deterministic given the initial noise, with any number of
  steps. Fixing the noise makes the sample a smooth function of the code, which latent
  navigation relies on. η > 0 adds DDIM's stochastic term.
- `ddpm_sample`: ancestral sampling over all T steps (the reference the few-step sampler is
  measured against).
Both clip the predicted x0 to ``clip_x0`` (the range seen in training) at every step, which
keeps few-step sampling from overshooting.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

DenoiseModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PREDICTIONS = ("epsilon", "v")


class NoiseSchedule:
    """ᾱ_i for i = 0 … T−1: cosine (Nichol & Dhariwal 2021) or linear β."""

    def __init__(self, steps: int = 1000, kind: str = "cosine", max_beta: float = 0.999):
        if kind == "cosine":
            s = 0.008
            t = torch.linspace(0, steps, steps + 1, dtype=torch.float64) / steps
            f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
            betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
        elif kind == "linear":
            betas = torch.linspace(1e-4 * 1000 / steps, 0.02 * 1000 / steps, steps, dtype=torch.float64)
        else:
            raise ValueError(f"unknown noise schedule '{kind}': choose 'cosine' or 'linear'")
        self.steps = steps
        self.kind = kind
        self.alpha_bar = torch.cumprod(1 - betas, dim=0).float()

    def at(self, i: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """ᾱ at steps ``i`` (batch,), shaped to broadcast against ``like``."""
        a = self.alpha_bar.to(like.device)[i]
        return a.view(-1, *([1] * (like.dim() - 1)))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        a = self.at(i, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def v_target(self, x0: torch.Tensor, noise: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        a = self.at(i, x0)
        return a.sqrt() * noise - (1 - a).sqrt() * x0

    def eps_and_x0(self, x: torch.Tensor, output: torch.Tensor, i: torch.Tensor,
                   prediction: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted noise and clean sample implied by the network's ``output`` at steps ``i``."""
        a = self.at(i, x)
        if prediction == "v":
            return (1 - a).sqrt() * x + a.sqrt() * output, a.sqrt() * x - (1 - a).sqrt() * output
        if prediction == "epsilon":
            return output, (x - (1 - a).sqrt() * output) / a.sqrt()
        raise ValueError(f"unknown prediction type '{prediction}': choose from {PREDICTIONS}")


def timesteps(schedule: NoiseSchedule, steps: int) -> list[int]:
    """``steps`` diffusion indices from T−1 down to 0, evenly spaced ("trailing" spacing)."""
    if not 1 <= steps <= schedule.steps:
        raise ValueError(f"sampling steps must be in 1..{schedule.steps}, got {steps}")
    spaced = torch.linspace(schedule.steps - 1, 0, steps).round().long().tolist()
    return sorted(set(spaced), reverse=True)


@torch.no_grad()
def ddim_sample(model: DenoiseModel, schedule: NoiseSchedule, noise: torch.Tensor, steps: int,
                prediction: str = "epsilon", eta: float = 0.0, clip_x0: float | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """DDIM from pure noise ``x_{T-1} = noise`` to x0 in ``steps`` denoiser calls."""
    x = noise
    seq = timesteps(schedule, steps)
    for k, i in enumerate(seq):
        idx = torch.full((x.shape[0],), i, device=x.device, dtype=torch.long)
        eps, x0 = _denoise(model, schedule, x, idx, prediction, clip_x0)
        if k + 1 == len(seq):
            return x0
        a_prev = schedule.alpha_bar[seq[k + 1]].to(x.device)
        a = schedule.at(idx, x)
        sigma = eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev - sigma ** 2).clamp(min=0).sqrt() * eps
        if eta > 0:
            x = x + sigma * torch.randn(x.shape, generator=generator).to(x.device)
    return x


@torch.no_grad()
def ddpm_sample(model: DenoiseModel, schedule: NoiseSchedule, noise: torch.Tensor,
                prediction: str = "epsilon", clip_x0: float | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Ancestral sampling through all T steps (posterior mean + posterior noise at each step)."""
    x = noise
    alpha_bar = schedule.alpha_bar.to(x.device)
    for i in range(schedule.steps - 1, -1, -1):
        idx = torch.full((x.shape[0],), i, device=x.device, dtype=torch.long)
        _, x0 = _denoise(model, schedule, x, idx, prediction, clip_x0)
        if i == 0:
            return x0
        a, a_prev = alpha_bar[i], alpha_bar[i - 1]
        beta = 1 - a / a_prev
        mean = (a_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - a_prev) * x) / (1 - a)
        var = beta * (1 - a_prev) / (1 - a)
        x = mean + var.sqrt() * torch.randn(x.shape, generator=generator).to(x.device)
    return x


def _denoise(model: DenoiseModel, schedule: NoiseSchedule, x: torch.Tensor, idx: torch.Tensor,
             prediction: str, clip_x0: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(ε̂, x̂0) at one step; with clipping, ε̂ is recomputed so the two stay consistent."""
    eps, x0 = schedule.eps_and_x0(x, model(x, idx), idx, prediction)
    if clip_x0 is not None:
        x0 = x0.clamp(-clip_x0, clip_x0)
        a = schedule.at(idx, x)
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
    return eps, x0
