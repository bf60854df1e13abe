"""`gnocchi build-assets`: the shipped dataset, every seed of the default models, and both reports.

Layout of the output folder (the shipped one is ``assets/``)::

    motornet_reach/motornet_reach.h5   simulated from motornet_reach/policy.pt (spikes + behaviour;
                                       ground truth regenerated from the policy when evaluating)
    models/{gnocchi,lfads,lfads_ic}/   seed 0 of each model: what the explorer opens
    models/seeds/{name}-seed{s}/       the other seeds
    models/report/                     every seed evaluated on the MotorNet test trials
    models/maze/{gnocchi,lfads}-seed{s}/, models/report_maze/   MC_Maze_Small, when its files are present

Every model trains in its own process with a fixed number of torch threads, so a model's weights
depend only on its config, seed, data and thread count: rebuilding on the same machine gives
bit-identical files, whatever ``jobs`` is. A killed build resumes (finished models are kept,
unfinished ones continue from their last checkpoint).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .atomic import atomic_path
from .errors import GnocchiError
from .models.base import CONFIG_FILE, WEIGHTS_FILE
from .workflows import ASSETS, DECODER_FILE, HISTORY_FILE

POLICY = ASSETS / "motornet_reach" / "policy.pt"
TRIALS_PER_TARGET = 60
SEEDS = (0, 1, 2)
#: The default models: (kind, config overrides). GNOCCHI's settings are its config defaults, chosen
#: with `benchmarks/gnocchi_levers.py` on a separately simulated tuning dataset (seed 7), never on
#: these trials; epoch budgets by the time a whole build may take (about an hour on 2 CPU cores);
#: early stopping reads the 'valid' split.
#: `lfads_ic` has no controller: the initial condition carries the whole trial, as in the LFADS
#: baseline generative comparisons use (e.g. LDNS); `lfads` keeps the controller, for co-bps.
ASSET_MODELS = {
    "gnocchi": ("gnocchi", {"train": {"epochs": 100, "patience": 30}}),
    "lfads": ("lfads", {"train": {"epochs": 80, "patience": 30}}),
    "lfads_ic": ("lfads", {"ci_enc_dim": 0, "con_dim": 0, "co_dim": 0, "train": {"epochs": 80, "patience": 30}}),
}
#: MC_Maze_Small has 41 training trials: small batches give enough optimisation steps per epoch
MAZE_MODELS = {
    "gnocchi": ("gnocchi", {"train": {"epochs": 300, "patience": 100, "batch_size": 16}}),
    "lfads": ("lfads", {"train": {"epochs": 300, "patience": 100, "batch_size": 16}}),
}
MAZE_TEST_FRACTION = 0.25  # of the 75 labelled MC_Maze_Small trials, stratified by reach condition


@dataclass(frozen=True)
class Job:
    """One model to train: which, with what seed, on which data, into which folder."""

    name: str
    kind: str
    overrides: dict
    seed: int
    data_path: str
    final: str  # the finished model folder
    threads: int
    device: str

    @property
    def label(self) -> str:
        return f"{self.name} seed {self.seed}"


def epochs(config) -> int:
    """Epochs a model's training runs at most (GNOCCHI in latent space trains its autoencoder first)."""
    return config.train.epochs + (config.ae_epochs if getattr(config, "space", None) == "latent" else 0)


def model_classes(kind: str):
    if kind == "gnocchi":
        from .models.gnocchi import GnocchiConfig, GnocchiModel
        return GnocchiModel, GnocchiConfig
    if kind == "lfads":
        from .models.lfads import LfadsConfig, LfadsModel
        return LfadsModel, LfadsConfig
    raise GnocchiError(f"unknown model kind '{kind}'")


def seed_folder(models_dir: Path, name: str, seed: int) -> Path:
    """Seed 0 lives at models/{name} (the explorer's default), the others under models/seeds/."""
    return models_dir / name if seed == 0 else models_dir / "seeds" / f"{name}-seed{seed}"


def job_config(job: Job):
    """The config the job trains with (its overrides on the defaults, its seed)."""
    overrides = copy.deepcopy(job.overrides)
    overrides.setdefault("train", {})["seed"] = job.seed
    return model_classes(job.kind)[1].from_dict(overrides)


