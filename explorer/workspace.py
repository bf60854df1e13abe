"""What the dashboard works on, computed once per server: the dataset, the models, their codes and axes.

`load_workspace` is wrapped in `pn.cache` by the app, so every browser session shares one copy
(models load once per server, not per session). Everything here is plain numpy / torch, so the
view models can be tested without a browser.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from gnocchi_core.analysis.decoding import VARIABLES, BehaviourDecoder, reach_variables
from gnocchi_core.analysis.metrics import behaviour_axes, principal_axes
from gnocchi_core.data.preprocessing import smoothed_rates
from gnocchi_core.data.trialdata import TrialData, load_dataset
from gnocchi_core.errors import GnocchiError
from gnocchi_core.models import load_model
from gnocchi_core.models.base import CONFIG_FILE, read_config
from gnocchi_core.workflows import DEFAULT_DATA, DEFAULT_MODELS, load_decoder

N_PCS = 4
COLOUR_VARIABLES = ("target_x", "target_y", "start_x", "start_y", "reach_angle", "condition_id")


@dataclass
class ExplorerConfig:
    """Where models and data come from: ``--args --models DIR --data FILE`` or GNOCCHI_MODELS / GNOCCHI_DATA."""

    models_dir: Path
    data_path: Path

    @classmethod
    def from_sources(cls, argv: list[str] | None = None, environ: dict | None = None) -> "ExplorerConfig":
        environ = os.environ if environ is None else environ
        parser = argparse.ArgumentParser(prog="panel serve explorer/app.py --args", add_help=False)
        parser.add_argument("--models", default=environ.get("GNOCCHI_MODELS", str(DEFAULT_MODELS)))
        parser.add_argument("--data", default=environ.get("GNOCCHI_DATA", str(DEFAULT_DATA)))
        args, _ = parser.parse_known_args(argv or [])
        return cls(Path(args.models).resolve(), Path(args.data).resolve())


@dataclass
class ModelView:
    """One model as the dashboard needs it."""

    name: str
    model: object
    codes: np.ndarray  # (trials, L)
    axes: np.ndarray  # (L, 4) behaviour axes, VARIABLES order (cm → code)
    pc_axes: np.ndarray  # (N_PCS, L) unit principal axes
    pc_scale: np.ndarray  # (N_PCS,) standard deviation of the codes along each
    pc_mean: np.ndarray  # (L,)
    pcs: np.ndarray  # (trials, N_PCS)

    def project(self, codes: np.ndarray) -> np.ndarray:
        return (np.atleast_2d(codes) - self.pc_mean) @ self.pc_axes.T


@dataclass
class Workspace:
    data: TrialData
    decoder: BehaviourDecoder
    models: dict[str, ModelView]
    neuron_order: np.ndarray  # neurons sorted by preferred target angle
    real_paths: np.ndarray  # (trials, bins, 2) recorded hand position
    targets: pd.DataFrame  # unique targets with a held-out flag
    load_seconds: float
    rate_ceiling: float = 1.0  # 99th percentile of the smoothed recorded rates (of ~200 trials): one colour scale

    def recorded_rates(self, trial: int) -> np.ndarray:
        """(bins, neurons) recorded rates of one trial, smoothed as the decoder reads them (spikes/s)."""
        return smoothed_rates(self.data.spikes[trial], self.data.bin_ms, self.decoder.sigma_ms)


def model_folders(models_dir: Path) -> dict[str, Path]:
    """Sub-folders of ``models_dir`` holding a trained model (config.json), by name."""
    if not models_dir.is_dir():
        raise GnocchiError(f"{models_dir}: models folder not found (pass --models DIR or set GNOCCHI_MODELS)")
    found = {p.name: p for p in sorted(models_dir.iterdir()) if (p / CONFIG_FILE).is_file()}
    if not found:
        raise GnocchiError(f"{models_dir}: no trained model folders (each needs {CONFIG_FILE})")
    return found


def dataset_choices(data_path: Path) -> list[Path]:
    """The configured dataset and the other GNOCCHI datasets (.h5) in its folder: what the picker offers."""
    siblings = sorted(p for p in data_path.parent.glob("*.h5") if p != data_path and _is_dataset(p))
    return [data_path] + siblings


def _is_dataset(path: Path) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return "spikes" in f and "trial_info" in f
    except OSError:
        return False


def compatible_models(models_dir: Path, data_path: Path) -> list[str]:
    """Model folders in ``models_dir`` trained on data of ``data_path``'s shape (from their config.json)."""
    with h5py.File(data_path, "r") as f:
        shape = f["spikes"].shape[1:]
    names = []
    for name, folder in model_folders(models_dir).items():
        info = read_config(folder).get("data", {})
        if (info.get("n_bins"), info.get("n_neurons")) == tuple(shape):
            names.append(name)
    return names


