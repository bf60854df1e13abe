"""One trainer for every model: AdamW, warm-up + cosine decay, clipping, EMA, early stopping, resume.

A model plugs in by being an `nn.Module` with ``losses(batch) -> dict`` whose ``"loss"`` entry is
the scalar to minimise; every other entry is logged. The trainer owns nothing model-specific.

Checkpoints hold only tensors and plain containers, so they load with
``torch.load(weights_only=True)`` (no pickled code runs); they are written atomically. ``last.pt``
carries the full training state — weights, EMA weights, optimiser, RNG states, epoch, history —
so a killed run resumed from it continues exactly as if it had never stopped. ``best.pt`` holds
the EMA weights with the lowest validation loss; those are what a model samples with.

A fit may also have a wall-clock budget (`TimeBudget`): training then ends at the end of the epoch
in which it runs out, with ``last.pt`` written, so the folder is finished as after any other run
and a resume continues from there. ``Trainer.stopped`` says why training ended.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from ..atomic import atomic_path, remove_orphans, write_json
from ..data.validation import FRACTION, NON_NEGATIVE, POSITIVE, SEED, UNIT, at_least
from ..errors import ArgumentError, GnocchiError, ModelFileError
from .distributed import World
from .validation import check_config

LAST, BEST = "last.pt", "best.pt"
#: run.json fields that budget a run rather than define it: a resume may change them
BUDGET_FIELDS = (("config", "train", "epochs"), ("config", "ae_epochs"))


@dataclass
class TrainConfig:
    """Optimisation settings shared by every model."""

    epochs: int = 400
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    min_lr_fraction: float = 0.05  # cosine decays to this fraction of lr
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    patience: int = 80  # epochs without a better validation loss before stopping
    checkpoint_every: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        check_config(self, TRAIN_RULES)


#: TrainConfig's ranges (types come from its annotations; see models/validation.py)
TRAIN_RULES = {
    "epochs": at_least(1), "batch_size": at_least(1), "lr": POSITIVE, "weight_decay": NON_NEGATIVE,
    "warmup_steps": NON_NEGATIVE, "min_lr_fraction": UNIT, "grad_clip": NON_NEGATIVE,  # 0: no clipping
    "ema_decay": FRACTION, "patience": at_least(1), "checkpoint_every": at_least(1), "seed": SEED,
}


@dataclass(frozen=True)
class TimeBudget:
    """A wall-clock budget of ``minutes`` for one fit, all its stages together, from ``start``
    (``time.monotonic``); a stage given a ``share`` of it must end by that fraction of the budget."""

    minutes: float
    start: float
    share: float = 1.0

    @classmethod
    def starting_now(cls, minutes: float) -> "TimeBudget":
        if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes > 0:
            raise ArgumentError(f"max_minutes must be positive, got {minutes!r}", field="max_minutes")
        return cls(float(minutes), time.monotonic())

    def part(self, share: float) -> "TimeBudget":
        """The same budget, for a stage that may spend only ``share`` of it."""
        return replace(self, share=share)

    def seconds_left(self) -> float:
        return self.start + self.share * self.minutes * 60 - time.monotonic()

    def __str__(self) -> str:
        return f"time budget of {self.minutes:g} min"


def resolve_device(device: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise GnocchiError(f"device '{device}' requested but CUDA is not available on this machine")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise GnocchiError(f"unknown device {device!r}: expected auto, cpu or cuda[:N]") from None


def learning_rate(step: int, total_steps: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_fraction`` of the peak."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps))
    floor = config.min_lr_fraction
    return config.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> dict:
    """Load with ``weights_only=True``: a checkpoint carrying code is refused, never executed."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError("checkpoint not found", path=path)
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # UnpicklingError for smuggled objects, RuntimeError for corrupt zips
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelFileError(f"not a safe, readable checkpoint ({first_line})", path=path) from None
    if not isinstance(state, dict):
        raise ModelFileError("not a checkpoint", path=path, expected="a dict of tensors",
                             found=f"a {type(state).__name__}")
    return state


