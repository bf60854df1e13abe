"""What the dashboard works on, computed once per server: the dataset, the models, their codes and axes.

`load_workspace` is wrapped in `pn.cache` by the app, so every browser session shares one copy
(models load once per server, not per session). Everything here is plain numpy / torch, so the
view models can be tested without a browser.

What a workspace offers follows from the dataset (`gnocchi_core.data.readiness`):

* with hand kinematics (`has_reaches`): sliders for the reach variables (absolute, cm) and PCs, any
  other continuous trial variable as an extra slider, a behaviour decoder and the reach panel;
* with condition labels but no kinematics (`has_conditions`): sliders along the conditions' leading
  discriminant directions (s.d.) and PCs; no decoder and no reach panel;
* with neither: PC sliders only.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from gnocchi_core.analysis.decoding import VARIABLES, BehaviourDecoder, reach_variables
from gnocchi_core.analysis.metrics import behaviour_axes, principal_axes
from gnocchi_core.data.preprocessing import smoothed_rates
from gnocchi_core.data.readiness import has_conditions, has_reaches, missing_conditions, missing_reach
from gnocchi_core.data.trialdata import TrialData, load_dataset
from gnocchi_core.errors import GnocchiError
from gnocchi_core.models import load_model
from gnocchi_core.models.base import CONFIG_FILE, trained_shapes
from gnocchi_core.workflows import DEFAULT_DATA, DEFAULT_MODELS, load_decoder

from .axes import condition_axes, condition_centroids, neuron_order, variable_axis
from .variables import REACH_FIRST, colour_options, navigable_columns

N_PCS = 4
N_CONDITION_AXES = 2  # sliders along the leading discriminant directions of the conditions (no kinematics)
PC_AXES = ("pc1", "pc2")
REACH_AXES = VARIABLES + PC_AXES  # the sliders of a dataset with kinematics
DEFAULT_SIGMA_MS = 40.0  # recorded-rate smoothing without a decoder (BehaviourDecoder's default)
COLOUR_VARIABLES = REACH_FIRST


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
    """One model as the dashboard needs it: its codes of every trial and the directions to move them along."""

    name: str
    model: object
    codes: np.ndarray  # (trials, L)
    axes: np.ndarray  # (L, 4) behaviour axes, VARIABLES order (cm → code); (L, 0) without kinematics
    pc_axes: np.ndarray  # (N_PCS, L) unit principal axes
    pc_scale: np.ndarray  # (N_PCS,) standard deviation of the codes along each
    pc_mean: np.ndarray  # (L,)
    pcs: np.ndarray  # (trials, N_PCS)
    condition_axes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (k, L) unit discriminants
    condition_scale: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (k,) s.d. of the codes along each
    variable_axes: dict[str, np.ndarray] = field(default_factory=dict)  # other trial variables: code per unit
    centroids: np.ndarray | None = None  # (conditions, L) mean code of each condition (labelled data)
    centroid_labels: np.ndarray | None = None  # (conditions,) their condition_id
    spread: float = 1.0  # median distance of a trial's code to its condition's centroid

    def project(self, codes: np.ndarray) -> np.ndarray:
        return (np.atleast_2d(codes) - self.pc_mean) @ self.pc_axes.T

    def direction(self, axis: str) -> np.ndarray:
        """The code displacement of one slider unit along ``axis``: a reach variable or another trial
        variable (one unit of it, the others held fixed), 'pc1'.. or 'cond1'.. (one s.d. of the codes)."""
        if axis in VARIABLES and self.axes.shape[1] == len(VARIABLES):
            return self.axes[:, VARIABLES.index(axis)]
        if axis in self.variable_axes:
            return self.variable_axes[axis]
        for prefix, units, scale in (("pc", self.pc_axes, self.pc_scale),
                                     ("cond", self.condition_axes, self.condition_scale)):
            k = axis[len(prefix):]
            if axis.startswith(prefix) and k.isdigit() and 1 <= int(k) <= len(units):
                return scale[int(k) - 1] * units[int(k) - 1]
        raise GnocchiError(f"unknown navigation axis '{axis}'")

    def nearest_condition(self, code: np.ndarray) -> tuple[int, float] | None:
        """The condition whose centroid is nearest ``code`` and the distance in units of `spread` (None
        without condition labels)."""
        if self.centroids is None:
            return None
        distance = np.linalg.norm(self.centroids - code, axis=1)
        k = int(np.argmin(distance))
        return int(self.centroid_labels[k]), float(distance[k] / self.spread)


@dataclass
class Workspace:
    data: TrialData
    decoder: BehaviourDecoder | None  # None without hand kinematics: nothing decodes reaches
    models: dict[str, ModelView]
    neuron_order: np.ndarray  # neurons sorted as `neuron_label` says
    real_paths: np.ndarray | None  # (trials, bins, 2) recorded hand position; None without kinematics
    targets: pd.DataFrame | None  # unique targets with a held-out flag; None without kinematics
    load_seconds: float
    rate_ceiling: float = 1.0  # 99th percentile of the smoothed recorded rates (of ~200 trials): one colour scale
    axes: tuple[str, ...] = REACH_AXES  # the sliders, in order
    variables: tuple[str, ...] = ()  # other trial variables an extra slider can move along (with kinematics)
    colours: tuple[str, ...] = COLOUR_VARIABLES  # what the codes can be coloured by
    default_colour: str = "target_x"
    conditions: bool = True  # trials carry condition labels (`has_conditions`)
    neuron_label: str = "neuron (by preferred target)"
    note: str = ""  # what the page leaves out for this dataset, and why

    @property
    def has_reaches(self) -> bool:
        return self.decoder is not None

    @property
    def sigma_ms(self) -> float:
        return self.decoder.sigma_ms if self.decoder is not None else DEFAULT_SIGMA_MS

    def recorded_rates(self, trial: int) -> np.ndarray:
        """(bins, neurons) recorded rates of one trial, smoothed as the decoder reads them (spikes/s)."""
        return smoothed_rates(self.data.spikes[trial], self.data.bin_ms, self.sigma_ms)

    def absolute(self, axis: str) -> bool:
        """Whether a slider along ``axis`` reads the variable's value (reach and trial variables), not a shift."""
        return (self.has_reaches and axis in VARIABLES) or axis in self.variables

    def trial_value(self, axis: str, trial: int) -> float:
        """A trial's value of an absolute axis (the median over trials where the trial lacks it); 0 for a shift."""
        if not self.absolute(axis):
            return 0.0
        values = self.data.trial_info[axis].to_numpy(dtype=np.float64)
        return float(values[trial]) if np.isfinite(values[trial]) else float(np.nanmedian(values))


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



