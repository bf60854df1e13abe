"""Multi-step workflows behind the CLI: evaluate model folders, generate trials, build the shipped assets.

A model folder may carry ``decoder.json`` (the behaviour decoder fitted on its training data)
and ``training.json`` (its per-epoch history); `build_assets` writes both.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .analysis.decoding import VARIABLES, BehaviourDecoder
from .analysis.metrics import behaviour_axes, navigation_codes
from .analysis.report import behaviour_table, evaluate_models, grid_spacing, write_report
from .atomic import atomic_path
from .data.trialdata import Provenance, TrialData, load_dataset
from .errors import GnocchiError
from .models import load_model
from .models.base import poisson_spikes

DECODER_FILE, HISTORY_FILE = "decoder.json", "training.json"
ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_DATA = ASSETS / "motornet_reach" / "motornet_reach.h5"
DEFAULT_MODELS = ASSETS / "models"
#: GNOCCHI on the MotorNet dataset (154 training trials overfit within ~300 epochs): a stronger
#: reconstruction term, a weaker MMD and dropout in the denoiser raised code SNR from 4.3 / 6.2
#: (defaults) to 32 / 40 and cut the held-out target error from 3.2 to 1.5 cm; the sweep is in
#: the closing note of the analyses issue (each row one `gnocchi train gnocchi --config` + evaluate).
ASSET_GNOCCHI = {"lambda_rec": 20.0, "lambda_mmd": 0.1, "dropout": 0.4, "train": {"epochs": 600, "patience": 200}}


def heldin_training_trials(data: TrialData) -> TrialData:
    return data.subset(trials=data.heldin_conditions("train"))


def load_decoder(model_dir: str | os.PathLike, data: TrialData | None) -> BehaviourDecoder:
    """The model folder's decoder, else one fitted on ``data``'s held-in training trials."""
    path = Path(model_dir) / DECODER_FILE
    if path.is_file():
        return BehaviourDecoder.from_dict(json.loads(path.read_text()))
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


def evaluate_folders(data_path: str, folders: list[str], out_dir: str, *, names: list[str] | None = None,
                     samples: int = 5, seed: int = 0, device: str = "auto", progress: bool = True) -> dict:
    """`gnocchi evaluate`: every model on one dataset, one report. Returns {model: {metric: value}}."""
    data = load_dataset(data_path)
    models = {name: load_model(folder, device=device) for name, folder in model_names(folders, names).items()}
    for name, model in models.items():
        if (model.n_bins, model.n_neurons) != (data.n_bins, data.n_neurons):
            raise GnocchiError(f"model '{name}' was trained on {model.n_bins} bins × {model.n_neurons} neurons; "
                               f"{data_path} has {data.n_bins} × {data.n_neurons}")
    decoder = BehaviourDecoder.fit(heldin_training_trials(data))
    evaluations = evaluate_models(models, data, decoder, samples=samples, seed=seed, progress=progress)
    write_report(evaluations, data, out_dir, source=Path(data_path).name)
    return {ev.name: ev.metrics for ev in evaluations}


# ---------------------------------------------------------------------- generation
def navigation_plan(model, data: TrialData, variable: str, *, steps: int = 9,
                    references: int = 1) -> tuple[np.ndarray, pd.DataFrame]:
    """Codes walking along ``variable``'s behaviour axis across the grid's span, from reference trials.

    References: the first ``references`` held-in test trials (training trials when there is no
    test split). Returns codes (steps·references, L) and a table of reference trial and δ (cm).
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
    span = np.ptp(behaviour[:, 2:], axis=0).max() if variable.startswith("target") else \
        np.ptp(behaviour[:, :2], axis=0).max()
    deltas = np.linspace(-span / 2, span / 2, steps)
    stepped = navigation_codes(codes[chosen], axes[:, VARIABLES.index(variable)], deltas)  # (steps, refs, L)
    table = pd.DataFrame({"reference_trial": np.tile(info["trial_id"].to_numpy()[chosen], steps),
                          f"delta_{variable}_cm": np.repeat(deltas, len(chosen))})
    return stepped.reshape(-1, codes.shape[1]), table


def generated_trials(model, codes: np.ndarray, *, seed: int = 0, steps: int | None = None,
                     decoder: BehaviourDecoder | None = None, extra: pd.DataFrame | None = None,
                     source: str = "") -> TrialData:
    """Generated trials as a dataset: Poisson spikes, the rates they were drawn from as ground truth,
    decoded hand kinematics as behaviour, and the codes as 'latents' (constant over bins).
    ``steps``: sampler steps (GNOCCHI's DDIM; default the model's)."""
    out = model.generate(codes, seed=seed, steps=steps)
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


# ---------------------------------------------------------------------- the shipped assets
def build_assets(data_path: str | os.PathLike = DEFAULT_DATA, out_dir: str | os.PathLike = DEFAULT_MODELS, *,
                 seed: int = 0, device: str = "auto", progress: bool = True,
                 gnocchi_overrides: dict | None = None, lfads_overrides: dict | None = None) -> dict:
    """Train GNOCCHI and LFADS on the default dataset, keep only what the explorer needs, evaluate the pair.

    Writes OUT/gnocchi and OUT/lfads (config.json, model.pt, decoder.json, training.json) and
    OUT/report (report.json, report.md, figures). Training checkpoints are kept in
    OUT/.checkpoints/{model} until a model is finished, so a killed build resumes.
    """
    from .models.gnocchi import GnocchiConfig, GnocchiModel
    from .models.lfads import LfadsConfig, LfadsModel

    data = load_dataset(data_path)
    out_dir = Path(out_dir)
    decoder = BehaviourDecoder.fit(heldin_training_trials(data))
    builders = {"gnocchi": (GnocchiModel, GnocchiConfig, ASSET_GNOCCHI if gnocchi_overrides is None else gnocchi_overrides),
                "lfads": (LfadsModel, LfadsConfig, lfads_overrides or {})}
    timings = {}
    for name, (model_class, config_class, overrides) in builders.items():
        final = out_dir / name
        if (final / "model.pt").is_file() and (final / HISTORY_FILE).is_file():
            print(f"{name}: already built in {final} (delete it to rebuild)")
            continue
        overrides = json.loads(json.dumps(overrides))  # a copy
        overrides.setdefault("train", {}).setdefault("seed", seed)
        work = out_dir / ".checkpoints" / name
        resume = (work / "last.pt").is_file()
        print(f"{name}: training on {data_path}" + (" (resuming)" if resume else ""))
        start = time.perf_counter()
        model = model_class(config_class.from_dict(overrides), device=device).fit(data, work, resume=resume,
                                                                                progress=progress)
        timings[name] = time.perf_counter() - start
        staging = out_dir / f".{name}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        model.save(staging)
        with atomic_path(staging / DECODER_FILE) as tmp:
            tmp.write_text(json.dumps(decoder.to_dict()))
        with atomic_path(staging / HISTORY_FILE) as tmp:
            tmp.write_text(json.dumps({"seconds": round(timings[name], 1), "history": model.history}))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(out_dir / ".checkpoints", ignore_errors=True)
    metrics = evaluate_folders(str(data_path), [str(out_dir / "gnocchi"), str(out_dir / "lfads")],
                               str(out_dir / "report"), seed=seed, device=device, progress=progress)
    return {"metrics": metrics, "train_seconds": timings}
