"""`gnocchi data import`: a recording (NWB, NLB tensors, lfads-torch input, MATLAB .mat, NumPy .npz) → one
dataset file. One reader per ``--format``; the arrays formats take the keys of their arrays."""

from __future__ import annotations

import os
import re
from pathlib import Path

import h5py

from ..errors import GnocchiError
from .common import add_command, add_force, command_line, new_file, refuse_inputs

MAZE = "../shared/data/mc_maze_small"


def _import_nwb(args):
    from ..data.nwb import import_nwb

    return import_nwb(args.src, bin_ms=args.bin_ms or 5.0,
                      window_ms=tuple(args.window) if args.window else (-200.0, 500.0), align=args.align)


def _import_nlb(args):
    from ..data.nlb import import_nlb

    data = import_nlb(args.src, bin_ms=args.bin_ms or 5.0, t0_ms=args.window[0] if args.window else -250.0,
                      valid_fraction=0.2 if args.valid_fraction is None else args.valid_fraction, seed=args.seed)
    if args.window and data.window_ms[1] != args.window[1]:
        raise GnocchiError(f"{args.src}: --window {args.window[0]:g} {args.window[1]:g} does not match the "
                           f"file's {data.n_bins} bins of {data.bin_ms:g} ms")
    return data


def _import_lfads(args):
    from ..data.lfads_h5 import import_lfads

    return import_lfads(args.src, bin_ms=args.bin_ms, t0_ms=args.window[0] if args.window else 0.0)


def _import_arrays(args):
    from ..data.labels import TEST_FRACTION, VALID_FRACTION
    from ..data.matfile import ArrayImport, import_arrays

    if not args.spikes:
        raise GnocchiError(f"{args.src}: --format {args.format or Path(args.src).suffix[1:]} needs --spikes KEY "
                           "(the array of spike counts or 0/1 trains)")
    options = ArrayImport(
        spikes=args.spikes, units_axis=args.units_axis, bin_ms=args.bin_ms, source_bin_ms=args.source_bin_ms,
        time=args.time, behavior=dict(_behavior(spec) for spec in args.behavior or []), condition=args.condition,
        split=args.split,
        onsets=args.onsets, segment=args.segment, window_ms=tuple(args.window) if args.window else None,
        speed_threshold=args.speed_threshold, n_conditions=args.conditions,
        valid_fraction=VALID_FRACTION if args.valid_fraction is None else args.valid_fraction,
        test_fraction=TEST_FRACTION if args.test_fraction is None else args.test_fraction, seed=args.seed)
    return import_arrays(args.src, options, fmt=args.format or _guess_format(args.src))


def _behavior(spec: str) -> tuple[str, tuple[str, str]]:
    """NAME=KEY[:UNIT] → (NAME, (KEY, UNIT))."""
    match = re.fullmatch(r"([A-Za-z_]\w*)=([^:]+)(?::(.+))?", spec)
    if not match:
        raise GnocchiError(f"--behavior {spec!r}: expected NAME=KEY[:UNIT], e.g. hand_pos=pos:m")
    name, key, unit = match.groups()
    return name, (key, unit or "")


# One reader per --format: the parsed arguments in, a TrialData out. A new format is one function
# here, an entry in this table and, if it can be recognised, a line in _guess_format.
IMPORTERS = {"nwb": _import_nwb, "nlb": _import_nlb, "lfads": _import_lfads, "mat": _import_arrays,
             "npz": _import_arrays}


