"""The one interface both models (GNOCCHI, LFADS) satisfy, and `load_model`.

The dashboard and the metrics only ever call::

    codes = model.encode(trials)            # (n, code_dim)
    out = model.generate(codes, seed=0)     # out.rates: (n, bins, neurons) in spikes/s
    codes = model.sample_prior(n, seed=0)   # unconditional generation

A trained model is a folder: ``config.json`` (kind, hyper-parameters, preprocessing, data
shape, training summary) and ``model.pt`` (tensors only; loaded with ``weights_only=True``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..data.trialdata import TrialData
from ..errors import GnocchiError

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.pt"


@dataclass
class Generated:
    """What `generate` returns: rates in spikes/s and, if asked for, Poisson spike counts."""

    rates: np.ndarray
    codes: np.ndarray
    spikes: np.ndarray | None = None


class ModelFolder:
    """What both models share once trained: the data shape they were fitted to, and their config."""

    config: object
    data_info: dict
    net: object | None
    #: True when `generate` gives the same rates for the same code whatever the seed (LFADS);
    #: False when each call draws a sample (GNOCCHI's diffusion), so a conditional mean needs many
    deterministic_generate: bool = False

    @property
    def n_neurons(self) -> int:
        return self.data_info["n_neurons"]

    @property
    def n_bins(self) -> int:
        return self.data_info["n_bins"]

    @property
    def bin_ms(self) -> float:
        return self.data_info["bin_ms"]

    def _config_dict(self) -> dict:
        return dataclasses.asdict(self.config)

    def _require_trained(self) -> None:
        if self.net is None:
            raise GnocchiError("the model is not trained: call fit() or gnocchi_core.load_model(DIR)")


@runtime_checkable
class GenerativeModel(Protocol):
    kind: str
    n_neurons: int
    n_bins: int
    bin_ms: float

    def encode(self, trials: TrialData | np.ndarray) -> np.ndarray: ...

    def generate(self, codes: np.ndarray, *, steps: int | None = None, noise: np.ndarray | None = None,
                 seed: int | None = None, spikes: bool = False) -> Generated: ...

    def sample_prior(self, n: int, *, seed: int | None = None, kind: str = "gaussian") -> np.ndarray: ...


def poisson_spikes(rates: np.ndarray, bin_ms: float, seed: int | None) -> np.ndarray:
    """Spike counts drawn from rates (spikes/s) for bins of ``bin_ms``."""
    return np.random.default_rng(seed).poisson(np.clip(rates, 0, None) * bin_ms / 1000.0).astype(np.int32)


def trial_counts(trials: TrialData | np.ndarray, n_bins: int, n_neurons: int) -> np.ndarray:
    """Spike counts (n, bins, neurons) from a dataset or an array, checked against the model's shape."""
    counts = trials.spikes if isinstance(trials, TrialData) else np.asarray(trials)
    if counts.ndim == 2:
        counts = counts[None]
    if counts.ndim != 3 or counts.shape[1:] != (n_bins, n_neurons):
        raise GnocchiError(f"trials do not fit the model: expected (trials, {n_bins} bins, {n_neurons} neurons), "
                           f"found shape {counts.shape}")
    return counts


def read_config(model_dir: str | os.PathLike) -> dict:
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise GnocchiError(f"{model_dir}: not a trained model folder (no {CONFIG_FILE})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise GnocchiError(f"{path}: not valid JSON ({err})") from None


def load_model(model_dir: str | os.PathLike, device: str = "auto") -> GenerativeModel:
    """A trained model of either kind, ready to `encode` and `generate`."""
    kind = read_config(model_dir).get("kind")
    if kind == "gnocchi":
        from .gnocchi.model import GnocchiModel

        return GnocchiModel.load(model_dir, device=device)
    if kind == "lfads":
        from .lfads.model import LfadsModel

        return LfadsModel.load(model_dir, device=device)
    raise GnocchiError(f"{model_dir}: unknown model kind {kind!r} in {CONFIG_FILE}")