def load_weights(module: nn.Module, weights: dict, source: str | os.PathLike) -> None:
    """``load_state_dict`` with an error that says which parameters do not fit."""
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise ModelFileError("not the weights of a network", path=source, expected="a dict of tensors",
                             found=f"a {type(weights).__name__}")
    try:
        module.load_state_dict(weights)
    except RuntimeError as err:
        detail = " ".join(str(err).split())[:400]
        raise ModelFileError(f"weights do not match the model's config ({detail})", path=source) from None


def has_checkpoint(out_dir: str | os.PathLike) -> bool:
    """Whether a training folder holds a ``last.pt`` to resume from: its own, or a stage's in a
    sub-folder (GNOCCHI's autoencoder trains first, in ``autoencoder/``)."""
    out_dir = Path(out_dir)
    return (out_dir / LAST).is_file() or any(out_dir.glob(f"*/{LAST}"))


def record_run(out_dir: str | os.PathLike, run: dict, resume: bool) -> None:
    """Write what is being trained to ``out_dir/run.json``; on resume, require it to match the
    interrupted run, epoch budgets aside.

    A resumed run must be the interrupted run (same config, data, preprocessing): the data order and
    the models depend on all of it. The error names every field that differs. The epoch budgets
    (`BUDGET_FIELDS`) may change, to train a finished or time-budgeted run further: run.json then
    records the new counts, and the learning-rate schedule's total steps follow them from the step
    where training resumes (so the cosine is not the one a straight run with that count would have
    had). First, temporary files left by writes a kill cut short are removed (`clean_folder`).
    """
    out_dir = Path(out_dir)
    clean_folder(out_dir)
    path = out_dir / "run.json"
    run = json.loads(json.dumps(run))
    if resume:
        if not has_checkpoint(out_dir):
            raise GnocchiError(f"{out_dir}: nothing to resume (no {LAST})")
        previous = json.loads(path.read_text()) if path.is_file() else {}
        differences = _differences(_without_budgets(previous), _without_budgets(run))
        if differences:
            shown = "; ".join(differences[:5]) + (f"; and {len(differences) - 5} more" if len(differences) > 5 else "")
            raise GnocchiError(f"{out_dir}: cannot resume: this run differs from the interrupted one ({shown}); "
                               f"resume with the same settings (see {path}) or train into a new folder")
    write_json(path, run)


