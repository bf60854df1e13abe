"""One trainer for every model: AdamW, warm-up + cosine decay, clipping, EMA, early stopping, resume.

A model plugs in by being an `nn.Module` with ``losses(batch) -> dict`` whose ``"loss"`` entry is
the scalar to minimise; every other entry is logged. The trainer owns nothing model-specific.

Checkpoints hold only tensors and plain containers, so they load with
``torch.load(weights_only=True)`` (no pickled code runs); they are written atomically. ``last.pt``
carries the full training state — weights, EMA weights, optimiser, RNG states, epoch, history —
so a killed run resumed from it continues exactly as if it had never stopped. ``best.pt`` holds
the EMA weights with the lowest validation loss; those are what a model samples with.
"""

from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from ..atomic import atomic_path
from ..errors import GnocchiError

LAST, BEST = "last.pt", "best.pt"


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


def resolve_device(device: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise GnocchiError(f"device '{device}' requested but CUDA is not available on this machine")
    return torch.device(device)


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
        raise GnocchiError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # UnpicklingError for smuggled objects, RuntimeError for corrupt zips
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise GnocchiError(f"{path}: not a safe, readable checkpoint ({first_line})") from None


def load_weights(module: nn.Module, weights: dict, source: str | os.PathLike) -> None:
    """``load_state_dict`` with an error that says which parameters do not fit."""
    try:
        module.load_state_dict(weights)
    except RuntimeError as err:
        detail = " ".join(str(err).split())[:400]
        raise GnocchiError(f"{source}: weights do not match the model's config ({detail})") from None


def has_checkpoint(out_dir: str | os.PathLike) -> bool:
    """Whether a training folder holds a ``last.pt`` to resume from: its own, or a stage's in a
    sub-folder (GNOCCHI's autoencoder trains first, in ``autoencoder/``)."""
    out_dir = Path(out_dir)
    return (out_dir / LAST).is_file() or any(out_dir.glob(f"*/{LAST}"))


def record_run(out_dir: str | os.PathLike, run: dict, resume: bool) -> None:
    """Write what is being trained to ``out_dir/run.json``; on resume, require it to match exactly.

    A resumed run must be the interrupted run (same config, data, preprocessing): the learning-rate
    schedule and the data order depend on all of it. The error names every field that differs.
    """
    out_dir = Path(out_dir)
    path = out_dir / "run.json"
    run = json.loads(json.dumps(run))
    if not resume:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(run, indent=1))
        return
    if not has_checkpoint(out_dir):
        raise GnocchiError(f"{out_dir}: nothing to resume (no {LAST})")
    previous = json.loads(path.read_text()) if path.is_file() else {}
    differences = _differences(previous, run)
    if differences:
        shown = "; ".join(differences[:5]) + (f"; and {len(differences) - 5} more" if len(differences) > 5 else "")
        raise GnocchiError(f"{out_dir}: cannot resume: this run differs from the interrupted one ({shown}); "
                           f"resume with the same settings (see {path}) or train into a new folder")


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
    """Fit ``module`` on tensors (trials first); validation, EMA, checkpoints and resume included."""

    def __init__(self, module: nn.Module, config: TrainConfig, out_dir: str | os.PathLike,
                 device: torch.device, progress: bool = True, valid_seed: int = 12345):
        self.module = module.to(device)
        self.config = config
        self.out_dir = Path(out_dir)
        self.device = device
        self.progress = progress
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
            "history": self.history,
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def restore(self, path: str | os.PathLike) -> None:
        """Continue from ``last.pt``: weights, optimiser, RNG streams and counters."""
        state = load_checkpoint(path, self.device)
        load_weights(self.module, state["model"], path)
        load_weights(self.ema, state["ema"], path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best_valid, self.best_epoch = float(state["best_valid"]), int(state["best_epoch"])
        self.history = list(state["history"])

    # ------------------------------------------------------------------ loop
    def fit(self, train: Sequence[torch.Tensor], valid: Sequence[torch.Tensor],
            on_epoch_end: Callable[[dict], None] | None = None) -> list[dict[str, float]]:
        """Train until ``epochs`` or early stopping; returns the per-epoch history."""
        cfg = self.config
        train = [t.to(self.device) for t in train]
        valid = [t.to(self.device) for t in valid]
        n = len(train[0])
        steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
        total_steps = cfg.epochs * steps_per_epoch
        bar = tqdm(total=cfg.epochs, initial=self.epoch, desc="training", unit="epoch",
                   disable=not self.progress, dynamic_ncols=True)
        while self.epoch < cfg.epochs and not self._patience_exhausted():
            self.module.train()
            sums: dict[str, float] = {}
            order = torch.randperm(n, generator=self.generator).to(self.device)
            for start in range(0, n, cfg.batch_size):
                batch = [t[order[start:start + cfg.batch_size]] for t in train]
                for group in self.optimizer.param_groups:
                    group["lr"] = learning_rate(self.step, total_steps, cfg)
                losses = self.module.losses(batch)
                self.optimizer.zero_grad(set_to_none=True)
                losses["loss"].backward()
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(self.module.parameters(), cfg.grad_clip)
                self.optimizer.step()
                self.ema.update_parameters(self.module)
                self.step += 1
                for key, value in losses.items():
                    sums[key] = sums.get(key, 0.0) + float(value.detach()) * len(batch[0])
            record = {f"train_{k}": v / n for k, v in sums.items()}
            record.update({f"valid_{k}": v for k, v in self.validate(valid).items()})
            record.update(epoch=self.epoch, lr=self.optimizer.param_groups[0]["lr"])
            self.history.append(record)
            self.epoch += 1
            if record["valid_loss"] < self.best_valid:
                self.best_valid, self.best_epoch = record["valid_loss"], self.epoch - 1
                save_checkpoint({"ema": self.ema.module.state_dict(), "epoch": self.epoch - 1,
                                 "valid_loss": self.best_valid}, self.out_dir / BEST)
            if self.epoch % cfg.checkpoint_every == 0 or self.epoch == cfg.epochs or self._patience_exhausted():
                save_checkpoint(self.state(), self.out_dir / LAST)
            if on_epoch_end is not None:
                on_epoch_end(record)
            bar.set_postfix({k.replace("train_", ""): f"{v:.3g}" for k, v in record.items()
                             if k.startswith("train_")} | {"valid": f"{record['valid_loss']:.3g}"})
            bar.update(1)
        bar.close()
        return self.history

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

    def _patience_exhausted(self) -> bool:
        return self.best_epoch >= 0 and self.epoch - 1 - self.best_epoch >= self.config.patience
