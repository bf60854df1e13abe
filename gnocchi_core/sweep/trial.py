"""The Ray side of a sweep: the trainable each trial runs, its reports, and the driver's progress lines.

A trial trains one model with the models' own ``fit`` into ``OUT/trials/<trial>/`` and reports each
epoch's score through ``fit``'s ``on_epoch_end`` hook (`ray.tune.report`). When a scheduler stops or
pauses a trial, Ray's report raises ``SystemExit`` in the training thread; the hook turns it into a
KeyboardInterrupt, so the model finishes its folder with the best weights so far exactly as after a
Ctrl-C of ``gnocchi train``, and the trainable's ``cleanup`` waits for that before Ray ends the actor.
A trial restarted (a resumed sweep, a paused trial) continues from its folder's ``last.pt``.

For population-based training the trial also reports, at each of its checkpoints (``train.checkpoint_every``
epochs, the perturbation interval), a Ray checkpoint holding the folder's training state. A trial that
PBT makes clone another receives that trial's checkpoint: the state is copied into its own folder,
``run.json`` is given the trial's new (perturbed) config, and training resumes from there.

This module imports Ray; only `runner.run_sweep` imports it, after checking Ray is installed.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

from ray import tune
from ray.tune.trainable import wrap_function

from ..assets import model_classes
from ..atomic import write_json
from ..models.base import CONFIG_FILE, WEIGHTS_FILE
from ..models.training import BEST, LAST, has_checkpoint
from ..data.lfads_h5 import load_training_data
from .runner import TRIAL_FILE, TRIALS_DIR
from .space import flatten

CHECKPOINT_META = "sweep_checkpoint.json"
RUN_FILE = "run.json"
AUTOENCODER_DIR = "autoencoder"  # GNOCCHI's first stage (models/gnocchi/model.py)
#: how long a stopped trial may take to finish its folder before Ray ends its process
FINISH_TIMEOUT_S = 300

# one trial per actor process (reuse_actors=False): when its training function started and ended
_STARTED, _ENDED = threading.Event(), threading.Event()


def trial_name(trial) -> str:
    """``trial_00003``: the trial's folder name, in OUT/trials and OUT/ray/sweep alike."""
    return f"trial_{trial.trial_id.rsplit('_', 1)[-1]}"


def trainable(plan: dict):
    """The Tune trainable of a sweep's trials, with their resources."""
    settings = {key: plan[key] for key in ("kind", "space", "epochs", "scheduler", "threads", "device",
                                           "checkpoint_every")}
    settings.update(data=str(plan["data"]), out=str(plan["out"]), objective=plan["objective"].key,
                    worst=plan["objective"].worst, checkpoints=plan["scheduler"] == "pbt")

    def gnocchi_trial(config):
        _entry(config, settings)

    class Trial(wrap_function(gnocchi_trial)):
        def cleanup(self):
            try:
                super().cleanup()  # releases the training thread from its report, with the stop flag set
            finally:
                _wait_for_trial()

    resources = {"cpu": plan["cpus"], "gpu": plan["gpus"]}
    return tune.with_resources(Trial, resources)


def _entry(config: dict, settings: dict) -> None:
    _STARTED.set()
    try:
        run_trial(config, settings)
    finally:
        _ENDED.set()


def _wait_for_trial() -> None:
    """Until the training function has returned (it finishes the folder of a stopped trial), if it started."""
    if _STARTED.is_set():
        _ENDED.wait(FINISH_TIMEOUT_S)


class _Stop(KeyboardInterrupt):
    """The scheduler stopped or paused this trial: the model finishes its folder as after a Ctrl-C."""


