"""`run_sweep`: the driver side of a sweep. Checks everything it can before Ray starts (the space, the
data, the output folder, a resume's settings), starts or joins the Ray runtime, runs or restores the
Tune experiment, then writes ``results.csv`` and ``best`` from the trial folders.

Ray is imported only inside `run_sweep` (`require_ray`), so the rest of the package never needs it."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_path, write_json
from ..data.lfads_h5 import load_training_data
from ..data.trialdata import TrialData
from ..errors import GnocchiError
from ..models.base import CONFIG_FILE
from .space import KINDS, SearchSpace, flatten, read_space

SCHEDULERS = ("asha", "pbt", "none")  # none: every trial trains to its epoch budget (plain random search)
DEFAULT_SCHEDULER = {"lfads": "pbt", "gnocchi": "asha"}
LABELS = {"lfads": "LFADS", "gnocchi": "GNOCCHI"}
RAY_DIR, TRIALS_DIR, EXPERIMENT = "ray", "trials", "sweep"
SETTINGS_FILE, RESULTS_FILE, BEST_DIR = "sweep.json", "results.csv", "best"
#: what each trial folder holds beside the model: its score, epochs, time, parameters and runs
TRIAL_FILE = "sweep_trial.json"
INSTALL_HINT = 'pip install -e ".[sweep]" (or pip install "ray[tune]>=2.60,<3")'
#: the settings a resume must share with the interrupted sweep (--address may change; Tune restores each trial with
#: the resources it was created with)
SAME_ON_RESUME = ("kind", "data", "space", "trials", "scheduler", "epochs", "seed", "objective", "cpus_per_trial",
                  "gpus_per_trial")
ASHA_REDUCTION = 3


def require_ray():
    """(ray, ray.tune), or a one-line GnocchiError saying how to install them."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise GnocchiError(f"gnocchi sweep needs Ray Tune, which is not installed: {INSTALL_HINT}") from None
    return ray, tune


@dataclass(frozen=True)
class Objective:
    """What a sweep ranks trials by: a key of the per-epoch history record, and whether higher is better."""

    key: str
    mode: str  # "max" or "min"
    label: str

    @property
    def worst(self) -> float:
        return -math.inf if self.mode == "max" else math.inf

    def better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b


#: what a sweep can rank by: the validation values each model records every epoch (its history's keys)
METRICS = {
    "lfads": {"valid_heldout_bps": Objective("valid_heldout_bps", "max", "held-out bits/spike"),
              "valid_loss": Objective("valid_loss", "min", "valid loss"),
              "valid_kl_ic": Objective("valid_kl_ic", "min", "valid initial-condition KL")},
    "gnocchi": {"valid_loss": Objective("valid_loss", "min", "valid loss"),
                "valid_score": Objective("valid_score", "min", "valid denoising (score) loss"),
                "valid_rec": Objective("valid_rec", "min", "valid reconstruction loss"),
                "valid_mmd": Objective("valid_mmd", "min", "valid code-prior MMD")},
}


def objective(kind: str, data: TrialData, metric: str | None = None) -> Objective:
    """``metric`` (a key of `METRICS`), or by default: LFADS's held-out neurons' bits per spike on the valid
    trials when the data holds out neurons, else its validation loss; GNOCCHI's validation loss."""
    heldout = bool(data.heldout_neurons.any())
    if metric is None:
        metric = "valid_heldout_bps" if kind == "lfads" and heldout else "valid_loss"
    if metric not in METRICS[kind]:
        raise GnocchiError(f"unknown metric {metric!r} for {kind}: expected one of {', '.join(METRICS[kind])}")
    if metric == "valid_heldout_bps" and not heldout:
        raise GnocchiError("metric valid_heldout_bps needs held-out neurons, and the data holds none out")
    return METRICS[kind][metric]


