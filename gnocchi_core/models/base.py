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
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

import torch

from ..atomic import atomic_path, write_json
from ..data.trialdata import TrialData
from ..data.validation import ANY, POSITIVE, as_array, as_integer, as_number, at_least, check_counts, describe
from ..errors import DataError, GnocchiError, ModelFileError
from . import distributed
from .priors import CodeMixture
from .training import LAST, TimeBudget, Trainer, TrainConfig, load_checkpoint, record_run, resolve_device

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.pt"


@dataclass
class Generated:
    """What `generate` returns: rates in spikes/s and, if asked for, Poisson spike counts."""

    rates: np.ndarray
    codes: np.ndarray
    spikes: np.ndarray | None = None


class ModelFolder:
    """What both models share: construction, the training scaffolding around their own networks
    (splits, trainer, resume, best weights, code prior) and the folder they save to and load from.

    A subclass names its ``kind``, ``label``, ``config_class`` and ``format_version``, builds its
    network in ``fit`` and ``_build`` (on load), and adds what else it saves through
    ``_extra_weights`` / ``_extra_config``."""

    kind: str
    label: str  # "a GNOCCHI model": how errors name it
    config_class: type
    format_version: int = 1
    readable_formats: tuple[int, ...] = (1,)
    #: True when `generate` gives the same rates for the same code whatever the seed (LFADS);
    #: False when each call draws a sample (GNOCCHI's diffusion), so a conditional mean needs many
    deterministic_generate: bool = False

    def __init__(self, config=None, device: str = "auto"):
        self.config = config or self.config_class()
        self.device = resolve_device(device)
        self.net = None
        self.mixture: CodeMixture | None = None
        self.data_info: dict = {}
        self.history: list[dict] = []
        self.stopped: str | None = None  # why training ended (see Trainer.stopped); saved in config.json

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

    # ------------------------------------------------------------------ training scaffolding
    def _training_splits(self, data: TrialData) -> tuple[TrialData, TrialData]:
        """(train, valid): the held-in 'train' trials and the 'valid' trials; records the data's
        shape in ``data_info`` and seeds torch with the config's seed."""
        split = data.trial_info["split"]
        train = data.subset(trials=data.heldin_conditions("train"))
        if train.n_trials == 0:
            raise GnocchiError("the dataset has no 'train' trials to train on")
        if not (split == "valid").any():
            raise GnocchiError("the dataset has no 'valid' trials to validate on")
        torch.manual_seed(self.config.train.seed)
        self.data_info = {"n_neurons": data.n_neurons, "n_bins": data.n_bins, "bin_ms": data.bin_ms,
                          "t0_ms": data.t0_ms, "neuron_ids": data.neuron_ids.tolist(),
                          "heldout_neurons": data.heldout_neurons.tolist(), "source": data.provenance.source}
        return train, data.subset(trials=(split == "valid").to_numpy())

    @staticmethod
    def _record_run(out_dir: Path, run: dict, resume: bool) -> None:
        """`training.record_run`, by rank 0 alone when training on several processes; the others
        wait until it has checked (and cleaned) the folder."""
        if distributed.is_main():
            record_run(out_dir, run, resume)
        distributed.barrier()

    @staticmethod
    def _budget(max_minutes: float | None) -> TimeBudget | None:
        """The wall-clock budget of a fit, starting now (None: no budget)."""
        return None if max_minutes is None else TimeBudget.starting_now(max_minutes)

    def _trainer(self, module, config: TrainConfig, out_dir: Path, resume: bool, progress: bool) -> Trainer:
        """A trainer of ``module`` into ``out_dir``, restored from ``out_dir/last.pt`` when resuming
        and it exists."""
        trainer = Trainer(module, config, out_dir, self.device, progress=progress)
        if resume and (out_dir / LAST).is_file():
            trainer.restore(out_dir / LAST)
        return trainer

    def _train_net(self, trials: TrialData, train: list, valid: list, out_dir: Path, resume: bool,
                   progress: bool, on_epoch_end=None, budget: TimeBudget | None = None):
        """Train ``self.net`` with the config's settings, then finish the model folder with its best
        EMA weights (`_finish_fit`, on the ``trials`` it trained on); returns the model.

        On Ctrl-C the folder is finished the same way with the best weights so far, when an epoch
        has been validated, and the interrupt is re-raised: the folder loads, and ``last.pt`` is left
        as the last checkpoint wrote it, so a resume continues exactly. On several processes only rank 0
        finishes the folder (the others are not interrupted: see `distributed`)."""
        trainer = self._trainer(self.net, self.config.train, out_dir, resume, progress)
        try:
            trainer.fit(train, valid, on_epoch_end=on_epoch_end, budget=budget)
        except KeyboardInterrupt:
            if trainer.best_epoch < 0 or not distributed.is_main():
                raise
            print(f"interrupted: saving the best weights so far (epoch {trainer.best_epoch}) to {out_dir}",
                  file=sys.stderr)
            self._keep(trainer)._finish_fit(trials, out_dir)
            raise
        return self._keep(trainer)._finish_fit(trials, out_dir)

    def _keep(self, trainer: Trainer):
        """Take the trainer's best EMA weights, history and reason for stopping."""
        self.net, self.history, self.stopped = trainer.best_module(), trainer.history, trainer.stopped
        return self

    def _finish_fit(self, train: TrialData, out_dir: Path):
        """Fit the code mixture prior on the training codes and save the model folder (rank 0's job,
        on several processes: the others return the trained network without a prior)."""
        if not distributed.is_main():
            return self
        self.mixture = CodeMixture.fit(self.encode(train), self.config.prior_components, self.config.train.seed)
        self.save(out_dir)
        return self

    # ------------------------------------------------------------------ persistence
    def _extra_weights(self) -> dict:
        return {}

    def _extra_config(self) -> dict:
        return {}

    def save(self, model_dir: str | os.PathLike) -> None:
        """``config.json`` + ``model.pt`` (tensors only), each written atomically."""
        self._require_trained()
        model_dir = Path(model_dir)
        with atomic_path(model_dir / WEIGHTS_FILE) as tmp:
            torch.save({"net": self.net.state_dict(), "mixture": self.mixture.to_tensors(), **self._extra_weights()}, tmp)
        config = {"kind": self.kind, "format_version": self.format_version, "config": self._config_dict(),
                  **self._extra_config(), "data": self.data_info, "epochs_trained": len(self.history),
                  "stopped": self.stopped, "last_epoch": dict(self.history[-1]) if self.history else {}}
        write_json(model_dir / CONFIG_FILE, config)

    @classmethod
    def load(cls, model_dir: str | os.PathLike, device: str = "auto"):
        """A trained model from its folder; weights load with ``weights_only=True``. A broken folder is a
        ModelFileError (or the ConfigError of its config) naming the file and the field."""
        saved = read_config(model_dir)
        config_path = Path(model_dir) / CONFIG_FILE
        if saved.get("kind") != cls.kind:
            raise ModelFileError(f"not {cls.label}", path=config_path, field="kind", expected=repr(cls.kind),
                                 found=describe(saved.get("kind")))
        if saved.get("format_version") not in cls.readable_formats or isinstance(saved.get("format_version"), bool):
            raise ModelFileError(f"not {cls.label} of a format this version reads", path=config_path,
                                 field="format_version", expected=f"one of {cls.readable_formats}",
                                 found=describe(saved.get("format_version")))
        for key in ("config", "data"):
            if not isinstance(saved.get(key), dict):
                raise ModelFileError("is missing or not an object", path=config_path, field=key,
                                     expected="a JSON object", found=describe(saved.get(key)))
        model = cls(cls.config_class.from_dict(cls._upgrade_config(saved), path=config_path), device=device)
        model.data_info = check_data_info(saved["data"], config_path, heldout_required=cls.kind == "lfads")
        path = Path(model_dir) / WEIGHTS_FILE
        weights = load_checkpoint(path, model.device)
        if not isinstance(weights.get("net"), dict):
            raise ModelFileError("the network's weights are missing", path=path, field="net",
                                 expected="a dict of tensors", found=describe(weights.get("net")))
        model._build(saved, weights, path)
        model.mixture = check_mixture(weights.get("mixture"), model.code_dim, path)
        model.net.eval()
        return model

    @classmethod
    def _upgrade_config(cls, saved: dict) -> dict:
        """The config dict of a saved model, brought up to the current format."""
        return saved["config"]

    def _build(self, saved: dict, weights: dict, path: Path) -> None:
        """Create ``self.net`` (and anything else) for a loaded model and load its weights."""
        raise NotImplementedError


