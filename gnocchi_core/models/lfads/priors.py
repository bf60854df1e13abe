"""LFADS priors, as in lfads-torch: a Gaussian over initial conditions with a learnable mean and a
fixed variance, and an autoregressive AR(1) Gaussian over inferred inputs with learnable time
constants and innovation variances. Each returns the KL term averaged over the batch.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

LOG_2PI = math.log(2 * math.pi)


def _normal_log_prob(x: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    return -0.5 * (LOG_2PI + logvar + (x - mean) ** 2 * torch.exp(-logvar))


class GaussianICPrior(nn.Module):
    """N(mean, variance·I) over initial conditions; the mean is learned, the variance fixed."""

    def __init__(self, dim: int, variance: float, mean: float = 0.0):
        super().__init__()
        self.mean = nn.Parameter(torch.full((dim,), float(mean)))
        self.register_buffer("logvar", torch.full((dim,), math.log(variance)))

    def kl(self, post_mean: Tensor, post_std: Tensor) -> Tensor:
        """KL(N(post_mean, post_std²) ‖ prior), analytic, summed over dimensions, mean over trials."""
        post_var = post_std ** 2
        kl = 0.5 * (self.logvar - torch.log(post_var) + (post_var + (post_mean - self.mean) ** 2)
                    * torch.exp(-self.logvar) - 1.0)
        return kl.sum(-1).mean()

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        z = torch.randn((n, self.mean.shape[0]), generator=generator)
        return self.mean.detach().cpu() + torch.exp(0.5 * self.logvar).cpu() * z


class AutoregressivePrior(nn.Module):
    """AR(1) prior over inferred inputs u (trials, bins, dims), one process per dimension.

    u_0 ~ N(0, σ²/(1 − α²)) (the stationary variance), u_t | u_{t−1} ~ N(α·u_{t−1}, σ²) with
    α = exp(−1/τ). τ (in bins) and the innovation variance σ² are learned (in log space).
    Its mean is 0 at every bin: what `generate` feeds the generator when no inputs are given.
    """

    def __init__(self, dim: int, tau: float, noise_variance: float):
        super().__init__()
        self.logtaus = nn.Parameter(torch.full((dim,), math.log(tau)))
        self.lognvars = nn.Parameter(torch.full((dim,), math.log(noise_variance)))

    def log_prob(self, u: Tensor) -> Tensor:
        """log p(u) summed over bins and dimensions: (trials,)."""
        alphas = torch.exp(-1.0 / torch.exp(self.logtaus))
        logpvars = self.lognvars - torch.log(1 - alphas ** 2)
        first = _normal_log_prob(u[:, 0], torch.zeros_like(u[:, 0]), logpvars)
        rest = _normal_log_prob(u[:, 1:], alphas * u[:, :-1], self.lognvars)
        return first.sum(-1) + rest.sum((1, 2))

    def kl(self, post_mean: Tensor, post_std: Tensor, sample: Tensor) -> Tensor:
        """Single-sample Monte-Carlo KL, log q(u) − log p(u) at the posterior sample `u`, mean over trials.

        lfads-torch draws a fresh sample for this; we use the sample that drove the generator,
        an equally unbiased estimate that saves a second pass.
        """
        log_q = _normal_log_prob(sample, post_mean, 2 * torch.log(post_std)).sum((1, 2))
        return (log_q - self.log_prob(sample)).mean()
