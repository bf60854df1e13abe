"""The `gnocchi` command. Errors in user input print one line and exit non-zero."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import h5py
import numpy as np

from .errors import GnocchiError

EXIT_USER_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        args.run(args)
    except (GnocchiError, FileNotFoundError, IsADirectoryError, PermissionError, ValueError) as err:
        print(f"gnocchi: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("gnocchi: interrupted", file=sys.stderr)
        return 130
    return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gnocchi",
        description="GNOCCHI Explorer: generative models of neural population activity.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    data = commands.add_parser("data", help="inspect, import, synthesise and export datasets",
                               description="Datasets are single HDF5 files in the GNOCCHI TrialData format.")
    data_commands = data.add_subparsers(title="data commands", metavar="DATA_COMMAND")
    data.set_defaults(run=lambda args: data.print_help())

    info = data_commands.add_parser("info", help="summarise a dataset file",
                                    description="Print trials, bins, neurons, rates, behaviour, splits and held-out conditions.")
    info.add_argument("file", help="a GNOCCHI dataset (.h5)")
    info.set_defaults(run=_data_info)

    imp = data_commands.add_parser(
        "import", help="convert a recording (NWB, NLB tensors, lfads-torch input) to a dataset",
        description="Bin, align and label a recording, writing one GNOCCHI dataset file.")
    imp.add_argument("src", help="the file to import")
    imp.add_argument("--format", choices=("nwb", "nlb", "lfads"),
                     help="input format (default: guessed from the file)")
    imp.add_argument("--out", required=True, help="dataset file to write (.h5)")
    imp.add_argument("--bin-ms", type=float, help="bin width in ms (nwb: 5; nlb: 5; lfads: required "
                     "unless the file was written by gnocchi)")
    imp.add_argument("--window", type=float, nargs=2, metavar=("START_MS", "END_MS"),
                     help="window around movement onset in ms (nwb default: -200 500; nlb files: -250 450)")
    imp.add_argument("--valid-fraction", type=float, default=0.2,
                     help="nlb: fraction of train trials kept for validation (default 0.2)")
    imp.add_argument("--seed", type=int, default=0, help="nlb: seed of the train/valid split (default 0)")
    imp.set_defaults(run=_data_import)

    synth = data_commands.add_parser(
        "synth", help="generate fast synthetic reaching data (seconds)",
        description="Reaches from varied starts to an n×n target grid; neurons driven by latent dynamics; "
                    "Poisson spikes with ground-truth rates; some grid targets held out.")
    synth.add_argument("--out", required=True, help="dataset file to write (.h5)")
    synth.add_argument("--grid", type=int, default=5, help="targets on a GRID×GRID grid (default 5)")
    synth.add_argument("--trials", type=int, default=500, help="total number of trials (default 500)")
    synth.add_argument("--neurons", type=int, default=100, help="number of neurons (default 100)")
    synth.add_argument("--heldout-neurons", type=int, default=20, help="neurons marked held-out (default 20)")
    synth.add_argument("--heldout-targets", type=int, nargs="*", metavar="INDEX",
                       help="grid indices (row-major) of held-out targets (default: 3 interior targets)")
    synth.add_argument("--bin-ms", type=float, default=10.0, help="bin width in ms (default 10)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.set_defaults(run=_data_synth)

    export = data_commands.add_parser(
        "export-lfads", help="write a dataset as an lfads-torch input file",
        description="encod = held-in neurons, recon = all neurons with held-out last; train/valid/test blocks.")
    export.add_argument("file", help="a GNOCCHI dataset (.h5)")
    export.add_argument("--out", required=True, help="lfads-torch input file to write (.h5)")
    export.set_defaults(run=_data_export_lfads)
    return parser


def _command_line() -> str:
    return "gnocchi " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _data_info(args) -> None:
    from .data import load_dataset

    print(summarize(load_dataset(args.file), args.file))


def summarize(data, name: str) -> str:
    """Human-readable summary of a dataset: what a user checks first."""
    info = data.trial_info
    splits = ", ".join(f"{s} {int((info['split'] == s).sum())}" for s in ("train", "valid", "test"))
    start, end = data.window_ms
    n_out = int(data.heldout_neurons.sum())
    rates = data.spikes.mean(axis=(0, 1)) * 1000.0 / data.bin_ms
    lines = [
        name,
        f"  trials       {data.n_trials} ({splits})",
        f"  bins         {data.n_bins} × {data.bin_ms:g} ms, window {start:g}..{end:g} ms around {data.align_event}",
        f"  neurons      {data.n_neurons} ({data.n_neurons - n_out} held-in, {n_out} held-out)",
        f"  mean rate    {data.mean_rate_hz():.2f} spikes/s (per neuron: median {np.median(rates):.2f}, "
        f"range {rates.min():.2f}..{rates.max():.2f})",
    ]
    behaviour = ", ".join(
        f"{k} ({v.shape[-1]} dims{', ' + data.behavior_units[k] if data.behavior_units.get(k) else ''})"
        for k, v in data.behavior.items()) or "none"
    lines.append(f"  behaviour    {behaviour}")
    conditions = info.loc[info["condition_id"] >= 0, "condition_id"]
    heldout = sorted(info.loc[info["heldout_condition"], "condition_id"].unique().tolist())
    if len(conditions):
        held = (f"{len(heldout)} held out: ids {', '.join(map(str, heldout))} "
                f"({int(info['heldout_condition'].sum())} trials)") if heldout else "none held out"
        lines.append(f"  conditions   {conditions.nunique()}, {held}")
    else:
        lines.append("  conditions   unlabelled")
    labelled = [c for c in ("start_x", "start_y", "target_x", "target_y", "reach_angle") if info[c].notna().any()]
    lines.append(f"  trial labels {', '.join(labelled) or 'none'}")
    truth = [n for n in ("rates", "latents") if getattr(data, n) is not None]
    if truth:
        lines.append("  ground truth " + ", ".join(
            f"{n} ({getattr(data, n).shape[-1]} dims)" if n == "latents" else n for n in truth))
    p = data.provenance
    for label, value in (("source", p.source), ("licence", p.licence), ("citation", p.citation),
                         ("made by", p.command)):
        if value:
            lines.append(f"  {label:<12} {value}")
    return "\n".join(lines)


def _guess_format(path: str) -> str:
    if path.lower().endswith(".nwb"):
        return "nwb"
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            if "units" in f and "intervals" in f:
                return "nwb"
            if "train_spikes_heldin" in f:
                return "nlb"
            if "train_encod_data" in f:
                return "lfads"
    raise GnocchiError(f"{path}: cannot tell the format (not NWB, NLB tensors or lfads-torch input); pass --format")


def _data_import(args) -> None:
    if not os.path.isfile(args.src):
        raise FileNotFoundError(f"{args.src}: file not found")
    fmt = args.format or _guess_format(args.src)
    if fmt == "nwb":
        from .data.nwb import import_nwb

        data = import_nwb(args.src, bin_ms=args.bin_ms or 5.0,
                          window_ms=tuple(args.window) if args.window else (-200.0, 500.0))
    elif fmt == "nlb":
        from .data.nlb import import_nlb

        data = import_nlb(args.src, bin_ms=args.bin_ms or 5.0,
                          t0_ms=args.window[0] if args.window else -250.0,
                          valid_fraction=args.valid_fraction, seed=args.seed)
        if args.window and data.window_ms[1] != args.window[1]:
            raise GnocchiError(f"{args.src}: --window {args.window[0]:g} {args.window[1]:g} does not match the "
                               f"file's {data.n_bins} bins of {data.bin_ms:g} ms")
    else:
        from .data.lfads_h5 import import_lfads

        data = import_lfads(args.src, bin_ms=args.bin_ms, t0_ms=args.window[0] if args.window else 0.0)
    data.provenance.command = _command_line()
    data.save(args.out)
    print(summarize(data, args.out))


def _data_synth(args) -> None:
    from .data.synthetic import SynthConfig, synthesize

    config = SynthConfig(grid=args.grid, n_trials=args.trials, n_neurons=args.neurons,
                         n_heldout_neurons=args.heldout_neurons, bin_ms=args.bin_ms, seed=args.seed,
                         heldout_targets=tuple(args.heldout_targets) if args.heldout_targets is not None else None)
    data = synthesize(config)
    data.provenance.command = _command_line()
    data.save(args.out)
    print(summarize(data, args.out))


def _data_export_lfads(args) -> None:
    from .data import load_dataset
    from .data.lfads_h5 import export_lfads

    data = load_dataset(args.file)
    export_lfads(data, args.out)
    print(f"wrote {Path(args.out)}: lfads-torch input with {data.n_trials} trials, "
          f"{int((~data.heldout_neurons).sum())} encod / {data.n_neurons} recon neurons")


if __name__ == "__main__":
    sys.exit(main())