@runtime_checkable
class GenerativeModel(Protocol):
    kind: str
    n_neurons: int
    n_bins: int
    bin_ms: float

    def encode(self, trials: TrialData | np.ndarray) -> np.ndarray: ...

    def generate(self, codes: np.ndarray, *, steps: int | None = None, noise: np.ndarray | None = None,
                 seed: int | None = None, spikes: bool = False, guidance: float | None = None) -> Generated: ...

    def sample_prior(self, n: int, *, seed: int | None = None, kind: str = "gaussian") -> np.ndarray: ...


def poisson_spikes(rates: np.ndarray, bin_ms: float, seed: int | None) -> np.ndarray:
    """Spike counts drawn from rates (spikes/s) for bins of ``bin_ms``."""
    return np.random.default_rng(seed).poisson(np.clip(rates, 0, None) * bin_ms / 1000.0).astype(np.int32)


def trial_counts(trials: TrialData | np.ndarray, n_bins: int, n_neurons: int,
                 read: np.ndarray | None = None) -> np.ndarray:
    """Spike counts (n, bins, neurons) from a dataset or an array, checked against the model's shape and,
    in the neurons ``read`` (a mask; default all), to be non-negative whole counts."""
    if isinstance(trials, TrialData):
        counts = trials.spikes
    else:
        counts = as_array(trials, "trials")
        if counts.ndim == 2:
            counts = counts[None]
    if counts.ndim != 3 or counts.shape[1:] != (n_bins, n_neurons):
        raise DataError("trials do not fit the model", field="trials",
                        expected=f"(trials, {n_bins} bins, {n_neurons} neurons)", found=f"shape {counts.shape}")
    if not isinstance(trials, TrialData):
        check_counts(counts if read is None else counts[:, :, read], "trials")
    return counts


