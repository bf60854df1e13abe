"""Loss terms that are not plain MSE."""

from __future__ import annotations

from typing import Sequence

import torch


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidths: Sequence[float]) -> torch.Tensor:
    """Squared maximum mean discrepancy between samples ``x`` (n, d) and ``y`` (m, d).

    Gaussian kernels exp(−‖a−b‖² / (2·h²·d)) summed over several bandwidths h, so the loss sees
    both the spread and the fine structure of the codes; distances are divided by d so the
    bandwidths mean the same thing for any code size. Biased (V-statistic) estimator: always
    ≥ 0 and smooth, which suits a loss.
    """
    d = x.shape[-1]
    xx, yy, xy = torch.cdist(x, x) ** 2, torch.cdist(y, y) ** 2, torch.cdist(x, y) ** 2
    total = x.new_zeros(())
    for h in bandwidths:
        scale = 2.0 * h * h * d
        total = total + torch.exp(-xx / scale).mean() + torch.exp(-yy / scale).mean() \
            - 2 * torch.exp(-xy / scale).mean()
    return total
