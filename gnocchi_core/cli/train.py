"""`gnocchi train gnocchi|lfads`: train a model on a dataset. Checkpoints go to --out, so --resume
continues a killed run and --max-minutes bounds a run's time while still leaving a loadable model.
--devices N trains the one model data-parallel on N processes (models/distributed.py), which this
command starts itself, or which torchrun started (``torchrun --nproc_per_node N -m gnocchi_core.cli
train ...``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


from ..errors import GnocchiError
from .common import add_command, add_device, add_group, config_overrides, new_folder, refuse_inputs


def register(commands) -> None:
    """Add the `train` group and its models to the top-level subparsers."""
    models = add_group(
        commands, "train", help="train a model on a dataset",
        description="Train a model; checkpoints go to --out and --resume continues a killed run where it "
                    "stopped. --max-minutes ends a run early, keeping the best weights so far.",
        examples=["gnocchi train gnocchi --data demo.h5 --out models/gnocchi_demo --max-minutes 5",
                  "gnocchi train lfads --data demo.h5 --out models/lfads_demo --max-minutes 5",
                  "gnocchi train gnocchi --data demo.h5 --out models/gnocchi_demo --resume",
                  "gnocchi train lfads --data demo.h5 --out models/lfads_demo --devices 2 --device cuda"],
        title="models", metavar="MODEL")
    gnocchi = add_command(
        models, "gnocchi", help="the code-conditioned diffusion model", run=_train_gnocchi,
        description="Train GNOCCHI on the 'train' trials, validating on 'valid'.",
        examples=["gnocchi train gnocchi --data demo.h5 --out models/gnocchi_demo --max-minutes 5",
                  "gnocchi train gnocchi --data demo.h5 --out models/gnocchi_demo --epochs 100 --seed 1",
                  "gnocchi train gnocchi --data demo.h5 --out models/gnocchi_demo --resume"])
    gnocchi.add_argument("--data", required=True, help="a GNOCCHI dataset (.h5)")
    _add_common(gnocchi, model="GnocchiConfig", epochs=400)
    lfads = add_command(
        models, "lfads", help="the LFADS baseline (lfads-torch's architecture)", run=_train_lfads,
        description="Train LFADS on the 'train' trials, validating on 'valid'; encoders read the held-in neurons, "
                    "the readout reconstructs all. Also writes OUT/lfads_output_{data name}.h5 with lfads-torch's "
                    "output keys. --data may be a GNOCCHI dataset or an lfads-torch input file.",
        examples=["gnocchi train lfads --data demo.h5 --out models/lfads_demo --max-minutes 5",
                  "gnocchi train lfads --data demo_lfads.h5 --out models/lfads_from_file --epochs 50"])
    lfads.add_argument("--data", required=True, help="a GNOCCHI dataset or an lfads-torch input file (.h5)")
    _add_common(lfads, model="LfadsConfig", epochs=800)
    lfads.add_argument("--bin-ms", type=float, help="bin width in ms, for lfads-torch files gnocchi did not write")


def _add_common(parser, *, model: str, epochs: int) -> None:
    """The options both models take (``model``: the config class --config overrides)."""
    parser.add_argument("--out", required=True, help="model folder to write")
    parser.add_argument("--epochs", type=int, help=f"maximum epochs (default {epochs}; early stopping may end sooner)")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--config", help=f"JSON file of {model} fields to override")
    add_device(parser)
    parser.add_argument("--devices", type=_processes, metavar="N",
                        help="train on N processes, data-parallel: N GPUs with --device cuda (rank r on cuda:r), "
                             "else N CPU processes (default 1; under torchrun, omit it or repeat its process count)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt (the epoch count may change)")
    parser.add_argument("--force", action="store_true", help="train a new model over the one (or the interrupted run) "
                        "in --out")
    parser.add_argument("--max-minutes", type=float, metavar="M",
                        help="stop cleanly after M minutes of training and keep the best weights so far as a "
                             "loadable model")


def _processes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of processes ≥ 1, got {text!r}")
    return value


def _on_devices(args, train, check=None) -> None:
    """Run ``train(args, device)`` here, or as every rank of --devices N processes started here, or as
    this process's rank of a torchrun world; --out (and ``check(args)``) are checked before any rank starts."""
    from ..models import distributed

    _check_out(args)
    if check is not None:
        check(args)
    size, start_here = distributed.requested_world(getattr(args, "devices", None))
    device = distributed.check_device(args.device, size) if size > 1 else args.device
    if start_here:
        distributed.launch(_rank, (args, train, device), size, device)
    else:
        _rank(args, train, device)