# ---------------------------------------------------------------------- one trial
def run_trial(config: dict, settings: dict) -> None:
    """Train one trial's model into its folder, reporting each epoch; then record its summary."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(settings["threads"])
    threadpool_limits(settings["threads"])
    name = tune.get_context().get_trial_name()
    folder = Path(settings["out"]) / TRIALS_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    space = settings["space"]
    model_config = space.config(config, settings["epochs"])
    model = model_classes(settings["kind"])[0](model_config, device=settings["device"])
    summary = _read_summary(folder)
    if summary.get("final") and summary.get("params") == flatten(config) and (folder / CONFIG_FILE).is_file():
        # it ended before the sweep was killed, but Tune had not yet saved that: report its end, touch nothing
        _report_end(summary, settings)
        return
    origin = _take_checkpoint(tune.get_checkpoint(), folder, name, model, summary, settings["kind"])
    data = load_training_data(settings["data"])
    reporter = _Reporter(settings, name, folder)
    start = time.monotonic()
    stopped_by = None
    try:
        model.fit(data, folder, resume=has_checkpoint(folder), progress=False, on_epoch_end=reporter)
    except _Stop:
        stopped_by = settings["scheduler"]
    seconds = time.monotonic() - start
    history = model.history
    reason = _reason(model, model_config, stopped_by) if history else f"stopped by {stopped_by} before any epoch"
    if stopped_by and history:
        _set_stopped(folder, reason)
    best = min(history, key=lambda r: r["valid_loss"]) if history else None
    score = None if best is None else float(best.get(settings["objective"], math.nan))
    if score is not None and not math.isfinite(score):  # undefined: null, with the reason beside it
        summary["score_missing"] = f"{settings['objective']} is not finite at epoch {best['epoch']} (diverged)"
        score = None
    summary.update(trial=name, objective=settings["objective"], score=score,
                   best_epoch=None if best is None else int(best["epoch"]), epochs=len(history),
                   seconds=summary.get("seconds", 0.0) + seconds, stopped=reason,
                   params=flatten(config), device=str(model.device), threads=torch.get_num_threads(),
                   valid_loss=None if best is None else float(best["valid_loss"]),
                   final=best is not None and not reason.startswith(("paused by", "stopped by Ray Tune")))
    summary.setdefault("runs", []).append({"from": origin, "first_epoch": reporter.first, "last_epoch": reporter.last,
                                           "seconds": round(seconds, 2), "stopped": reason})
    _write_summary(folder, summary)
    if not reporter.reported and best is not None:  # e.g. a resumed trial whose folder had already finished
        _report_end(summary, settings)


def _report_end(summary: dict, settings: dict) -> None:
    """The trial's last result, from its summary, ending it (``done``: no scheduler decision)."""
    try:
        tune.report({"score": _finite(summary["score"], settings["worst"]), "epoch": summary["epochs"],
                     "valid_loss": summary["valid_loss"], "done": True})
    except SystemExit:  # Tune ends the trial
        pass


class _Reporter:
    """``fit``'s ``on_epoch_end``: each epoch's score to Tune (GNOCCHI: its diffusion stage's epochs), with a
    checkpoint of the folder's training state at each of its checkpoints when PBT needs one."""

    def __init__(self, settings: dict, name: str, folder: Path):
        self.settings, self.name, self.folder = settings, name, folder
        self.reported = False
        self.first = self.last = None

    def __call__(self, record: dict) -> None:
        if self.settings["kind"] == "gnocchi" and "valid_score" not in record:
            return  # the autoencoder stage: its losses are not the objective
        epoch = int(record["epoch"]) + 1  # epochs trained, what last.pt counts
        self.first = epoch if self.first is None else self.first
        self.last = epoch
        metrics = {"score": _finite(record.get(self.settings["objective"]), self.settings["worst"]),
                   "epoch": epoch, "valid_loss": float(record["valid_loss"])}
        if epoch >= self.settings["epochs"]:
            metrics["done"] = True  # the last epoch: Tune ends the trial without asking the scheduler (no pause)
        staging = None
        try:
            checkpoint = None
            if self.settings["checkpoints"] and epoch % self.settings["checkpoint_every"] == 0:
                staging = Path(tempfile.mkdtemp(prefix="gnocchi-sweep-"))
                checkpoint = _checkpoint(self.folder, staging, self.name, epoch)
            self.reported = True
            tune.report(metrics, checkpoint=checkpoint)
        except SystemExit:  # Tune stops or pauses this trial
            raise _Stop() from None
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)


def _finite(value, worst: float) -> float:
    """A score Tune can rank: a diverged (NaN) epoch ranks last."""
    value = float(value) if value is not None else math.nan
    return value if math.isfinite(value) else worst


def _reason(model, config, stopped_by: str | None) -> str:
    """Why the trial's training ended, in the words of `Trainer.stopped`, or the scheduler's."""
    if stopped_by is None:
        return model.stopped or "finished"
    n = len(model.history)
    if n >= config.train.epochs:
        return "epoch budget"
    best = min(range(n), key=lambda i: model.history[i]["valid_loss"])
    if n - 1 - best >= config.train.patience:
        return "early stopping"
    if stopped_by == "pbt":
        return f"paused by PBT at epoch {n}"
    return f"stopped by {'ASHA' if stopped_by == 'asha' else 'Ray Tune'} at epoch {n}"


def _set_stopped(folder: Path, reason: str) -> None:
    """config.json's ``stopped`` (why training ended) says the scheduler ended it, not a Ctrl-C."""
    path = folder / CONFIG_FILE
    if path.is_file():
        saved = json.loads(path.read_text())
        saved["stopped"] = reason
        write_json(path, saved)


def _read_summary(folder: Path) -> dict:
    path = folder / TRIAL_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_summary(folder: Path, summary: dict) -> None:
    write_json(folder / TRIAL_FILE, summary)


# ---------------------------------------------------------------------- PBT's checkpoints
def _state_files(folder: Path) -> list[Path]:
    """The training state of a trial folder, relative to it: what resuming needs."""
    names = [Path(RUN_FILE), Path(LAST), Path(BEST), Path(AUTOENCODER_DIR) / LAST, Path(AUTOENCODER_DIR) / BEST]
    return [name for name in names if (folder / name).is_file()]


