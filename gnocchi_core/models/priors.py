"""A Gaussian mixture over training codes: unconditional samples that look like real trials' codes.

Fitted with scikit-learn, stored as plain tensors (weights, means, Cholesky factors) so the
model file stays loadable with ``weights_only=True``; sampling needs only numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class CodeMixture:
    weights: np.ndarray  # (k,)
    means: np.ndarray  # (k, d)
    cholesky: np.ndarray  # (k, d, d), lower triangular covariance factors

    @classmethod
    def fit(cls, codes: np.ndarray, n_components: int, seed: int = 0) -> "CodeMixture":
        k = max(1, min(n_components, len(codes) // 5))
        from sklearn.mixture import GaussianMixture  # here, not at import: loading a model needs no sklearn

        gmm = GaussianMixture(k, covariance_type="full", reg_covar=1e-4, random_state=seed).fit(codes)
        return cls(gmm.weights_, gmm.means_, np.linalg.cholesky(gmm.covariances_))

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        rng = np.random.default_rng(seed)
        component = rng.choice(len(self.weights), size=n, p=self.weights / self.weights.sum())
        z = rng.standard_normal((n, self.means.shape[1]))
        return self.means[component] + np.einsum("nij,nj->ni", self.cholesky[component], z)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(v, dtype=torch.float64) for k, v in vars(self).items()}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> "CodeMixture":
        return cls(**{k: tensors[k].cpu().numpy() for k in ("weights", "means", "cholesky")})