@dataclass
class SweepResult:
    """What a sweep left in ``out_dir``: one row per trial (as in results.csv), the best row, and whether every
    trial ended (False after an interrupt: continue with ``resume=True``)."""

    out_dir: Path
    objective: Objective
    rows: list[dict] = field(default_factory=list)
    best: dict | None = None
    complete: bool = True

    @property
    def best_dir(self) -> Path | None:
        return None if self.best is None else self.out_dir / BEST_DIR


def run_sweep(kind: str, data: str | os.PathLike, space: str | os.PathLike | SearchSpace, trials: int,
              out_dir: str | os.PathLike, *, scheduler: str | None = None, address: str | None = None,
              cpus_per_trial: float = 1, gpus_per_trial: float = 0, resume: bool = False, epochs: int | None = None,
              seed: int = 0, metric: str | None = None, num_cpus: int | None = None,
              num_gpus: int | None = None) -> SweepResult:
    """Train ``trials`` models of ``kind`` on ``data`` with hyper-parameters from ``space`` (a JSON file or a
    `SearchSpace`), on Ray Tune, into ``out_dir``; see the package docstring for what it holds.

    ``scheduler``: "asha", "pbt" or "none" (every trial trains to its epoch budget; default: PBT for LFADS, ASHA
    for GNOCCHI). ``address``: join that Ray
    cluster; without it a local Ray runtime starts in this process (``num_cpus`` / ``num_gpus``: its size, by
    default the machine's) and stops at the end. If Ray is already initialised in this process, it is used
    as it is. ``epochs``: each trial's maximum (``train.epochs``). ``resume``: continue the interrupted sweep
    in ``out_dir`` (the same settings, resources included; the address may differ). ``seed``: the search's random draws.
    ``metric``: what trials are ranked by, a key of `METRICS` (default: see `objective`).
    """
    ray, tune = require_ray()
    plan = _plan(kind, data, space, trials, out_dir, scheduler, cpus_per_trial, gpus_per_trial, resume, epochs, seed,
                 metric)
    from . import trial as trial_module  # imports ray.tune

    started = False
    if not ray.is_initialized():
        _init_ray(ray, address, plan["threads"], num_cpus, num_gpus)
        started = True
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's classic reporter, silent at verbose=0: our lines only
    pbt_log = trial_module.PbtLog()
    try:
        concurrent = _capacity(ray, cpus_per_trial, gpus_per_trial, address)
        _header(plan, address, concurrent, ray)
        _write_settings(plan)
        pbt_log.attach()
        with warnings.catch_warnings():  # one actor per trial run, on purpose: a stopped trial finishes its folder
            warnings.filterwarnings("ignore", message="Consider boosting PBT performance")
            grid = _tuner(tune, trial_module, plan).fit()
    finally:
        pbt_log.detach()
        if started:
            ray.shutdown()
    return _finish(plan, grid)


