"""Multi-step workflows behind the CLI: evaluate model folders, generate trials.

A model folder may carry ``decoder.json`` (the behaviour decoder fitted on its training data)
and ``training.json`` (its per-epoch history); `gnocchi build-assets` (`assets.py`) writes both.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .analysis.decoding import VARIABLES, BehaviourDecoder
from .analysis.metrics import behaviour_axes, grid_deltas, navigation_codes
from .analysis.evaluation import behaviour_table, grid_spacing
from .analysis.report import evaluate_models, write_report
from .data.motornet_truth import with_ground_truth
from .data.readiness import evaluation_kind, readiness
from .data.trialdata import Provenance, TrialData, load_dataset
from .errors import GnocchiError
from .models import load_model
from .models.base import poisson_spikes, read_json

DECODER_FILE, HISTORY_FILE = "decoder.json", "training.json"
ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_DATA = ASSETS / "motornet_reach" / "motornet_reach.h5"
DEFAULT_MODELS = ASSETS / "models"


def heldin_training_trials(data: TrialData) -> TrialData:
    return data.subset(trials=data.heldin_conditions("train"))


def load_decoder(model_dir: str | os.PathLike, data: TrialData | None) -> BehaviourDecoder:
    """The model folder's decoder, else one fitted on ``data``'s held-in training trials."""
    path = Path(model_dir) / DECODER_FILE
    if path.is_file():
        return BehaviourDecoder.from_dict(read_json(path), path=path)
    if data is None:
        raise GnocchiError(f"{model_dir}: no {DECODER_FILE}; pass --data to fit a behaviour decoder")
    return BehaviourDecoder.fit(heldin_training_trials(data))


def model_names(folders: list[str], names: list[str] | None) -> dict[str, str]:
    """{name: folder}; names default to the folders' base names and must be unique."""
    names = names or [Path(f).resolve().name for f in folders]
    if len(names) != len(folders):
        raise GnocchiError(f"{len(names)} --name for {len(folders)} --model: give one name per model")
    if len(set(names)) != len(names):
        raise GnocchiError(f"model names must be unique, found {names}; pass --name")
    return dict(zip(names, folders))


def load_evaluation_data(data_path: str | os.PathLike) -> TrialData:
    """The dataset, with its ground truth regenerated when it is a MotorNet simulation shipped without
    it (`motornet_truth.with_ground_truth`)."""
    return with_ground_truth(load_dataset(data_path), data_path)


def evaluate_folders(data_path: str, folders: list[str], out_dir: str, *, names: list[str] | None = None,
                     samples: int = 8, seed: int = 0, device: str = "auto", progress: bool = True) -> dict:
    """`gnocchi evaluate`: every model on one dataset, one report (one seed per model). Returns the
    report (report.json's content). A dataset with hand kinematics gets the full reach evaluation
    (with a behaviour decoder fitted on its held-in training trials), one with condition labels only
    the neural evaluation (`analysis.neural`; no decoder); a GnocchiError names what is missing when
    it has neither, or no held-in train and test trials (`readiness`)."""
    data = load_evaluation_data(data_path)
    missing = readiness(data)["evaluate"]
    if missing:
        raise GnocchiError(f"{data_path} cannot be evaluated: {missing}")
    models = {name: load_model(folder, device=device) for name, folder in model_names(folders, names).items()}
    for name, model in models.items():
        if (model.n_bins, model.n_neurons) != (data.n_bins, data.n_neurons):
            raise GnocchiError(f"model '{name}' was trained on {model.n_bins} bins × {model.n_neurons} neurons; "
                               f"{data_path} has {data.n_bins} × {data.n_neurons}")
    decoder = BehaviourDecoder.fit(heldin_training_trials(data)) if evaluation_kind(data) == "reach" else None
    evaluations = evaluate_models(models, data, decoder, samples=samples, seed=seed, progress=progress)
    return write_report(evaluations, data, out_dir, source=Path(data_path).name)