def is_built(job: Job) -> bool:
    """A finished model folder trained with exactly this job's config (an edited config retrains)."""
    import dataclasses

    folder = Path(job.final)
    if not all((folder / name).is_file() for name in (WEIGHTS_FILE, HISTORY_FILE, CONFIG_FILE)):
        return False
    saved = json.loads((folder / CONFIG_FILE).read_text()).get("config")
    return json.dumps(saved, sort_keys=True) == json.dumps(dataclasses.asdict(job_config(job)), sort_keys=True)


def train_job(job: Job, queue=None) -> tuple[str, float]:
    """Train one model (in a worker process) and move it into place; returns (label, seconds)."""
    import torch
    from threadpoolctl import threadpool_limits

    from .data.trialdata import load_dataset
    from .models.training import has_checkpoint

    torch.set_num_threads(job.threads)
    threadpool_limits(job.threads)  # numpy / scikit-learn too: parallel jobs must not oversubscribe the cores
    final = Path(job.final)
    work = final.parent / f".{final.name}.checkpoints"
    model_class = model_classes(job.kind)[0]
    data = load_dataset(job.data_path)
    resume = has_checkpoint(work)
    tick = None if queue is None else (lambda record: queue.put((job.label, f"epoch {int(record['epoch']) + 1}")))
    start = time.perf_counter()
    model = model_class(job_config(job), device=job.device).fit(
        data, work, resume=resume, progress=False, on_epoch_end=tick)
    seconds = time.perf_counter() - start
    staging = final.parent / f".{final.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    model.save(staging)
    with atomic_path(staging / HISTORY_FILE) as tmp:
        tmp.write_text(json.dumps({"seconds": round(seconds, 1), "resumed": resume, "threads": job.threads,
                                   "torch": torch.__version__, "device": job.device, "history": model.history}))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)
    shutil.rmtree(work, ignore_errors=True)
    if queue is not None:
        queue.put((job.label, f"done, trained in {seconds:.0f} s"))
    return job.label, seconds


def run_pool(calls: list[tuple], *, total: int, desc: str, workers: int, progress: bool = True) -> list:
    """Run ``fn(*args, queue)`` for each (fn, *args) in ``calls``, ``workers`` processes at a time, with one
    progress bar fed by the ``(label, text)`` ticks each call puts on its queue. Results in call order."""
    import multiprocessing

    from tqdm.auto import tqdm

    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, tqdm(total=total, desc=desc, disable=not progress,
                                            dynamic_ncols=True) as bar:
        queue = manager.Queue()
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(fn, *args, queue) for fn, *args in calls]
            while not all(f.done() for f in futures) or not queue.empty():
                while not queue.empty():
                    label, text = queue.get()
                    if text.startswith("done"):
                        bar.write(f"{label}: {text}")
                    else:
                        bar.update(1)
                        bar.set_postfix_str(f"{label}: {text}")
                time.sleep(0.2)
            bar.n = total  # early stopping ends some models before their epoch budget
            bar.refresh()
            return [f.result() for f in futures]


def train_all(jobs: list[Job], *, workers: int = 1, progress: bool = True) -> dict[str, float]:
    """Train every job not yet built, ``workers`` at a time, with one progress bar over all their epochs."""
    todo = [job for job in jobs if not is_built(job)]
    for job in jobs:
        if job not in todo:
            print(f"{job.label}: already built in {job.final} (delete it to retrain)")
    if not todo:
        return {}
    results = run_pool([(train_job, job) for job in todo], total=sum(epochs(job_config(j)) for j in todo),
                       desc=f"training {len(todo)} models (epochs)", workers=workers, progress=progress)
    return dict(results)


def simulate_default_dataset(path: Path, *, trials_per_target: int = TRIALS_PER_TARGET,
                             policy: Path = POLICY) -> Path:
    """The default MotorNet dataset at ``path``, simulated from ``policy`` (copied beside it, where
    evaluation looks for it to regenerate the ground truth); spikes and behaviour only."""
    from .data import motornet_sim as sim

    path.parent.mkdir(parents=True, exist_ok=True)
    for source in (policy, sim.policy_json_path(policy)):
        if source.resolve() != (path.parent / source.name).resolve():
            shutil.copyfile(source, path.parent / source.name)
    loaded, task, meta = sim.load_policy(path.parent / policy.name)
    config = sim.MotorNetSimConfig(trials_per_condition=trials_per_target)
    data = sim.simulate(config, loaded, task, meta["training"])
    data.provenance.command = (f"gnocchi data simulate --out {path.name} --trials-per-condition {trials_per_target} "
                               f"--policy {policy.name} --no-ground-truth")
    sim.plot_dataset(data, path.with_suffix(".png"))
    data.rates = data.latents = None
    data.save(path)
    return path