def register_import(group) -> None:
    imp = add_command(
        group, "import", help="convert a recording (NWB, NLB tensors, lfads-torch input, .mat, .npz) to a dataset",
        run=_data_import,
        description="Bin, align and label a recording, writing one GNOCCHI dataset file. The format is guessed "
                    "from the file unless --format names it.\n\n"
                    "MATLAB and NumPy files: --spikes names the array of spike counts or 0/1 trains: a variable, a "
                    "struct field (data.spikes) or a field of every element of a struct array (trials.spikes, one "
                    "array per trial). A 2-D array is a continuous recording, cut into trials around movement "
                    "onsets (--segment speed-onset) or given --onsets; a 3-D array or a struct array is trials. "
                    "Lengths are stored in cm and velocities in cm/s. Labels the file lacks are derived: start and "
                    "target from the hand path, conditions from --condition or by clustering reach endpoints, and "
                    "train/valid/test splits stratified by condition (`gnocchi data info` lists what was derived).",
        examples=["gnocchi data import recording.mat --spikes spike_counts --units-axis 0 --time time "
                  "--behavior hand_pos=pos:m --behavior hand_vel=vel:m/s --segment speed-onset --window -200 600 "
                  "--out recording.h5",
                  "gnocchi data import trials.mat --spikes trials.spikes --condition trials.condition --bin-ms 20 "
                  "--out trials.h5",
                  "gnocchi data import reaches.npz --spikes spikes --bin-ms 10 --behavior hand_pos=hand_pos:mm "
                  "--condition target --segment speed-onset --window -100 300 --out reaches.h5",
                  f"gnocchi data import {MAZE}/mc_maze_small_full.h5 --out maze.h5",
                  f"gnocchi data import {MAZE}/sub-Jenkins_ses-small_desc-test_ecephys.nwb --window -250 450 "
                  "--out maze_test.h5"])
    imp.add_argument("src", help="the file to import")
    imp.add_argument("--format", choices=tuple(IMPORTERS), help="input format (default: guessed from the file)")
    imp.add_argument("--out", required=True, help="dataset file to write (.h5); never the input file")
    add_force(imp)
    imp.add_argument("--bin-ms", type=float, help="bin width of the dataset in ms (nwb, nlb: 5; lfads: required unless "
                     "gnocchi wrote the file; mat/npz: the recording's sample interval, 20 for 0/1 trains)")
    imp.add_argument("--window", type=float, nargs=2, metavar=("START_MS", "END_MS"),
                     help="window in ms around the alignment event (nwb default: -200 500 around movement onset; nlb "
                          "files: -250 450; mat/npz: -200 600 around onsets, else from trial start to the end of the "
                          "shortest trial)")
    imp.add_argument("--valid-fraction", type=float,
                     help="share of trials for validation (nlb: of the train trials, default 0.2; mat/npz: 0.15)")
    imp.add_argument("--seed", type=int, default=0, help="seed of derived splits and clusters (default 0)")
    nwb = imp.add_argument_group("nwb")
    nwb.add_argument("--align", metavar="EVENT", help="trials-table time column to align to, e.g. go_cue_time "
                     "(default: move_onset_time; without one, onsets from hand speed)")
    arrays = imp.add_argument_group("mat and npz")
    arrays.add_argument("--spikes", metavar="KEY", help="the spike counts or 0/1 trains")
    arrays.add_argument("--units-axis", type=int, choices=(0, 1, 2),
                        help="the axis holding the units (default: guessed from the other arrays' lengths)")
    arrays.add_argument("--source-bin-ms", type=float, metavar="MS",
                        help="the recording's sample interval (default: from --time, 1 for 0/1 trains, else --bin-ms)")
    arrays.add_argument("--time", metavar="KEY", help="a time vector of the samples (s, or ms when its steps are ≥ 0.5)")
    arrays.add_argument("--behavior", action="append", metavar="NAME=KEY[:UNIT]",
                        help="a behaviour array and its unit (m, cm, mm, m/s, …), e.g. hand_pos=pos:m; repeat")
    arrays.add_argument("--condition", metavar="KEY", help="one condition label per trial (strings or numbers)")
    arrays.add_argument("--split", metavar="KEY", help="trials: train / valid (or val) / test per trial "
                        "(default: derived, stratified by condition)")
    arrays.add_argument("--onsets", metavar="KEY", help="continuous: times (with --time) or sample indices to align to")
    arrays.add_argument("--segment", choices=("speed-onset",), help="cut trials around movement onsets found from "
                        "hand speed (continuous recordings, or trials with hand kinematics)")
    arrays.add_argument("--speed-threshold", type=float, default=0.2,
                        help="onset = start of the run above this fraction of the reach's peak speed (default 0.2)")
    arrays.add_argument("--conditions", type=int, default=8, metavar="K",
                        help="without --condition: cluster reach endpoints into K conditions (default 8)")
    arrays.add_argument("--test-fraction", type=float, help="share of trials for testing (default 0.2)")


def _guess_format(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in (".nwb", ".mat", ".npz"):
        return suffix[1:]
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            if "units" in f and "intervals" in f:
                return "nwb"
            if "train_spikes_heldin" in f:
                return "nlb"
            if "train_encod_data" in f:
                return "lfads"
    raise GnocchiError(f"{path}: cannot tell the format (not NWB, NLB tensors, lfads-torch input, .mat or .npz); "
                       "pass --format")


def _data_import(args) -> None:
    from .data import summarize

    if not os.path.isfile(args.src):
        raise FileNotFoundError(f"{args.src}: file not found")
    refuse_inputs({"--out": args.out}, {"SRC": args.src})
    new_file(args.out, args.force)
    data = IMPORTERS[args.format or _guess_format(args.src)](args)
    data.provenance.command = command_line()
    data.save(args.out)
    print(summarize(data, args.out))