def check_data_info(data: dict, path: Path, heldout_required: bool) -> dict:
    """The ``data`` object of a model's config.json: the shape of the data it was trained on."""
    info = dict(data)
    common = dict(error=ModelFileError, path=path)
    for key, rule in (("n_neurons", at_least(1)), ("n_bins", at_least(1))):
        if key not in info:
            raise ModelFileError("required field is missing", path=path, field=f"data.{key}")
        info[key] = as_integer(info[key], f"data.{key}", rule, **common)
    if "bin_ms" not in info:
        raise ModelFileError("required field is missing", path=path, field="data.bin_ms")
    info["bin_ms"] = as_number(info["bin_ms"], "data.bin_ms", POSITIVE, **common)
    if "t0_ms" in info:
        info["t0_ms"] = as_number(info["t0_ms"], "data.t0_ms", ANY, **common)
    if heldout_required and "heldout_neurons" not in info:
        raise ModelFileError("required field is missing", path=path, field="data.heldout_neurons")
    for key, kinds in (("heldout_neurons", (bool,)), ("neuron_ids", (int,))):
        values = info.get(key)
        if values is not None and not (isinstance(values, list) and len(values) == info["n_neurons"] and all(
                isinstance(v, kinds) and (bool in kinds or not isinstance(v, bool)) for v in values)):
            raise ModelFileError("one value per neuron required", path=path, field=f"data.{key}",
                                 expected=f"a list of {info['n_neurons']} {'booleans' if bool in kinds else 'integers'}",
                                 found=describe(values))
    return info