def training_jobs(models: dict, seeds, data_path: Path, models_dir: Path, *, threads: int, device: str,
                  folder=seed_folder) -> list[Job]:
    return [Job(name, kind, overrides, seed, str(data_path), str(folder(models_dir, name, seed)), threads, device)
            for seed in seeds for name, (kind, overrides) in models.items()]


def evaluate_seed(seed: int, data_path: str, truth_path: str | None, folders: dict[str, str], decoder: dict | None,
                  threads: int, device: str, samples: int, maze: bool, queue=None) -> dict:
    """Evaluate one seed's models (in a worker process): {name: ModelEvaluation}."""
    import numpy as np
    import torch
    from threadpoolctl import threadpool_limits

    from .analysis.decoding import BehaviourDecoder
    from .analysis.evaluation import evaluate_model, evaluate_recording
    from .data.trialdata import load_dataset
    from .models import load_model

    torch.set_num_threads(threads)
    threadpool_limits(threads)
    data = load_dataset(data_path)
    if truth_path is not None:
        data.rates = np.load(truth_path)
    results = {}
    for name, folder in folders.items():
        model = load_model(folder, device=device)
        tick = None if queue is None else (lambda n=1, name=name: queue.put((f"seed {seed}", name)))
        if maze:
            results[name] = evaluate_recording(name, model, data, samples=samples, seed=0)
            tick and tick()
        else:
            results[name] = evaluate_model(name, model, data, BehaviourDecoder.from_dict(decoder), samples=samples,
                                           seed=0, progress=tick)
    return results


def evaluate_all(plan: list[Job], seeds, data, data_path: Path, report_dir: Path, decoder: dict | None, *,
                 workers: int, threads: int, device: str, samples: int = 8, maze: bool = False,
                 progress: bool = True, source: str = "", extra: dict | None = None) -> dict:
    """Every seed's models evaluated (seeds in parallel), one report over the seeds."""
    import tempfile

    import numpy as np

    from .analysis.evaluation import evaluation_steps
    from .analysis.report import write_report

    names = list(dict.fromkeys(job.name for job in plan))
    with tempfile.TemporaryDirectory(dir=report_dir.parent, prefix=".truth.") as tmp:
        truth_path = None
        if data.rates is not None:
            truth_path = str(Path(tmp) / "rates.npy")
            np.save(truth_path, data.rates)
        calls = [(evaluate_seed, seed, str(data_path), truth_path,
                  {job.name: job.final for job in plan if job.seed == seed}, decoder, threads, device, samples, maze)
                 for seed in seeds]
        steps = 1 if maze else evaluation_steps()
        results = run_pool(calls, total=steps * len(names) * len(seeds), desc=f"evaluating {len(seeds)} seeds",
                           workers=workers, progress=progress)
    per_seed = {name: [result[name] for result in results] for name in names}
    return write_report(per_seed, data, report_dir, source=source, seeds=list(seeds), extra=extra)


def default_maze() -> Path | None:
    path = ASSETS.parent.parent / "shared" / "data" / "mc_maze_small" / "mc_maze_small_full.h5"
    return path if path.is_file() else None