# ---------------------------------------------------------------------- generation
def navigation_plan(model, data: TrialData, variable: str, *, points: int = 9,
                    references: int = 1) -> tuple[np.ndarray, pd.DataFrame]:
    """Codes walking along ``variable``'s behaviour axis, from reference trials, so the commanded
    value visits ``points`` positions across the span of the dataset's values (never off the grid).

    References: the first ``references`` held-in test trials (training trials when there is no
    test split). Returns codes (points·references, L) and a table of reference trial, δ and the
    commanded value (cm).
    """
    if variable not in VARIABLES:
        raise GnocchiError(f"unknown axis '{variable}': choose one of {list(VARIABLES)}")
    info = data.trial_info
    behaviour = behaviour_table(data)
    grid_spacing(behaviour[:, 2:])  # a clear error when there is no grid to walk across
    train = data.heldin_conditions("train")
    codes = model.encode(data)
    axes, _ = behaviour_axes(codes[train], behaviour[train])
    pool = np.flatnonzero(data.heldin_conditions("test"))
    pool = pool if len(pool) else np.flatnonzero(train)
    chosen = pool[:references]
    k = VARIABLES.index(variable)
    positions = np.linspace(behaviour[:, k].min(), behaviour[:, k].max(), points)  # the grid's span, never off it
    deltas = grid_deltas(behaviour[chosen, k], positions[0], positions[-1], points)  # (points, refs)
    stepped = navigation_codes(codes[chosen], axes[:, k], deltas)  # (points, refs, L)
    table = pd.DataFrame({"reference_trial": np.tile(info["trial_id"].to_numpy()[chosen], points),
                          f"delta_{variable}_cm": deltas.ravel(),
                          f"commanded_{variable}_cm": np.repeat(positions, len(chosen))})
    return stepped.reshape(-1, codes.shape[1]), table


def generated_trials(model, codes: np.ndarray, *, seed: int = 0, steps: int | None = None,
                     guidance: float | None = None, decoder: BehaviourDecoder | None = None, extra: pd.DataFrame | None = None,
                     source: str = "") -> TrialData:
    """Generated trials as a dataset: Poisson spikes, the rates they were drawn from as ground truth,
    decoded hand kinematics as behaviour, and the codes as 'latents' (constant over bins).
    ``steps``, ``guidance``: GNOCCHI's DDIM steps and guidance scale (default the model's)."""
    out = model.generate(codes, seed=seed, steps=steps, guidance=guidance)
    spikes = poisson_spikes(out.rates, model.bin_ms, seed)
    behavior, units = {}, {}
    if decoder is not None:
        decoded = decoder.predict(out.rates)
        for name in ("hand_pos", "hand_vel"):
            columns = [decoder.outputs.index(f"{name}_x"), decoder.outputs.index(f"{name}_y")]
            behavior[name] = decoded[..., columns]
            units[name] = decoder.units[columns[0]]
    # training material (the point of generating): every fifth trial validates, as lfads-torch needs both
    split = np.where(np.arange(len(codes)) % 5 == 4, "valid", "train")
    info = pd.DataFrame({"trial_id": np.arange(len(codes)), "split": split})
    if extra is not None:
        info = pd.concat([info, extra.reset_index(drop=True)], axis=1)
    latents = np.repeat(np.asarray(codes, dtype=np.float32)[:, None, :], model.n_bins, axis=1)
    heldout = np.asarray(model.data_info.get("heldout_neurons", [False] * model.n_neurons), dtype=bool)
    return TrialData(spikes=spikes, bin_ms=model.bin_ms, t0_ms=model.data_info.get("t0_ms", 0.0), trial_info=info,
                     behavior=behavior, behavior_units=units, rates=out.rates, latents=latents,
                     heldout_neurons=heldout, provenance=Provenance(
                         source=f"generated by a {model.kind} model" + (f" trained on {source}" if source else ""),
                         description="generated trials: spikes drawn from the generated rates (stored as 'rates'); "
                                     "behaviour decoded from the rates; latents = the codes"))
