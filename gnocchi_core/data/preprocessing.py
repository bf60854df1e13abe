"""Spike counts → continuous model inputs, and back to firing rates.

Continuous-valued models (GNOCCHI's diffusion) see smoothed, variance-stabilised, standardised
rates rather than raw counts. Each step is a pure function with its inverse:

- counts ↔ rate (spikes/s): exact.
- Gaussian smoothing over time (σ in ms): a low-pass filter, so it has no stable inverse —
  its "inverse" is the identity, and inverting the pipeline yields *smoothed* rates, which is
  what the models generate.
- sqrt ↔ square: stabilises Poisson variance; the inverse clips negatives (a model may
  output slightly negative values) before squaring.
- per-neuron standardisation ↔ un-standardisation: exact.

`Preprocessing` holds the fitted parameters; `to_dict`/`from_dict` keep them with a model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d

#: Floor on a neuron's standard deviation so silent neurons do not blow up.
MIN_STD = 1e-3


def counts_to_rate(counts: np.ndarray, bin_ms: float) -> np.ndarray:
    """Counts per bin → spikes per second."""
    return np.asarray(counts, dtype=np.float64) * (1000.0 / bin_ms)


def rate_to_counts(rate: np.ndarray, bin_ms: float) -> np.ndarray:
    """Spikes per second → expected counts per bin (the Poisson mean)."""
    return np.asarray(rate, dtype=np.float64) * (bin_ms / 1000.0)


def gaussian_smooth(x: np.ndarray, sigma_ms: float, bin_ms: float) -> np.ndarray:
    """Smooth along time (axis −2 of trials × bins × neurons) with a normalised Gaussian.

    Reflecting boundaries keep the mean rate of a constant signal unchanged at trial edges.
    """
    x = np.asarray(x, dtype=np.float64)
    if sigma_ms <= 0:
        return x
    return gaussian_filter1d(x, sigma=sigma_ms / bin_ms, axis=-2, mode="reflect", truncate=4.0)


def smoothed_rates(counts: np.ndarray, bin_ms: float, sigma_ms: float) -> np.ndarray:
    """Counts per bin → Gaussian-smoothed rates in spikes/s."""
    return gaussian_smooth(counts_to_rate(counts, bin_ms), sigma_ms, bin_ms)


def sqrt_forward(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.clip(x, 0.0, None))


def sqrt_inverse(y: np.ndarray) -> np.ndarray:
    return np.square(np.clip(y, 0.0, None))


def standardize_forward(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return (x - mean) / std


def standardize_inverse(z: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return z * std + mean


@dataclass
class Preprocessing:
    """Fitted counts → model-space transform (smooth, optional sqrt, per-neuron standardise)."""

    sigma_ms: float = 20.0
    sqrt: bool = True
    standardize: bool = True
    bin_ms: float | None = None
    mean: np.ndarray | None = field(default=None, repr=False)
    std: np.ndarray | None = field(default=None, repr=False)

    def fit(self, counts: np.ndarray, bin_ms: float) -> "Preprocessing":
        """Learn per-neuron mean and std of the (smoothed, sqrt'd) rates of training trials."""
        self.bin_ms = float(bin_ms)
        x = self._to_stabilised(counts)
        flat = x.reshape(-1, x.shape[-1])
        self.mean = flat.mean(axis=0) if self.standardize else np.zeros(flat.shape[-1])
        self.std = np.maximum(flat.std(axis=0), MIN_STD) if self.standardize else np.ones(flat.shape[-1])
        return self

    def transform(self, counts: np.ndarray) -> np.ndarray:
        """Counts (trials, bins, neurons) → model space."""
        self._require_fitted()
        return standardize_forward(self._to_stabilised(counts), self.mean, self.std)

    def smoothed_rates(self, counts: np.ndarray) -> np.ndarray:
        """What `inverse_transform(transform(counts))` returns: smoothed rates in spikes/s."""
        self._require_fitted()
        return smoothed_rates(counts, self.bin_ms, self.sigma_ms)

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        """Model space → firing rates in spikes/s (smoothed; see module docstring)."""
        self._require_fitted()
        x = standardize_inverse(np.asarray(z, dtype=np.float64), self.mean, self.std)
        return sqrt_inverse(x) if self.sqrt else np.clip(x, 0.0, None)

    def to_dict(self) -> dict:
        """JSON-ready parameters, saved beside a model's weights."""
        self._require_fitted()
        params = asdict(self)
        params["mean"] = self.mean.tolist()
        params["std"] = self.std.tolist()
        return params

    @classmethod
    def from_dict(cls, params: dict) -> "Preprocessing":
        params = dict(params)
        params["mean"] = np.asarray(params["mean"], dtype=np.float64)
        params["std"] = np.asarray(params["std"], dtype=np.float64)
        return cls(**params)

    def _to_stabilised(self, counts: np.ndarray) -> np.ndarray:
        smoothed = smoothed_rates(counts, self.bin_ms, self.sigma_ms)
        return sqrt_forward(smoothed) if self.sqrt else smoothed

    def _require_fitted(self) -> None:
        if self.mean is None or self.std is None or self.bin_ms is None:
            raise RuntimeError("Preprocessing is not fitted: call fit(train_counts, bin_ms) first")