def data_shape(data_path: Path) -> tuple[int, int]:
    """(bins, neurons) of a dataset file, read without loading it."""
    try:
        with h5py.File(data_path, "r") as f:
            return tuple(f["spikes"].shape[1:])
    except (OSError, KeyError) as err:
        raise GnocchiError(f"{data_path}: cannot read the dataset ({type(err).__name__}: {err})") from err


def model_shapes(models_dir: Path) -> dict[str, tuple]:
    """(bins, neurons) each model folder in ``models_dir`` was trained on (from its config.json)."""
    model_folders(models_dir)  # says why when there is no folder or no model in it
    return trained_shapes(models_dir)


def compatible_models(models_dir: Path, data_path: Path) -> list[str]:
    """Model folders in ``models_dir`` trained on data of ``data_path``'s shape (from their config.json)."""
    shape = data_shape(data_path)
    return [name for name, trained in model_shapes(models_dir).items() if trained == shape]


def mismatch(models_dir: Path, data_path: Path) -> str:
    """Why no model in ``models_dir`` fits ``data_path``: the shapes, for the error message."""
    try:
        bins, neurons = data_shape(data_path)
        trained = ", ".join(f"{name} {b} × {n}" for name, (b, n) in model_shapes(models_dir).items())
    except GnocchiError as err:
        return str(err)
    return f"it has {bins} bins × {neurons} neurons; the models were trained on {trained}"


def fitting_trials(data: TrialData) -> np.ndarray:
    """The trials axes are fitted on: the held-in training trials, else every held-in trial, else all."""
    for rows in (data.heldin_conditions("train"), data.heldin_conditions("train", "valid", "test")):
        if rows.any():
            return rows
    return np.ones(data.n_trials, bool)


