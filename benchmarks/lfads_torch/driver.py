"""Train lfads-torch once, as its `run_model` does, and time its epochs. Runs INSIDE the lfads-torch venv.

    <venv>/bin/python driver.py --data FILE --run-dir DIR [--seed S] [--epochs N] [--threads T]
                                [--batch-size B] [--recon-seq-len L] [--override KEY=VALUE ...]

`run.py` starts it as a subprocess; it is not meant to be imported by the main environment.

What it does, in the order of `lfads_torch.run_model.run_model` (this file is that function's
body with three changes, see below): compose lfads-torch's own `configs/single.yaml` with
``model=nlb_mc_maze_small datamodule=nlb_mc_maze_small`` and our overrides; seed everything;
instantiate the datamodule, the model, the trainer with the config's callbacks and loggers;
`trainer.fit`; load the best checkpoint (ModelCheckpoint on valid/recon_smth); run the config's
posterior sampling (`run_posterior_sampling`, 50 samples), which writes ``lfads_output_<stem>.h5``
into the run folder (the working directory). Then it writes ``timing.json`` into the run folder.

The three changes to run_model, none touching the model, the data or the optimisation:
1. Overrides are passed as raw hydra override strings: run_model formats a dict as ``key=value``,
   which cannot express a deletion (``~logger.tensorboard_logger``: CSV logging only, so no
   tensorboard or image logging is needed; the raster/trajectory plot callbacks then do nothing,
   as they do in lfads-torch without an image logger).
2. `EpochTimer` (below) is appended to the callbacks, and the progress bar is off
   (``+trainer.enable_progress_bar=false``): the timer prints one line per epoch instead, which
   streams through a pipe.
3. The best checkpoint is loaded with ``torch.load(..., weights_only=False)``: torch >= 2.6 loads
   ``weights_only=True`` by default, and a Lightning checkpoint holds pickled hyper-parameters
   (the augmentation stacks are nn.Modules), which that refuses. run_model (written for torch
   1.13) calls plain ``torch.load``. Same file, same weights.
Also ``accelerator="cpu"`` instead of ``gpus=int(torch.cuda.is_available())`` (0 here): the
same thing in Lightning 1.9 without the deprecation warning.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

WARMUP_EPOCHS = 5


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="lfads-torch input file (export_lfads)")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="trainer.max_epochs (default: the config's)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=None, help="datamodule.batch_size (default: the config's)")
    p.add_argument("--recon-seq-len", type=int, default=None)
    p.add_argument("--posterior-samples", type=int, default=None)
    p.add_argument("--print-every", type=int, default=10, help="print an epoch line every N epochs")
    p.add_argument("--override", action="append", default=[], help="extra hydra override (repeatable)")
    return p.parse_args(argv)


def overrides_for(args) -> list[str]:
    """The hydra overrides of single.yaml this benchmark uses (see run.py for why each)."""
    data = os.path.abspath(args.data)
    out = [
        "model=nlb_mc_maze_small",
        "datamodule=nlb_mc_maze_small",
        f"datamodule.datafile_pattern='{data}'",
        # our file has no NLB extras (behavior as a batch key, psth / cond_idx / decode_mask attributes)
        "datamodule.batch_keys=[]",
        "datamodule.attr_keys=[]",
        f"seed={args.seed}",
        "~logger.tensorboard_logger",
        "+trainer.enable_progress_bar=false",
    ]
    if args.recon_seq_len is not None:
        out.append(f"model.recon_seq_len={args.recon_seq_len}")
    if args.batch_size is not None:
        out.append(f"datamodule.batch_size={args.batch_size}")
    if args.epochs is not None:
        out.append(f"trainer.max_epochs={args.epochs}")
    if args.posterior_samples is not None:
        out.append(f"posterior_sampling.fn.num_samples={args.posterior_samples}")
    return out + list(args.override)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)

    import hydra
    import pytorch_lightning as pl
    from hydra.utils import call, instantiate

    import lfads_torch
    import lfads_torch.run_model  # noqa: F401  registers the relpath / max / sum resolvers single.yaml uses

    class EpochTimer(pl.Callback):
        """Wall time between successive `on_train_epoch_start` calls (so an epoch includes its
        validation, logging and checkpointing), the last epoch closed by `on_train_end`."""

        def __init__(self, print_every: int, max_epochs: int):
            self.stamps: list[float] = []
            self.end: float | None = None
            self.print_every, self.max_epochs = print_every, max_epochs
            self.recon_smth: list[float] = []

        def on_train_epoch_start(self, trainer, pl_module):
            self.stamps.append(time.perf_counter())

        def on_train_epoch_end(self, trainer, pl_module):
            value = trainer.callback_metrics.get("valid/recon_smth")
            self.recon_smth.append(float(value) if value is not None else float("nan"))
            epoch = trainer.current_epoch + 1
            if epoch == 1 or epoch % self.print_every == 0:
                took = time.perf_counter() - self.stamps[-1]
                print(f"[lfads-torch] epoch {epoch}/{self.max_epochs}  valid/recon_smth "
                      f"{self.recon_smth[-1]:.5f}  {took:.2f} s", flush=True)

        def on_train_end(self, trainer, pl_module):
            self.end = time.perf_counter()

        def epoch_seconds(self) -> list[float]:
            stamps = self.stamps + ([self.end] if self.end is not None else [])
            return [b - a for a, b in zip(stamps[:-1], stamps[1:])]

    configs = Path(lfads_torch.__file__).resolve().parents[1] / "configs"
    if not (configs / "single.yaml").is_file():
        raise SystemExit(f"lfads-torch's configs not found at {configs} (install lfads-torch editable: setup_venv.py)")
    overrides = overrides_for(args)
    with hydra.initialize_config_dir(config_dir=str(configs), job_name="run_model", version_base="1.1"):
        config = hydra.compose(config_name="single.yaml", overrides=overrides)

    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    os.chdir(run_dir)  # checkpoints, csv_logs and lfads_output_*.h5 go here, as with scripts/run_single.py
    from omegaconf import OmegaConf

    Path("config.yaml").write_text(OmegaConf.to_yaml(config, resolve=True))
    print(f"[lfads-torch] overrides: {' '.join(overrides)}", flush=True)

    # ---- lfads_torch.run_model.run_model, do_train=True, do_posterior_sample=True, no checkpoint_dir
    if config.get("seed") is not None:
        pl.seed_everything(config.seed, workers=True)
    datamodule = instantiate(config.datamodule, _convert_="all")
    model = instantiate(config.model)
    timer = EpochTimer(args.print_every, int(config.trainer.max_epochs))
    trainer = instantiate(
        config.trainer,
        callbacks=[instantiate(c) for c in config.callbacks.values()] + [timer],
        logger=[instantiate(lg) for lg in config.logger.values()],
        accelerator="cpu",
    )
    started = time.perf_counter()
    trainer.fit(model=model, datamodule=datamodule)
    train_s = time.perf_counter() - started
    best_path = trainer.checkpoint_callback.best_model_path
    if config.posterior_sampling.use_best_ckpt:
        checkpoint = torch.load(best_path, weights_only=False, map_location="cpu")
        model.load_state_dict(checkpoint["state_dict"])
        best_epoch = int(checkpoint["epoch"])
    else:
        best_epoch = None
    print(f"[lfads-torch] trained {trainer.current_epoch} epochs in {train_s:.1f} s; best checkpoint "
          f"{best_path} (epoch {best_epoch}); posterior sampling ...", flush=True)
    started = time.perf_counter()
    call(config.posterior_sampling.fn, model=model, datamodule=datamodule)
    sampling_s = time.perf_counter() - started

    seconds = timer.epoch_seconds()
    counted = seconds[WARMUP_EPOCHS:] or seconds
    best_score = trainer.checkpoint_callback.best_model_score
    timing = {
        "epoch_s": seconds,
        "warmup_epochs": WARMUP_EPOCHS,
        "median_s_per_epoch": statistics.median(counted) if counted else None,
        "min_s_per_epoch": min(counted) if counted else None,
        "max_s_per_epoch": max(counted) if counted else None,
        "epochs_trained": len(seconds),
        "best_epoch": best_epoch,  # 0-based, Lightning's checkpoint["epoch"]
        "best_valid_recon_smth": float(best_score) if best_score is not None else None,
        "valid_recon_smth": timer.recon_smth,
        "train_s": train_s,
        "posterior_sampling_s": sampling_s,
        "best_checkpoint": str(Path(best_path).resolve()),
        "output_file": str(Path(f"lfads_output_{Path(args.data).stem}.h5").resolve()),
        "threads": torch.get_num_threads(),
        "overrides": overrides,
        "stopped_early": any(getattr(c, "stopped_epoch", 0) > 0 for c in trainer.callbacks
                             if isinstance(c, pl.callbacks.EarlyStopping)),
    }
    Path("timing.json").write_text(json.dumps(timing, indent=1))
    print(f"[lfads-torch] done: median {timing['median_s_per_epoch']:.3f} s/epoch over {len(counted)} epochs; "
          f"posterior sampling {sampling_s:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