def _checkpoint(folder: Path, staging: Path, name: str, epoch: int):
    """A Ray checkpoint of the folder's training state (last.pt was just written: ``epoch`` is a multiple of
    ``train.checkpoint_every``), with who made it, when, and an id."""
    for relative in _state_files(folder):
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / relative, staging / relative)
    (staging / CHECKPOINT_META).write_text(json.dumps({"id": uuid.uuid4().hex, "trial": name, "epoch": epoch}))
    return tune.Checkpoint.from_directory(str(staging))


def _take_checkpoint(checkpoint, folder: Path, name: str, model, summary: dict, kind: str) -> str:
    """Where this run of the trial starts: its own folder, or (PBT cloned another trial) that trial's
    checkpoint, copied into the folder, with run.json given this trial's config. Returns which."""
    if checkpoint is None:
        return "own folder" if has_checkpoint(folder) else "new"
    with checkpoint.as_directory() as source:
        source = Path(source)
        meta = json.loads((source / CHECKPOINT_META).read_text())
        if meta["id"] == summary.get("restored_from") or (meta["trial"] == name and has_checkpoint(folder)):
            return "own folder"  # the folder is at least as far as the checkpoint
        for relative in [Path(RUN_FILE), Path(LAST), Path(BEST), Path(CONFIG_FILE), Path(WEIGHTS_FILE)]:
            (folder / relative).unlink(missing_ok=True)
        shutil.rmtree(folder / AUTOENCODER_DIR, ignore_errors=True)
        for relative in _state_files(source):
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / relative, folder / relative)
    run = json.loads((folder / RUN_FILE).read_text())
    run["config"] = json.loads(json.dumps(model._config_dict()))  # the perturbed config continues the run
    write_json(folder / RUN_FILE, run)
    summary["restored_from"] = meta["id"]  # taken: a restart of this run continues from the folder
    _write_summary(folder, summary)
    return f"{meta['trial']} at epoch {meta['epoch']}"


# ---------------------------------------------------------------------- the terminal
class Progress(tune.Callback):
    """One line per trial event on the driver's terminal: start (its parameters), every tenth of the epochs
    (epoch and score), end (its last score), failure."""

    def __init__(self, label: str, epochs: int):
        self.label, self.epochs = label, epochs
        self.every = max(1, epochs // 10)

    def on_trial_start(self, iteration, trials, trial, **info):
        params = ", ".join(f"{k}={_short(v)}" for k, v in flatten(trial.config or {}).items())
        again = (trial.last_result or {}).get("epoch")  # a paused, cloned or interrupted trial starting again
        _say(f"{trial} {'continues' if again else 'started'}" + (f": {params}" if params else ""))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        epoch = result.get("epoch")
        if epoch is not None and (epoch == 1 or epoch % self.every == 0 or epoch == self.epochs):
            _say(f"{trial}  epoch {epoch:>4}/{self.epochs}  {self.label} {result.get('score', math.nan):.4f}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        last = trial.last_result or {}
        if "score" in last:
            _say(f"{trial} ended at epoch {last.get('epoch')}: {self.label} {last['score']:.4f}")

    def on_trial_error(self, iteration, trials, trial, **info):
        _say(f"{trial} failed (its error: {trial.path}/error.txt)")


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def _say(line: str) -> None:
    print(line, flush=True)


class PbtLog(logging.Handler):
    """PBT's exploit and explore messages (Ray's INFO log), as one line each with trial names."""

    LOGGER = "ray.tune.schedulers.pbt"

    def __init__(self):
        super().__init__(logging.INFO)
        self._level = None

    def attach(self) -> None:
        logger = logging.getLogger(self.LOGGER)
        self._level, self._propagate = logger.level, logger.propagate
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(self)

    def detach(self) -> None:
        logger = logging.getLogger(self.LOGGER)
        if self in logger.handlers:
            logger.removeHandler(self)
            logger.setLevel(self._level)
            logger.propagate = self._propagate

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        name = lambda m: f"trial_{m.group(1)}"  # noqa: E731
        text = re.sub(r"[0-9a-f]{5}_(\d{5})\b", name, text)
        if "[Exploit]" in text:
            found = re.search(r"Cloning trial (\S+) \(score = ([^)]+)\) into trial (\S+) \(score = ([^)]+)\)", text)
            if found:
                _say(f"PBT: {found.group(3)} (score {found.group(4).strip()}) continues from {found.group(1)}'s "
                     f"weights (score {found.group(2).strip()})")
        elif "[Explore]" in text:
            changes = []
            for line in text.splitlines():
                change = re.match(r"\s*(\S+) : (\S+) --- \((.+?)\) --> (\S+)", line)
                if change:
                    key, old, how, new = change.groups()
                    how = how.replace("* ", "×")
                    changes.append(f"{key} {_short(_number(old))} → {_short(_number(new))} ({how})")
            target = re.search(r"trial\s*(trial_\d+)", text)
            if changes:
                _say(f"PBT: {target.group(1) if target else 'a trial'} explores " + ", ".join(changes))