def load_workspace(models_dir: str | os.PathLike, data_path: str | os.PathLike, device: str = "auto",
                   names: tuple[str, ...] | None = None) -> Workspace:
    """Load the dataset and the models in ``models_dir`` (all, or ``names``); encode all trials; fit axes
    on the held-in training trials."""
    start = time.perf_counter()
    data = load_dataset(data_path)
    info = data.trial_info
    behaviour = info[list(VARIABLES)].to_numpy(dtype=np.float64)
    if np.isnan(behaviour).any():
        raise GnocchiError(f"{data_path}: the explorer needs {list(VARIABLES)} on every trial")
    train = data.heldin_conditions("train")
    folders = model_folders(Path(models_dir))
    unknown = set(names or ()) - set(folders)
    if unknown:
        raise GnocchiError(f"{models_dir}: no model folder(s) {sorted(unknown)}")
    picked = {name: folder for name, folder in folders.items() if names is None or name in names}

    def view(name: str) -> ModelView:
        model = load_model(picked[name], device=device)
        if (model.n_bins, model.n_neurons) != (data.n_bins, data.n_neurons):
            raise GnocchiError(f"{picked[name]}: trained on {model.n_bins} bins × {model.n_neurons} neurons, but "
                               f"{data_path} has {data.n_bins} × {data.n_neurons}")
        codes = model.encode(data)
        axes, _ = behaviour_axes(codes[train], behaviour[train])
        pc_axes, _, pc_mean = principal_axes(codes, N_PCS)
        pcs = (codes - pc_mean) @ pc_axes.T
        return ModelView(name, model, codes, axes, pc_axes, pcs.std(axis=0), pc_mean, pcs)

    with ThreadPoolExecutor(max(1, len(picked))) as pool:  # encoders overlap: their kernels release the GIL
        models = dict(zip(picked, pool.map(view, picked)))
    if not models:
        raise GnocchiError("no model selected")
    decoder = load_decoder(next(iter(picked.values())), data)
    some = smoothed_rates(data.spikes[::max(1, data.n_trials // 200)], data.bin_ms, decoder.sigma_ms)
    return Workspace(data, decoder, models, preferred_target_order(data.spikes, info["reach_angle"].to_numpy()),
                     data.behavior.get("hand_pos", np.zeros((data.n_trials, data.n_bins, 2))),
                     target_table(info), time.perf_counter() - start,
                     float(np.percentile(some, 99)) or 1.0)


def preferred_target_order(counts: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Neurons sorted by preferred reach angle (cosine tuning of their mean count), for readable rasters."""
    mean = counts.mean(axis=1, dtype=np.float64)  # (trials, neurons)
    design = np.column_stack([np.cos(angles), np.sin(angles), np.ones_like(angles)])
    coef, *_ = np.linalg.lstsq(design, mean, rcond=None)
    return np.argsort(np.arctan2(coef[1], coef[0]))


def target_table(info: pd.DataFrame) -> pd.DataFrame:
    table = info.groupby(["target_x", "target_y"], as_index=False)["heldout_condition"].max()
    return table.rename(columns={"heldout_condition": "heldout"})


@dataclass
class Generation:
    """One model's answer to one navigation request."""

    rates: np.ndarray  # (bins, neurons) mean over samples, spikes/s
    samples: np.ndarray  # (samples, bins, neurons)
    paths: np.ndarray  # (samples, bins, 2) decoded hand position of each sample
    mean_path: np.ndarray  # (bins, 2) the mean decoded reach over the samples
    decoded: np.ndarray  # (4,) start x/y, target x/y of the mean reach
    commanded: np.ndarray  # (4,) reference behaviour + slider offsets
    code: np.ndarray  # (L,)
    seconds: float
    device: str
    steps: int | None = None  # DDIM steps used (None: the model has no sampler)
    guidance: float | None = None  # guidance scale used (None: the model has no unconditional mode)

    @property
    def target_error_cm(self) -> float:
        """Distance between the mean reach's decoded end and the commanded target (cm)."""
        return float(np.linalg.norm(self.decoded[2:] - self.commanded[2:]))

    def unintended_cm(self, baseline: "Generation", moved: set[str]) -> float:
        """Summed |change| since ``baseline`` (the reference, no offsets) of the variables not moved (cm)."""
        fixed = [k for k, v in enumerate(VARIABLES) if v not in moved]
        return float(np.abs(self.decoded[fixed] - baseline.decoded[fixed]).sum())


def navigate_code(view: ModelView, reference: int, offsets: dict[str, float]) -> np.ndarray:
    """The reference trial's code moved by ``offsets``: behaviour variables in cm, 'pc1'.. in PC s.d."""
    code = view.codes[reference].astype(np.float64).copy()
    for name, value in offsets.items():
        if not value:
            continue
        if name in VARIABLES:
            code += value * view.axes[:, VARIABLES.index(name)]
        elif name.startswith("pc"):
            k = int(name[2:]) - 1
            code += value * view.pc_scale[k] * view.pc_axes[k]
        else:
            raise GnocchiError(f"unknown navigation axis '{name}'")
    return code


def guidance_for(model, guidance: float | None) -> float | None:
    """The guidance scale the explorer's setting gives ``model``: the setting for a GNOCCHI model
    trained with code dropout (the only kind with an unconditional model to guide against), else
    None (the model's default)."""
    return guidance if has_guidance(model) else None


def has_guidance(model) -> bool:
    return getattr(getattr(model, "config", None), "code_dropout", 0.0) > 0


def default_steps(model) -> int | None:
    """The model's own number of sampling steps (GNOCCHI's ``sample_steps``); None for a model without a sampler."""
    return getattr(getattr(model, "config", None), "sample_steps", None)


def generate_for(workspace: Workspace, view: ModelView, reference: int, offsets: dict[str, float], *,
                 steps: int | None, samples: int, seed: int, guidance: float | None = None) -> Generation:
    """Generate ``samples`` trials at the navigated code (fixed noise per seed) and decode their reaches.

    ``steps`` None: the model's default. ``guidance`` applies to GNOCCHI models trained with code
    dropout (None: the model's default). The readout's numbers come from the mean reach."""
    start = time.perf_counter()
    code = navigate_code(view, reference, offsets)
    codes = np.repeat(code[None].astype(np.float32), samples, axis=0)
    model = view.model
    used_steps = steps or default_steps(model)
    used_guidance = (guidance if guidance is not None else model.config.guidance) if has_guidance(model) else None
    rates = model.generate(codes, seed=seed, steps=steps,  # LFADS has no sampler: ignores both
                           guidance=guidance_for(model, guidance)).rates
    paths = workspace.decoder.position(workspace.decoder.predict(rates))
    mean_path = paths.mean(axis=0)
    decoded = reach_variables(mean_path[None], workspace.data.bin_centers_ms)[0]
    info = workspace.data.trial_info.iloc[reference]
    commanded = np.array([info[v] + offsets.get(v, 0.0) for v in VARIABLES], dtype=np.float64)
    return Generation(rates.mean(axis=0), rates, paths, mean_path, decoded, commanded, code,
                      time.perf_counter() - start, str(getattr(model, "device", "cpu")), used_steps, used_guidance)