def check_mixture(tensors, code_dim: int, path: Path) -> CodeMixture:
    """The code prior's tensors from model.pt: k weights ≥ 0, k means and k Cholesky factors in the code's size."""
    names = ("weights", "means", "cholesky")
    if not isinstance(tensors, dict) or not all(isinstance(tensors.get(k), torch.Tensor) for k in names):
        raise ModelFileError("the code prior is missing or incomplete", path=path, field="mixture",
                             expected=f"tensors {names}", found=describe(tensors) if not isinstance(tensors, dict)
                             else f"keys {sorted(tensors)}")
    mixture = CodeMixture.from_tensors(tensors)
    k = len(mixture.weights)
    shapes = {"weights": (k,), "means": (k, code_dim), "cholesky": (k, code_dim, code_dim)}
    for name, shape in shapes.items():
        value = getattr(mixture, name)
        if value.shape != shape or k == 0 or not np.isfinite(value).all():
            raise ModelFileError("the code prior does not fit the model", path=path, field=f"mixture.{name}",
                                 expected=f"finite values of shape {shape} (k ≥ 1 components of {code_dim}-D codes)",
                                 found=f"shape {value.shape}" + ("" if np.isfinite(value).all() else " with NaN or inf"))
    if (mixture.weights < 0).any() or not mixture.weights.sum() > 0:
        raise ModelFileError("the code prior's weights must be non-negative", path=path, field="mixture.weights",
                             expected="weights ≥ 0 with a positive sum", found=describe(mixture.weights.tolist()))
    return mixture


def read_json(path: str | os.PathLike, error=ModelFileError):
    """The JSON value in ``path``; ``error`` (a GnocchiValueError class) naming the file when it holds none."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise error(f"not valid JSON ({err})", path=path) from None
    except UnicodeDecodeError:
        raise error("not a text file of JSON", path=path) from None


def read_config(model_dir: str | os.PathLike) -> dict:
    """A model folder's config.json as a dict; a ModelFileError naming the file when it is not one."""
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise ModelFileError(f"not a trained model folder (no {CONFIG_FILE})", path=model_dir)
    saved = read_json(path)
    if not isinstance(saved, dict):
        raise ModelFileError("not a model's config", path=path, expected="a JSON object", found=describe(saved))
    return saved


def trained_shapes(models_dir: str | os.PathLike) -> dict[str, tuple]:
    """(bins, neurons) each model folder in ``models_dir`` was trained on, by folder name, from their
    config.json (what `explore` and the explorer's pickers match datasets against); {} without a folder."""
    folder = Path(models_dir)
    if not folder.is_dir():
        return {}
    shapes = {}
    for model in sorted(p for p in folder.iterdir() if (p / CONFIG_FILE).is_file()):
        info = read_config(model).get("data", {})
        shapes[model.name] = (info.get("n_bins"), info.get("n_neurons"))
    return shapes


def load_model(model_dir: str | os.PathLike, device: str = "auto") -> GenerativeModel:
    """A trained model of either kind, ready to `encode` and `generate`."""
    saved = read_config(model_dir)
    kind = saved.get("kind")
    if kind == "gnocchi":
        from .gnocchi.model import GnocchiModel

        return GnocchiModel.load(model_dir, device=device)
    if kind == "lfads":
        from .lfads.model import LfadsModel

        return LfadsModel.load(model_dir, device=device)
    path = Path(model_dir) / CONFIG_FILE
    if "kind" not in saved:
        raise ModelFileError("required field is missing", path=path, field="kind", expected="'gnocchi' or 'lfads'")
    raise ModelFileError(f"unknown model kind {kind!r}", path=path, field="kind", expected="'gnocchi' or 'lfads'",
                         found=describe(kind))