def _rank(args, train, device: str) -> None:
    from ..models import distributed

    with distributed.session(device) as here:
        train(args, here)


def _check_out(args) -> None:
    """--out is a folder that is not an input, and it is not trained over by accident."""
    from ..models.base import CONFIG_FILE
    from ..models.training import has_checkpoint

    refuse_inputs({"--out": args.out}, {"--data": args.data, "--config": args.config})
    new_folder(args.out)
    if args.resume or args.force:
        return
    if (Path(args.out) / CONFIG_FILE).is_file():
        raise GnocchiError(f"{args.out}: holds a trained model; --resume continues it, --force trains a new one "
                           "over it")
    if has_checkpoint(args.out):
        raise GnocchiError(f"{args.out}: holds an interrupted run; --resume continues it, --force starts over")


def _fit(args, device: str, data, config_class, model_class, what: str, detail: str = ""):
    """Train ``model_class`` (its config from --config, --epochs, --seed) on ``data`` into --out on ``device``
    (this rank's), saying what and where; returns the model and its best history record."""
    from ..models import distributed
    from ..models.training import resolve_device

    config = config_class.from_dict(config_overrides(args), path=args.config)
    world = distributed.World()
    where = resolve_device(device) if world.size == 1 else \
        f"{world.size} processes ({'gloo, cpu' if device == 'cpu' else 'nccl, cuda:0-' + str(world.size - 1)})"
    if world.is_main:
        print(f"training {what} on {args.data} ({data.n_trials} trials, {data.n_bins} bins, {data.n_neurons} neurons"
              f"{detail}) on {where}", flush=True)
    model = model_class(config, device=device).fit(data, args.out, resume=args.resume,
                                                   max_minutes=args.max_minutes)
    return model, min(model.history, key=lambda r: r["valid_loss"])


def _done(model, best: dict, tail: str = "") -> str:
    return (f"done: {len(model.history)} epochs ({_stopped(model)}), best valid loss {best['valid_loss']:.4f} at epoch "
            f"{best['epoch']}{tail}")


def _train_gnocchi(args) -> None:
    _on_devices(args, _gnocchi_on)


def _gnocchi_on(args, device: str) -> None:
    from ..data import load_dataset
    from ..models import distributed
    from ..models.gnocchi import GnocchiConfig, GnocchiModel

    model, best = _fit(args, device, load_dataset(args.data), GnocchiConfig, GnocchiModel, "GNOCCHI")
    if distributed.is_main():
        print(_done(model, best, f"; model in {args.out}"))


def _train_lfads(args) -> None:
    _on_devices(args, _lfads_on, check=_data_exists)


def _data_exists(args) -> None:
    if not os.path.isfile(args.data):
        raise FileNotFoundError(f"{args.data}: file not found")


def _lfads_on(args, device: str) -> None:
    from ..data.lfads_h5 import load_training_data
    from ..models import distributed
    from ..models.lfads import LfadsConfig, LfadsModel, write_lfads_output

    data = load_training_data(args.data, bin_ms=args.bin_ms)
    model, best = _fit(args, device, data, LfadsConfig, LfadsModel, "LFADS",
                       f", {int(data.heldout_neurons.sum())} held out")
    if not distributed.is_main():
        return
    heldout = f", held-out neurons {best['valid_heldout_bps']:.4f} bits/spike" if "valid_heldout_bps" in best else ""
    output = Path(args.out) / f"lfads_output_{Path(args.data).stem}.h5"
    write_lfads_output(model, data, output)
    print(_done(model, best, f"{heldout}; model in {args.out}; outputs in {output}"))


def _stopped(model) -> str:
    """Why training ended, as `Trainer.stopped` records it."""
    return f"stopped: {model.stopped}" if getattr(model, "stopped", None) else "finished"