def clean_folder(out_dir: str | os.PathLike) -> int:
    """Remove the temporary files a kill mid-write leaves in a training folder and its stage
    sub-folders (see `atomic.remove_orphans`); says how many, when any. Returns the count."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return 0
    removed = sum(remove_orphans(folder) for folder in [out_dir, *sorted(p for p in out_dir.iterdir() if p.is_dir())])
    if removed:
        print(f"{out_dir}: removed {removed} temporary file{'s' * (removed != 1)} left by an interrupted write")
    return removed


def _without_budgets(run: dict) -> dict:
    """A copy of a run.json dict without its `BUDGET_FIELDS`."""
    run = copy.deepcopy(run)
    for *parents, leaf in BUDGET_FIELDS:
        node = run
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return run


def _differences(before, now, prefix: str = "") -> list[str]:
    """'key.path: old → new' for every leaf that differs between two JSON-like values."""
    if isinstance(before, dict) and isinstance(now, dict):
        return [line for key in sorted(set(before) | set(now), key=str)
                for line in _differences(before.get(key, "missing"), now.get(key, "missing"),
                                         f"{prefix}.{key}" if prefix else str(key))]
    if before == now:
        return []
    show = lambda v: (json.dumps(v) if len(json.dumps(v)) <= 40 else json.dumps(v)[:37] + "...")  # noqa: E731
    return [f"{prefix or 'run'}: {show(before)} → {show(now)}"]


class Trainer:
    """Fit ``module`` on tensors (trials first); validation, EMA, checkpoints and resume included.

    In a process group of several ranks (`distributed.session`) it trains data-parallel: each rank
    takes its share of every batch and the gradients are summed over the ranks (`distributed.World`);
    every rank validates and keeps the EMA alike, rank 0's numbers and stopping decision rule, and
    only rank 0 writes checkpoints or shows progress."""

    def __init__(self, module: nn.Module, config: TrainConfig, out_dir: str | os.PathLike,
                 device: torch.device, progress: bool = True, valid_seed: int = 12345):
        self.world = World()
        self.module = module.to(device)
        self.world.broadcast_module(self.module)  # every rank starts from rank 0's weights
        self.config = config
        self.out_dir = Path(out_dir)
        self.device = device
        self.progress = progress and self.world.is_main
        self.valid_seed = valid_seed
        self.ema = AveragedModel(self.module, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay),
                                 use_buffers=True)
        self.optimizer = torch.optim.AdamW(self.module.parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.epoch = 0
        self.step = 0
        self.best_valid = math.inf
        self.best_epoch = -1
        self.history: list[dict[str, float]] = []
        #: why training ended: "epoch budget", "early stopping", "time budget of M min", "interrupted"
        self.stopped: str | None = None
        self.world.decorrelate_rng()

    # ------------------------------------------------------------------ state
    def state(self) -> dict:
        state = {
            "model": self.module.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "epoch": self.epoch, "step": self.step,
            "best_valid": self.best_valid, "best_epoch": self.best_epoch,
            "history": self.history, "stopped": self.stopped,
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state | self.world.rng_states()  # every rank's stream, when distributed (a collective)

    def restore(self, path: str | os.PathLike) -> None:
        """Continue from ``last.pt``: weights, optimiser, RNG streams and counters."""
        state = load_checkpoint(path, self.device)
        missing = [k for k in ("model", "ema", "optimizer", "generator", "torch_rng", "epoch", "step", "best_valid",
                               "best_epoch", "history") if k not in state]
        if missing:
            raise ModelFileError("not a training checkpoint to resume from", path=path, field=missing[0],
                                 expected="the state last.pt holds", found=f"keys {sorted(state)}")
        load_weights(self.module, state["model"], path)
        load_weights(self.ema, state["ema"], path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        self.world.restore_rng(state)
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best_valid, self.best_epoch = float(state["best_valid"]), int(state["best_epoch"])
        self.history = list(state["history"])
        self.stopped = state.get("stopped")

    # ------------------------------------------------------------------ loop
    def fit(self, train: Sequence[torch.Tensor], valid: Sequence[torch.Tensor],
            on_epoch_end: Callable[[dict], None] | None = None,
            budget: TimeBudget | None = None) -> list[dict[str, float]]:
        """Train until ``epochs``, early stopping, or the end of the epoch in which ``budget`` runs
        out (at least one epoch is trained); returns the per-epoch history. ``self.stopped`` says
        which ended it ("interrupted" on Ctrl-C, which is re-raised)."""
        cfg = self.config
        train = [t.to(self.device) for t in train]
        valid = [t.to(self.device) for t in valid]
        n = len(train[0])
        steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
        total_steps = cfg.epochs * steps_per_epoch
        bar = tqdm(total=cfg.epochs, initial=self.epoch, desc="training" + ("" if budget is None else f" ({budget})"),
                   unit="epoch", disable=not self.progress, dynamic_ncols=True)
        self.stopped = self._stop_reason()
        try:
            self._epochs(train, valid, total_steps, on_epoch_end, budget, bar)
        except KeyboardInterrupt:
            self.stopped = "interrupted"
            raise
        finally:
            bar.close()
        self.world.barrier()  # every rank ends once rank 0 has written its checkpoints
        return self.history

    def _epochs(self, train, valid, total_steps: int, on_epoch_end, budget: TimeBudget | None, bar) -> None:
        cfg = self.config
        n = len(train[0])
        while self.stopped is None:
            self.module.train()
            sums: dict[str, float] = {}
            order = torch.randperm(n, generator=self.generator).to(self.device)
            for start in range(0, n, cfg.batch_size):
                rows, count, share = self.world.shard(order[start:start + cfg.batch_size])
                batch = [t[rows] for t in train]
                for group in self.optimizer.param_groups:
                    group["lr"] = learning_rate(self.step, total_steps, cfg)
                losses = self.module.losses(batch)
                self.optimizer.zero_grad(set_to_none=True)
                (losses["loss"] if share is None else losses["loss"] * share).backward()
                self.world.sum_gradients(self.module)  # the whole batch's gradient, on every rank
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(self.module.parameters(), cfg.grad_clip)
                self.optimizer.step()
                self.ema.update_parameters(self.module)
                self.step += 1
                for key, value in losses.items():
                    sums[key] = sums.get(key, 0.0) + float(value.detach()) * count
            record = {f"train_{k}": v / n for k, v in self.world.sum_values(sums, self.device).items()}
            record.update({f"valid_{k}": v for k, v in self.validate(valid).items()})
            record.update(epoch=self.epoch, lr=self.optimizer.param_groups[0]["lr"])
            record = self.world.from_main(record)
            self.history.append(record)
            self.epoch += 1
            if record["valid_loss"] < self.best_valid:  # saved first: best_epoch ≥ 0 means best.pt exists
                if self.world.is_main:
                    save_checkpoint({"ema": self.ema.module.state_dict(), "epoch": self.epoch - 1,
                                     "valid_loss": record["valid_loss"]}, self.out_dir / BEST)
                self.best_valid, self.best_epoch = record["valid_loss"], self.epoch - 1
            self.stopped = self.world.from_main(self._stop_reason(budget))  # rank 0's clock decides
            if self.epoch % cfg.checkpoint_every == 0 or self.stopped is not None:
                state = self.state()
                if self.world.is_main:
                    save_checkpoint(state, self.out_dir / LAST)
            if on_epoch_end is not None:
                on_epoch_end(record)
            left = {} if budget is None else {"left": "{}:{:02d}".format(*divmod(int(max(0, budget.seconds_left())),
                                                                                 60))}
            bar.set_postfix({k.replace("train_", ""): f"{v:.3g}" for k, v in record.items()
                             if k.startswith("train_")} | {"valid": f"{record['valid_loss']:.3g}"} | left)
            bar.update(1)

    @torch.no_grad()
    def validate(self, valid: Sequence[torch.Tensor]) -> dict[str, float]:
        """EMA-weight losses on the validation set, with a fixed noise stream so epochs compare."""
        model = self.ema.module
        model.eval()
        sums: dict[str, float] = {}
        n = len(valid[0])
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.valid_seed)
            for start in range(0, n, self.config.batch_size):
                batch = [t[start:start + self.config.batch_size] for t in valid]
                for key, value in model.losses(batch).items():
                    sums[key] = sums.get(key, 0.0) + float(value) * len(batch[0])
        return {k: v / n for k, v in sums.items()}

    def best_module(self) -> nn.Module:
        """A copy of the model carrying the best EMA weights."""
        best = copy.deepcopy(self.ema.module)
        load_weights(best, load_checkpoint(self.out_dir / BEST, self.device)["ema"], self.out_dir / BEST)
        return best.eval()

    def _stop_reason(self, budget: TimeBudget | None = None) -> str | None:
        """Why training ends after the epoch just trained, or None to train another."""
        if self.epoch >= self.config.epochs:
            return "epoch budget"
        if self._patience_exhausted():
            return "early stopping"
        if budget is not None and budget.seconds_left() <= 0:
            return str(budget)
        return None

    def _patience_exhausted(self) -> bool:
        return self.best_epoch >= 0 and self.epoch - 1 - self.best_epoch >= self.config.patience