# ---------------------------------------------------------------------- before Ray
def _plan(kind, data, space, trials, out_dir, scheduler, cpus, gpus, resume, epochs, seed, metric=None) -> dict:
    """Every check that needs no Ray, and the settings the trials run with."""
    if kind not in KINDS:
        raise GnocchiError(f"unknown model kind {kind!r}: expected one of {', '.join(KINDS)}")
    scheduler = scheduler or DEFAULT_SCHEDULER[kind]
    if scheduler not in SCHEDULERS:
        raise GnocchiError(f"unknown scheduler {scheduler!r}: expected one of {', '.join(SCHEDULERS)}")
    for name, value, low in (("trials", trials, 1), ("epochs", epochs, 1), ("seed", seed, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise GnocchiError(f"{name} must be an integer ≥ {low}, got {value!r}")
    for name, value in (("cpus_per_trial", cpus), ("gpus_per_trial", gpus)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise GnocchiError(f"{name} must be a number ≥ 0, got {value!r}")
    if not cpus > 0:
        raise GnocchiError(f"cpus_per_trial must be positive, got {cpus!r}")
    out = Path(out_dir).resolve()
    data_path = Path(data).resolve()
    if out == data_path or (out.exists() and data_path.exists() and os.path.samefile(out, data_path)):
        raise GnocchiError(f"{out_dir}: the output folder is the dataset (--data); write to another folder")
    if out.exists() and not out.is_dir():
        raise GnocchiError(f"{out_dir}: is a file; the output names a folder")
    space = space if isinstance(space, SearchSpace) else read_space(space, kind)
    if space.kind != kind:
        raise GnocchiError(f"the search space is for {space.kind}, not {kind}")
    config = space.config(epochs=epochs)
    if scheduler == "pbt":
        if trials < 2:
            raise GnocchiError("population-based training needs at least 2 trials")
        if not space.perturbable():
            from .space import PERTURBABLE

            raise GnocchiError(f"{space.path or 'the space'}: population-based training perturbs searched fields "
                               f"among {', '.join(PERTURBABLE[kind])}, and the space searches none of them")
    dataset = load_training_data(data_path)
    split = dataset.trial_info["split"]
    for name in ("train", "valid"):
        if not (split == name).any():
            raise GnocchiError(f"{data}: no '{name}' trials; a sweep trains on 'train' and scores on 'valid'")
    goal = objective(kind, dataset, metric)
    settings = {"kind": kind, "data": str(data_path), "space": space.source, "trials": trials,
                "scheduler": scheduler, "epochs": config.train.epochs, "seed": seed,
                "objective": goal.key, "cpus_per_trial": cpus, "gpus_per_trial": gpus}
    _check_out(out, settings, resume)
    return {"kind": kind, "out": out, "data": data_path, "dataset": dataset, "space": space, "trials": trials,
            "scheduler": scheduler, "epochs": config.train.epochs, "checkpoint_every": config.train.checkpoint_every,
            "seed": seed, "objective": goal, "cpus": cpus, "gpus": gpus, "resume": resume,
            "threads": max(1, int(cpus)), "device": "cuda" if gpus > 0 else "cpu", "settings": settings}


def _check_out(out: Path, settings: dict, resume: bool) -> None:
    """A new sweep never writes over a previous one; a resume continues one with the same settings."""
    previous = [p for p in (out / SETTINGS_FILE, out / RAY_DIR, out / TRIALS_DIR) if p.exists()]
    if previous and not resume:
        raise GnocchiError(f"{out}: holds a sweep ({previous[0].name}); --resume continues it, or choose another "
                           "output folder")
    if resume:
        if not (out / SETTINGS_FILE).is_file():
            raise GnocchiError(f"{out}: no sweep to resume (no {SETTINGS_FILE})")
        before = json.loads((out / SETTINGS_FILE).read_text())
        differ = [f"{key}: {json.dumps(before.get(key))} → {json.dumps(settings[key])}" for key in SAME_ON_RESUME
                  if before.get(key) != settings[key]]
        if differ:
            shown = "; ".join(d if len(d) < 120 else d[:117] + "..." for d in differ)
            raise GnocchiError(f"{out}: cannot resume: these settings differ from the interrupted sweep's ({shown}); "
                               f"resume with the same command (see {out / SETTINGS_FILE})")


def _write_settings(plan: dict) -> None:
    """sweep.json: from here on the folder holds a sweep (written once the runtime can run a trial)."""
    plan["out"].mkdir(parents=True, exist_ok=True)
    write_json(plan["out"] / SETTINGS_FILE, plan["settings"])


# ---------------------------------------------------------------------- Ray
def _init_ray(ray, address: str | None, threads: int, num_cpus, num_gpus) -> None:
    """Join the cluster at ``address``, or start a local runtime in this process: no dashboard, no usage
    statistics, workers' output kept off this terminal (errors come back through Tune)."""
    variables = {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    common = dict(log_to_driver=False, logging_level=logging.ERROR, runtime_env={"env_vars": variables})
    if address:
        try:
            ray.init(address=address, **common)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise GnocchiError(f"cannot join the Ray cluster at {address}: {str(err).splitlines()[0]}") from None
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, **common)


def _capacity(ray, cpus: float, gpus: float, address: str | None) -> int:
    """How many trials fit at once on the runtime's nodes; an error when not even one does."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    fits = sum(int(min(r.get("CPU", 0) / cpus, r.get("GPU", 0) / gpus if gpus else math.inf) + 1e-9) for r in nodes)
    if fits < 1:
        total = ray.cluster_resources()
        where = f"the Ray cluster at {address}" if address else "the local Ray runtime"
        raise GnocchiError(f"a trial needs {cpus:g} CPU{'s' * (cpus != 1)}" + (f" and {gpus:g} GPU" if gpus else "")
                           + f", more than any node of {where} has ({total.get('CPU', 0):g} CPUs, "
                           f"{total.get('GPU', 0):g} GPUs in all)")
    return fits


def _header(plan: dict, address, concurrent: int, ray) -> None:
    total = ray.cluster_resources()
    goal = plan["objective"]
    where = f"Ray cluster at {address}" if address else "local Ray runtime"
    each = f"{plan['cpus']:g} CPU" + (f", {plan['gpus']:g} GPU" if plan["gpus"] else "")
    print(f"{'resuming' if plan['resume'] else 'sweep'}: {plan['trials']} {LABELS[plan['kind']]} trials on "
          f"{plan['data'].name}, up to {plan['epochs']} epochs each, scheduler {plan['scheduler'].upper()}; "
          f"objective: {goal.label} on the valid trials ({'higher' if goal.mode == 'max' else 'lower'} is better)")
    cpus, gpus = total.get("CPU", 0), total.get("GPU", 0)
    print(f"{where}: {cpus:g} CPU{'s' * (cpus != 1)}, {gpus:g} GPU{'s' * (gpus != 1)}; up to {concurrent} trial"
          f"{'s' * (concurrent != 1)} at a time ({each} each); trial folders in {plan['out'] / TRIALS_DIR}",
          flush=True)


def _scheduler(plan: dict, trial_module):
    from ray.tune.schedulers import ASHAScheduler, PopulationBasedTraining

    if plan["scheduler"] == "none":
        return None
    if plan["scheduler"] == "asha":
        epochs = plan["epochs"]
        return ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=max(1, epochs // 10),
                             reduction_factor=ASHA_REDUCTION)
    space = plan["space"]
    from .space import ClipToSpace

    return PopulationBasedTraining(
        time_attr="epoch", perturbation_interval=plan["checkpoint_every"], hyperparam_mutations=space.mutations(),
        custom_explore_fn=ClipToSpace({k: space.domains[k] for k in space.perturbable()}),
        quantile_fraction=0.25, resample_probability=0.25, log_config=True)


def _tuner(tune, trial_module, plan: dict):
    """A new Tune experiment, or the interrupted one restored (its unfinished trials continue)."""
    trainable = trial_module.trainable(plan)
    experiment = plan["out"] / RAY_DIR / EXPERIMENT
    if plan["resume"] and tune.Tuner.can_restore(str(experiment)):
        return tune.Tuner.restore(str(experiment), trainable=trainable, resume_unfinished=True, resume_errored=True)
    if plan["resume"]:  # killed before Tune saved its state: nothing trained yet is reusable with certainty
        print(f"{experiment}: no experiment state to restore; starting the sweep again")
        for folder in (plan["out"] / RAY_DIR, plan["out"] / TRIALS_DIR):
            shutil.rmtree(folder, ignore_errors=True)
    from ray.tune.search import BasicVariantGenerator

    goal = plan["objective"]
    return tune.Tuner(
        trainable, param_space=plan["space"].param_space(),
        tune_config=tune.TuneConfig(
            metric="score", mode=goal.mode, scheduler=_scheduler(plan, trial_module), num_samples=plan["trials"],
            search_alg=BasicVariantGenerator(random_state=plan["seed"]), reuse_actors=False,
            trial_name_creator=trial_module.trial_name, trial_dirname_creator=trial_module.trial_name),
        run_config=tune.RunConfig(
            name=EXPERIMENT, storage_path=str(plan["out"] / RAY_DIR), verbose=0,
            callbacks=[trial_module.Progress(goal.label, plan["epochs"])],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=4), failure_config=tune.FailureConfig(max_failures=0)))


# ---------------------------------------------------------------------- after Ray
def _finish(plan: dict, grid) -> SweepResult:
    """results.csv and best from the trial folders; the best trial printed."""
    out, goal, space = plan["out"], plan["objective"], plan["space"]
    result = SweepResult(out, goal)
    for trial in sorted(grid, key=lambda r: Path(r.path).name):
        result.rows.append(_row(out, Path(trial.path).name, trial, space.searched))
    # Tune marks the trials of an interrupted run terminated in memory (its saved state keeps them running for a
    # restore): a trial has ended when its folder says so (or it failed)
    ended = sum(1 for row in result.rows if row["ended"])
    result.complete = ended >= plan["trials"]
    columns = ["trial", "score", "best_epoch", "epochs", "seconds", "stopped", *space.searched, "folder"]
    with atomic_path(out / RESULTS_FILE) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(result.rows)
    usable = [r for r in result.rows if r["folder"] and r["score"] != "" and math.isfinite(r["score"])]
    if usable:
        best = usable[0]
        for row in usable[1:]:
            best = row if goal.better(row["score"], best["score"]) else best
        result.best = best
        _copy_folder(out / best["folder"], out / BEST_DIR)
    failed = [r for r in result.rows if r["stopped"].startswith("error")]
    for row in failed:
        print(f"{row['trial']} failed: {row['stopped'][len('error: '):]}", file=sys.stderr)
    print(f"results: {out / RESULTS_FILE} ({len(result.rows)} trials"
          + (f", {len(failed)} failed" if failed else "") + ")")
    if result.best:
        b = result.best
        print(f"best: {b['trial']}, {goal.label} {b['score']:.4f} (epoch {b['best_epoch']} of {b['epochs']}); "
              f"model copied to {out / BEST_DIR}")
    if not result.complete:
        print(f"interrupted: {ended} of {plan['trials']} trials ended; continue with the same command and --resume",
              file=sys.stderr)
    elif not result.best:
        raise GnocchiError(f"no trial trained a model; see the errors in {out / RAY_DIR / EXPERIMENT}")
    return result


def _row(out: Path, name: str, trial, searched: list[str]) -> dict:
    """One results.csv row from a trial folder's TRIAL_FILE (and Ray's result for an error)."""
    folder = out / TRIALS_DIR / name
    summary = json.loads((folder / TRIAL_FILE).read_text()) if (folder / TRIAL_FILE).is_file() else {}
    params = summary.get("params") or flatten(trial.config or {})
    score = summary.get("score")
    row = {"trial": name, "score": "" if score is None else float(score), "best_epoch": summary.get("best_epoch", ""),
           "epochs": summary.get("epochs", ""), "seconds": round(summary["seconds"], 1) if summary else "",
           "stopped": summary.get("stopped") or "not run",
           "folder": f"{TRIALS_DIR}/{name}" if (folder / CONFIG_FILE).is_file() and summary else "",
           "ended": bool(summary.get("final")) or trial.error is not None}  # not a results.csv column
    if trial.error is not None:
        lines = [line.strip() for line in str(trial.error).splitlines() if line.strip()]
        row["stopped"] = f"error: {lines[-1] if lines else type(trial.error).__name__} (see {Path(trial.path)})"
    row.update({key: params.get(key, "") for key in searched})
    return row


def _copy_folder(source: Path, target: Path) -> None:
    """``target`` becomes a copy of ``source``, replaced in one rename once the copy is whole."""
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