def build_maze(out: Path, maze_path: Path, models: dict, *, seeds, jobs: int, threads: int, device: str,
               samples: int, progress: bool) -> dict:
    """MC_Maze_Small: import (hand position in cm, labels derived from the hand path, a stratified labelled
    test split), train GNOCCHI and LFADS per seed, evaluate into models/report_maze/. The imported
    recording is written to a temporary folder only: the data stay outside the repository."""
    import tempfile

    from .data.nlb import import_nlb

    models_dir = out / "models"
    with tempfile.TemporaryDirectory(prefix="gnocchi-maze.") as tmp:
        data = import_nlb(maze_path, labelled_test_fraction=MAZE_TEST_FRACTION)
        data_path = Path(tmp) / "mc_maze_small.h5"
        data.save(data_path)
        plan = training_jobs(models, seeds, data_path, models_dir / "maze", threads=threads, device=device,
                             folder=lambda d, name, seed: d / f"{name}-seed{seed}")
        train_all(plan, workers=jobs, progress=progress)
        return evaluate_all(plan, seeds, data, data_path, models_dir / "report_maze", None, workers=jobs,
                            threads=threads, device=device, samples=samples, maze=True, progress=progress,
                            source=maze_path.name)


def build_assets(out: str | os.PathLike, *, seeds=SEEDS, jobs: int = 2, threads: int = 1, device: str = "cpu",
                 maze: str | os.PathLike | None = None, progress: bool = True, models: dict | None = None,
                 trials_per_target: int = TRIALS_PER_TARGET, samples: int = 8) -> dict:
    """Everything under ``out`` (see the module docstring); returns the report and timings (s).

    ``maze``: the MC_Maze_Small NLB tensor file; default `default_maze()`; pass "" to skip it.
    ``models``, ``trials_per_target`` and ``samples`` (diffusion samples per conditional mean) replace
    the defaults (tests use tiny ones); ``models`` also replaces the MC_Maze models.
    """
    from .analysis.decoding import BehaviourDecoder
    from .analysis.report import update_readme
    from .data.motornet_truth import with_ground_truth
    from .data.trialdata import load_dataset

    out = Path(out)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    data_path = out / "motornet_reach" / "motornet_reach.h5"
    if not data_path.is_file():
        print(f"simulating {trials_per_target} trials per target into {data_path}")
        simulate_default_dataset(data_path, trials_per_target=trials_per_target)
        timings["dataset"] = time.perf_counter() - started
    models_dir = out / "models"
    plan = training_jobs(models or ASSET_MODELS, seeds, data_path, models_dir, threads=threads, device=device)
    start = time.perf_counter()
    train_all(plan, workers=jobs, progress=progress)
    timings["training"] = time.perf_counter() - start

    start = time.perf_counter()
    data = with_ground_truth(load_dataset(data_path), data_path)
    if data.rates is None:
        raise GnocchiError(f"{data_path}: no ground-truth rates and no policy.pt beside it to regenerate them")
    decoder = BehaviourDecoder.fit(data.subset(trials=data.heldin_conditions("train"))).to_dict()
    for job in plan:
        with atomic_path(Path(job.final) / DECODER_FILE) as tmp:
            tmp.write_text(json.dumps(decoder))
    report = evaluate_all(plan, seeds, data, data_path, models_dir / "report", decoder, workers=jobs, threads=threads,
                          device=device, samples=samples, progress=progress, source=data_path.name)
    timings["evaluation"] = time.perf_counter() - start
    maze = default_maze() if maze is None else (Path(maze) if maze else None)
    maze_report = None
    if maze is not None:
        start = time.perf_counter()
        maze_models = MAZE_MODELS if models is None else {k: v for k, v in models.items() if k in MAZE_MODELS}
        maze_report = build_maze(out, Path(maze), maze_models, seeds=seeds, jobs=jobs, threads=threads,
                                 device=device, samples=samples, progress=progress)
        timings["maze"] = time.perf_counter() - start
    else:
        print("MC_Maze_Small not found: no models/report_maze (pass --maze FILE)")
    timings["total"] = time.perf_counter() - started
    trained = {job.label: json.loads((Path(job.final) / HISTORY_FILE).read_text())["seconds"] for job in plan}
    with atomic_path(models_dir / "report" / "build.json") as tmp:
        tmp.write_text(json.dumps({"seconds": {k: round(v, 1) for k, v in timings.items()},
                                   "training_seconds_per_model": trained, "jobs": jobs, "threads": threads,
                                   "device": device, "cpus": os.cpu_count()}, indent=1) + "\n")
    if out.resolve() == ASSETS.resolve() and update_readme(ASSETS.parent / "README.md", report):
        print("README.md: comparison paragraph regenerated from the report")
    return {"report": report, "maze_report": maze_report, "timings": timings}