def load_workspace(models_dir: str | os.PathLike, data_path: str | os.PathLike, device: str = "auto",
                   names: tuple[str, ...] | None = None) -> Workspace:
    """Load the dataset and the models in ``models_dir`` (all, or ``names``); encode all trials; fit axes
    on the held-in training trials: reach and trial-variable axes with kinematics, discriminant axes of the
    conditions without; PCs always."""
    start = time.perf_counter()
    data = load_dataset(data_path)
    info = data.trial_info
    reaches, conditions = has_reaches(data), has_conditions(data)
    train = fitting_trials(data)
    behaviour = info[list(VARIABLES)].to_numpy(dtype=np.float64) if reaches else None
    candidates = navigable_columns(info, train) if reaches else []
    labels = info["condition_id"].to_numpy()
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
        axes = behaviour_axes(codes[train], behaviour[train])[0] if reaches else np.zeros((codes.shape[1], 0))
        pc_axes, _, pc_mean = principal_axes(codes, N_PCS)
        pcs = (codes - pc_mean) @ pc_axes.T
        result = ModelView(name, model, codes, axes, pc_axes, pcs.std(axis=0), pc_mean, pcs)
        for column in candidates:
            axis = variable_axis(codes[train], behaviour[train], info[column].to_numpy(np.float64)[train])
            if axis is not None:
                result.variable_axes[column] = axis
        if conditions:
            result.centroids, result.centroid_labels, result.spread = condition_centroids(codes, labels)
            if not reaches:
                result.condition_axes = condition_axes(codes[train], labels[train], N_CONDITION_AXES)
                result.condition_scale = (codes @ result.condition_axes.T).std(axis=0)
        return result

    with ThreadPoolExecutor(max(1, len(picked))) as pool:  # encoders overlap: their kernels release the GIL
        models = dict(zip(picked, pool.map(view, picked)))
    if not models:
        raise GnocchiError("no model selected")
    decoder = load_decoder(next(iter(picked.values())), data) if reaches else None
    sigma_ms = decoder.sigma_ms if decoder is not None else DEFAULT_SIGMA_MS
    some = smoothed_rates(data.spikes[::max(1, data.n_trials // 200)], data.bin_ms, sigma_ms)
    order, neuron_label = neuron_order(data.spikes, info, conditions)
    colours = tuple(colour_options(info)) or ("trial_id",)
    n_conditions = min(len(v.condition_axes) for v in models.values())
    return Workspace(
        data, decoder, models, order, data.behavior["hand_pos"] if reaches else None,
        target_table(info) if reaches else None, time.perf_counter() - start, float(np.percentile(some, 99)) or 1.0,
        axes=REACH_AXES if reaches else tuple(f"cond{k + 1}" for k in range(n_conditions)) + PC_AXES,
        variables=tuple(c for c in candidates if all(c in v.variable_axes for v in models.values())),
        colours=colours, default_colour=_default_colour(reaches, conditions, colours), conditions=conditions,
        neuron_label=neuron_label, note=_note(data, reaches, conditions))


def _default_colour(reaches: bool, conditions: bool, colours: tuple[str, ...]) -> str:
    for wanted, applies in (("target_x", reaches), ("condition_id", conditions)):
        if applies and wanted in colours:
            return wanted
    return colours[0]


def _note(data: TrialData, reaches: bool, conditions: bool) -> str:
    """What the page leaves out, and why (empty for a dataset with kinematics)."""
    if reaches:
        return ""
    note = f"No reach panel or decoder: {missing_reach(data)}."
    if not conditions:
        note += f" No condition axes: {missing_conditions(data)}."
    return note


def target_table(info: pd.DataFrame) -> pd.DataFrame:
    table = info.groupby(["target_x", "target_y"], as_index=False)["heldout_condition"].max()
    return table.rename(columns={"heldout_condition": "heldout"})


@dataclass
class Generation:
    """One model's answer to one navigation request. Without kinematics nothing is decoded: ``paths``,
    ``mean_path``, ``decoded`` and ``commanded`` are None."""

    rates: np.ndarray  # (bins, neurons) mean over samples, spikes/s
    samples: np.ndarray  # (samples, bins, neurons)
    paths: np.ndarray | None  # (samples, bins, 2) decoded hand position of each sample
    mean_path: np.ndarray | None  # (bins, 2) the mean decoded reach over the samples
    decoded: np.ndarray | None  # (4,) start x/y, target x/y of the mean reach
    commanded: np.ndarray | None  # (4,) reference behaviour + slider offsets
    code: np.ndarray  # (L,)
    seconds: float
    device: str
    steps: int | None = None  # DDIM steps used (None: the model has no sampler)
    guidance: float | None = None  # guidance scale used (None: the model has no unconditional mode)
    nearest_condition: tuple[int, float] | None = None  # (condition, distance in spreads) of the code

    @property
    def target_error_cm(self) -> float:
        """Distance between the mean reach's decoded end and the commanded target (cm)."""
        return float(np.linalg.norm(self.decoded[2:] - self.commanded[2:]))

    def unintended_cm(self, baseline: "Generation", moved: set[str]) -> float:
        """Summed |change| since ``baseline`` (the reference, no offsets) of the variables not moved (cm)."""
        fixed = [k for k, v in enumerate(VARIABLES) if v not in moved]
        return float(np.abs(self.decoded[fixed] - baseline.decoded[fixed]).sum())


def navigate_code(view: ModelView, reference: int, offsets: dict[str, float]) -> np.ndarray:
    """The reference trial's code moved by ``offsets``: reach variables in cm, other trial variables in their
    own units, 'pc1'.. and 'cond1'.. in s.d. of the codes (`ModelView.direction`)."""
    code = view.codes[reference].astype(np.float64).copy()
    for name, value in offsets.items():
        if value:
            code += value * view.direction(name)
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
    """Generate ``samples`` trials at the navigated code (fixed noise per seed) and, with kinematics, decode
    their reaches.

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
    paths = mean_path = decoded = commanded = None
    if workspace.decoder is not None:
        paths = workspace.decoder.position(workspace.decoder.predict(rates))
        mean_path = paths.mean(axis=0)
        decoded = reach_variables(mean_path[None], workspace.data.bin_centers_ms)[0]
        info = workspace.data.trial_info.iloc[reference]
        commanded = np.array([info[v] + offsets.get(v, 0.0) for v in VARIABLES], dtype=np.float64)
    return Generation(rates.mean(axis=0), rates, paths, mean_path, decoded, commanded, code,
                      time.perf_counter() - start, str(getattr(model, "device", "cpu")), used_steps, used_guidance,
                      view.nearest_condition(code))
