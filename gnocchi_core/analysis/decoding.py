"""Behaviour decoders: from rates to hand kinematics, so every generated trial has a decoded reach.

A ridge regression (scikit-learn `RidgeCV`, alpha by leave-one-out cross-validation) maps a bin's
population rates (spikes/s) to hand position and velocity in the same bin. It is fitted on the
recorded training trials and applied unchanged to generated trials. Where the dataset knows its
true rates (a simulation), the decoder is fitted on them: generated rates are noise-free, and a
decoder fitted on single-trial smoothed spikes learns a map blurred by Poisson noise (the
report's `decoder_endpoint_error_cm` measures the decoder on the test trials). Recorded data without ground truth are decoded from spikes smoothed
with a Gaussian kernel. From a decoded trajectory, `reach_variables` reads the decoded start (mean
position over the bins before movement onset) and the decoded target (mean position over the
last bins, the hold at the end of the reach).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.preprocessing import smoothed_rates
from ..data.trialdata import TrialData
from ..errors import GnocchiError, ModelFileError

ALPHAS = tuple(np.logspace(-3, 7, 21))
VARIABLES = ("start_x", "start_y", "target_x", "target_y")  # what `reach_variables` returns, in order


@dataclass
class BehaviourDecoder:
    """Linear map rates (…, neurons) → behaviour (…, outputs), with the outputs' names and units."""

    weights: np.ndarray  # (neurons, outputs)
    intercept: np.ndarray  # (outputs,)
    outputs: list[str]  # e.g. hand_pos_x, hand_pos_y, hand_vel_x, hand_vel_y
    units: list[str]
    alpha: float
    sigma_ms: float  # smoothing applied to recorded spikes before decoding
    fit_r2: float  # cross-validated R² on the fitting trials (mean over outputs)
    source: str = "spikes"  # what it was fitted on: "rates" (ground truth) or "spikes" (smoothed)

    @classmethod
    def fit(cls, data: TrialData, *, fields: tuple[str, ...] = ("hand_pos", "hand_vel"),
            sigma_ms: float = 40.0, source: str = "auto") -> "BehaviourDecoder":
        """Fit on all trials of ``data`` (pass the training split). ``source``: "rates" (the true
        rates), "spikes" (smoothed with ``sigma_ms``), or "auto" (rates when ``data`` has them)."""
        missing = [f for f in fields if f not in data.behavior]
        if missing:
            raise GnocchiError(f"the dataset has no behaviour field(s) {missing} to decode "
                               f"(it has {sorted(data.behavior)})")
        if source == "auto":
            source = "rates" if data.rates is not None else "spikes"
        if source == "rates" and data.rates is None:
            raise GnocchiError("the dataset has no ground-truth rates to fit the decoder on")
        if source not in ("rates", "spikes"):
            raise GnocchiError(f"decoder source must be 'auto', 'rates' or 'spikes', got {source!r}")
        rates = np.asarray(data.rates, dtype=np.float64) if source == "rates" else \
            smoothed_rates(data.spikes, data.bin_ms, sigma_ms)
        target = np.concatenate([data.behavior[f] for f in fields], axis=-1)
        x, y = rates.reshape(-1, rates.shape[-1]), target.reshape(-1, target.shape[-1])
        from sklearn.linear_model import RidgeCV  # here, not at import: decoding needs no sklearn

        ridge = RidgeCV(alphas=ALPHAS, store_cv_results=True).fit(x, y)
        loo = ridge.cv_results_[:, :, list(ALPHAS).index(ridge.alpha_)]  # (samples, outputs) squared errors
        fit_r2 = float(np.mean(1 - loo.sum(0) / ((y - y.mean(0)) ** 2).sum(0)))
        outputs, units = [], []
        for f in fields:
            for k in range(data.behavior[f].shape[-1]):
                outputs.append(f"{f}_{'xyz'[k]}" if data.behavior[f].shape[-1] <= 3 else f"{f}_{k}")
                units.append(data.behavior_units.get(f, ""))
        return cls(ridge.coef_.T.astype(np.float64), np.asarray(ridge.intercept_, dtype=np.float64), outputs, units,
                   float(ridge.alpha_), float(sigma_ms), fit_r2, source)

    def predict(self, rates: np.ndarray) -> np.ndarray:
        """Rates (…, neurons) in spikes/s → behaviour (…, outputs)."""
        rates = np.asarray(rates, dtype=np.float64)
        if rates.shape[-1] != self.weights.shape[0]:
            raise GnocchiError(f"the decoder reads {self.weights.shape[0]} neurons, found rates of shape {rates.shape}")
        return rates @ self.weights + self.intercept

    def predict_spikes(self, spikes: np.ndarray, bin_ms: float) -> np.ndarray:
        """Recorded counts (trials, bins, neurons): smoothed as at fitting time, then decoded."""
        return self.predict(smoothed_rates(spikes, bin_ms, self.sigma_ms))

    def position(self, decoded: np.ndarray) -> np.ndarray:
        """The hand-position columns (…, 2) of a `predict` output."""
        return decoded[..., [self.outputs.index("hand_pos_x"), self.outputs.index("hand_pos_y")]]

    def to_dict(self) -> dict:
        return {"weights": self.weights.tolist(), "intercept": self.intercept.tolist(), "outputs": self.outputs,
                "units": self.units, "alpha": self.alpha, "sigma_ms": self.sigma_ms, "fit_r2": self.fit_r2,
                "source": self.source}

    @classmethod
    def from_dict(cls, params: dict, path=None) -> "BehaviourDecoder":
        """A decoder from `to_dict`'s output (a model folder's decoder.json); a ModelFileError naming
        ``path`` and the field when it is not one."""
        from ..data.validation import NON_NEGATIVE, as_array, as_number, describe

        def bad(field, expected, found):
            return ModelFileError("not a behaviour decoder", path=path, field=field, expected=expected, found=found)

        if not isinstance(params, dict):
            raise bad(None, "a JSON object", describe(params))
        required = ("weights", "intercept", "outputs", "units", "alpha", "sigma_ms", "fit_r2")
        missing = [k for k in required if k not in params]
        if missing:
            raise ModelFileError("required field is missing", path=path, field=missing[0])
        def numbers(key):
            values = as_array(params[key], key, path=path)
            if values.dtype.kind not in "iuf":
                raise bad(key, "numbers", f"{describe(params[key])}")
            return values.astype(np.float64)

        weights, intercept = numbers("weights"), numbers("intercept")
        if weights.ndim != 2 or weights.size == 0 or not np.isfinite(weights).all():
            raise bad("weights", "a finite (neurons, outputs) matrix",
                      f"shape {weights.shape}" + ("" if np.isfinite(weights).all() else " with NaN or inf"))
        n_out = weights.shape[1]
        if intercept.shape != (n_out,) or not np.isfinite(intercept).all():
            raise bad("intercept", f"{n_out} finite numbers", f"shape {intercept.shape}")
        for key in ("outputs", "units"):
            if not (isinstance(params[key], list) and len(params[key]) == n_out and
                    all(isinstance(v, str) for v in params[key])):
                raise bad(key, f"a list of {n_out} names", describe(params[key]))
        common = dict(error=ModelFileError, path=path)
        source = params.get("source", "spikes")
        if source not in ("rates", "spikes"):
            raise bad("source", "'rates' or 'spikes'", describe(source))
        fit_r2 = params["fit_r2"]
        if isinstance(fit_r2, bool) or not isinstance(fit_r2, (int, float)):
            raise bad("fit_r2", "a number", describe(fit_r2))
        return cls(weights, intercept, list(params["outputs"]), list(params["units"]),
                   as_number(params["alpha"], "alpha", NON_NEGATIVE, **common),
                   as_number(params["sigma_ms"], "sigma_ms", NON_NEGATIVE, **common), float(fit_r2), source)


def reach_variables(positions: np.ndarray, bin_centers_ms: np.ndarray, *, start_before_ms: float = 0.0,
                    end_bins: int = 10) -> np.ndarray:
    """Decoded (start x, start y, target x, target y) per trial from positions (trials, bins, 2).

    Start: mean position over the bins centred before ``start_before_ms`` (movement onset when
    trials are aligned to it); target: mean over the last ``end_bins`` bins.
    """
    positions = np.asarray(positions, dtype=np.float64)
    before = np.asarray(bin_centers_ms) < start_before_ms
    if not before.any():
        before = np.zeros_like(before)
        before[: min(end_bins, len(before))] = True
    start = positions[:, before].mean(axis=1)
    end = positions[:, -end_bins:].mean(axis=1)
    return np.concatenate([start, end], axis=1)
