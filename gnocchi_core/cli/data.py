"""`gnocchi data ...`: inspect, import, synthesise, simulate and export datasets (single HDF5 files
in the GNOCCHI TrialData format). Each writing command prints the new file's summary, so the user
sees at once what they made."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import add_command, add_force, add_group, command_line, new_file, refuse_inputs
from .data_import import MAZE, register_import



def register(commands) -> None:
    """Add the `data` group and its commands to the top-level subparsers."""
    group = add_group(
        commands, "data", help="inspect, import, synthesise and export datasets",
        description="Datasets are single HDF5 files in the GNOCCHI TrialData format: spikes, behaviour, "
                    "trial labels, splits, held-out neurons and conditions, provenance.",
        examples=["gnocchi data synth --out demo.h5",
                  "gnocchi data info demo.h5",
                  "gnocchi data check demo.h5",
                  "gnocchi data import recording.mat --spikes spike_counts --time time --behavior hand_pos=pos:m "
                  "--segment speed-onset --out recording.h5",
                  f"gnocchi data import {MAZE}/mc_maze_small_full.h5 --out maze.h5",
                  "gnocchi data export-lfads demo.h5 --out demo_lfads.h5"],
        title="data commands", metavar="DATA_COMMAND")
    _register_info(group)
    register_import(group)
    _register_check(group)
    _register_synth(group)
    _register_simulate(group)
    _register_export(group)


# ---------------------------------------------------------------------- info
def _register_info(group) -> None:
    info = add_command(
        group, "info", help="summarise a dataset file", run=_data_info,
        description="Print trials, bins, neurons, rates, behaviour, splits and held-out conditions.",
        examples=["gnocchi data info demo.h5", "gnocchi data info assets/motornet_reach/motornet_reach.h5"])
    info.add_argument("file", help="a GNOCCHI dataset (.h5)")


def _data_info(args) -> None:
    from ..data import load_dataset

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
    for label, value in (("derived", p.derived), ("source", p.source), ("licence", p.licence),
                         ("citation", p.citation), ("made by", p.command)):
        if value:
            lines.append(f"  {label:<12} {value}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- check
def _register_check(group) -> None:
    check = add_command(
        group, "check", help="say which commands accept a dataset, and what is missing where one does not",
        run=_data_check,
        description="For train, evaluate and explore: whether the dataset is accepted, what each will show "
                    "(the reach evaluation, or the neural-only one without hand kinematics), and otherwise the one "
                    "thing missing. Exits 1 when a command refuses the dataset.",
        examples=["gnocchi data check demo.h5", "gnocchi data check trials.h5"])
    check.add_argument("file", help="a GNOCCHI dataset (.h5)")


def _data_check(args) -> int:
    from ..data import load_dataset

    report, ok = check_report(load_dataset(args.file), args.file)
    print(report)
    return 0 if ok else 1


def check_report(data, name: str) -> tuple[str, bool]:
    """The `data check` text and whether every command accepts the dataset."""
    from ..data.readiness import has_conditions, missing_conditions, missing_reach, readiness

    refused = readiness(data)
    reach = missing_reach(data)
    what = {
        "train": f"{int(data.heldin_conditions('train').sum())} train, {int(data.heldin_conditions('valid').sum())} "
                 "valid trials",
        "evaluate": "the reach evaluation (code SNR, R², navigation, decoded reaches)" if reach is None else
                    f"the neural-only evaluation (code SNR by condition, R², PCA); navigation n/a: {reach}",
        "explore": ("sliders along start/target and every continuous trial variable, decoded reaches"
                    if reach is None else "sliders along condition axes and PCs, generated vs recorded activity, "
                    f"no reach panel ({reach})" if has_conditions(data) else
                    f"PC sliders only ({missing_conditions(data)}; {reach})"),
    }
    lines = [name] + [f"  {command:<9} " + (f"ok: {what[command]}" if refused[command] is None
                                            else f"refused: {refused[command]}") for command in refused]
    return "\n".join(lines), all(v is None for v in refused.values())


# ---------------------------------------------------------------------- synth
def _register_synth(group) -> None:
    synth = add_command(
        group, "synth", help="generate fast synthetic reaching data (seconds)", run=_data_synth,
        description="Reaches from varied starts to an n×n target grid; neurons driven by latent dynamics; "
                    "Poisson spikes with ground-truth rates; some grid targets held out.",
        examples=["gnocchi data synth --out demo.h5",
                  "gnocchi data synth --out small.h5 --grid 3 --trials 90 --neurons 40 --heldout-targets 4"])
    synth.add_argument("--out", required=True, help="dataset file to write (.h5)")
    add_force(synth)
    synth.add_argument("--grid", type=int, default=5, help="targets on a GRID×GRID grid (default 5)")
    synth.add_argument("--trials", type=int, default=500, help="total number of trials (default 500)")
    synth.add_argument("--neurons", type=int, default=100, help="number of neurons (default 100)")
    synth.add_argument("--heldout-neurons", type=int, default=20, help="neurons marked held-out (default 20)")
    synth.add_argument("--heldout-targets", type=int, nargs="*", metavar="INDEX",
                       help="grid indices (row-major) of held-out targets (default: 3 interior targets)")
    synth.add_argument("--bin-ms", type=float, default=10.0, help="bin width in ms (default 10)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _data_synth(args) -> None:
    from ..data.synthetic import SynthConfig, synthesize

    new_file(args.out, args.force)
    config = SynthConfig(grid=args.grid, n_trials=args.trials, n_neurons=args.neurons,
                         n_heldout_neurons=args.heldout_neurons, bin_ms=args.bin_ms, seed=args.seed,
                         heldout_targets=tuple(args.heldout_targets) if args.heldout_targets is not None else None)
    data = synthesize(config)
    data.provenance.command = command_line()
    data.save(args.out)
    print(summarize(data, args.out))


# ---------------------------------------------------------------------- simulate
def _register_simulate(group) -> None:
    simulate = add_command(
        group, "simulate", help="simulate reaching with a GRU-controlled MotorNet arm (needs the [simulate] extra)",
        run=_data_simulate,
        description="A GRU policy drives a 6-muscle MotorNet arm from varied starts to an n×n target grid; "
                    "its units are the neurons (Poisson spikes, ground-truth rates). Trains the policy "
                    "(about 17 min on one core) unless --policy names a saved one; writes a figure beside --out.",
        examples=["gnocchi data simulate --out reach/motornet_reach.h5 --policy assets/motornet_reach/policy.pt",
                  "gnocchi data simulate --out big/reach.h5 --trials-per-condition 200 "
                  "--policy assets/motornet_reach/policy.pt --no-ground-truth"])
    simulate.add_argument("--out", required=True, help="dataset file to write (.h5); the figure goes beside it (.png)")
    add_force(simulate, "an existing dataset file")
    simulate.add_argument("--grid", type=int, default=5, help="targets on a GRID×GRID grid (default 5)")
    simulate.add_argument("--trials-per-condition", type=int, default=20, help="trials per target (default 20)")
    simulate.add_argument("--held-out", type=int, nargs="*", metavar="INDEX",
                          help="grid indices (row-major) of held-out targets (default: 3 interior targets)")
    simulate.add_argument("--neurons", type=int, default=100, help="held-in neurons (default 100)")
    simulate.add_argument("--heldout-neurons", type=int, default=20,
                          help="held-out neurons, in addition to --neurons (default 20)")
    simulate.add_argument("--seed", type=int, default=0, help="random seed of the data and of training (default 0)")
    simulate.add_argument("--policy", help="policy checkpoint (.pt, with its .json): loaded if it exists, else "
                          "trained and saved there (default: policy.pt beside --out)")
    simulate.add_argument("--train-iterations", type=int, help="training iterations when training a policy "
                          "(default 2500)")
    simulate.add_argument("--split", type=float, nargs=3, metavar=("TRAIN", "VALID", "TEST"),
                          help="fractions of each held-in target's trials per split (default 0.6 0.15 0.25)")
    simulate.add_argument("--no-ground-truth", action="store_true",
                          help="store spikes and behaviour only; `evaluate` regenerates rates and latents from the "
                               "policy beside the file (a small file for large trial counts)")
    simulate.add_argument("--float16", action="store_true",
                          help="store rates and latents as float16 (about half the file size)")


def _data_simulate(args) -> None:
    import dataclasses

    from ..data import motornet_sim as sim

    config = sim.MotorNetSimConfig(
        grid=args.grid, trials_per_condition=args.trials_per_condition, n_neurons=args.neurons,
        n_heldout_neurons=args.heldout_neurons, seed=args.seed,
        heldout_targets=tuple(args.held_out) if args.held_out is not None else None,
        **({"split_fractions": tuple(args.split)} if args.split else {}))
    policy_path = Path(args.policy) if args.policy else Path(args.out).parent / "policy.pt"
    refuse_inputs({"--out": args.out, "figure": str(Path(args.out).with_suffix(".png"))}, {"--policy": str(policy_path)})
    new_file(args.out, args.force)
    if policy_path.exists():
        policy, task, meta = sim.load_policy(policy_path)
        print(f"loaded policy {policy_path}")
    else:
        train = sim.TrainConfig(seed=args.seed, **({} if args.train_iterations is None
                                                   else {"iterations": args.train_iterations}))
        task = sim.ArmTaskConfig()
        config.check_fits(task)
        policy, record = sim.train_policy(task, train)
        record.update(sim.evaluate_policy(policy, task), train_config=dataclasses.asdict(train))
        sim.save_policy(policy, task, policy_path, record)
        meta = {"training": record}
        print(f"saved policy {policy_path} (trained {record['seconds']:.0f} s; random reaches: median endpoint "
              f"error {record['median_endpoint_error_cm']:.2f} cm, {100 * record['success_rate']:.0f}% < 1 cm)")
    data = sim.simulate(config, policy, task, meta["training"])
    data.provenance.command = command_line()
    figure = Path(args.out).with_suffix(".png")
    sim.plot_dataset(data, figure)
    if args.float16:
        data.rates, data.latents = data.rates.astype(np.float16), data.latents.astype(np.float16)
    if args.no_ground_truth:
        data.rates = data.latents = None
        if policy_path.resolve().parent != Path(args.out).resolve().parent:
            print(f"note: ground truth not stored; `evaluate` regenerates it from a policy.pt beside {args.out}, so "
                  f"copy {policy_path} and its .json there")
    data.save(args.out)
    metrics = sim.read_metrics(data)
    print(summarize(data, args.out))
    print(f"  reaching     median endpoint error {metrics['median_endpoint_error_cm']:.2f} cm at the end of the "
          f"hold, {100 * metrics['success_rate']:.1f}% < 1 cm; {sim.tuning_text(metrics)}\n  figure       {figure}")


# ---------------------------------------------------------------------- export-lfads
def _register_export(group) -> None:
    export = add_command(
        group, "export-lfads", help="write a dataset as an lfads-torch input file", run=_data_export_lfads,
        description="encod = held-in neurons, recon = all neurons with held-out last; train/valid/test blocks.",
        examples=["gnocchi data export-lfads demo.h5 --out demo_lfads.h5"])
    export.add_argument("file", help="a GNOCCHI dataset (.h5)")
    export.add_argument("--out", required=True, help="lfads-torch input file to write (.h5)")
    add_force(export)


def _data_export_lfads(args) -> None:
    from ..data import load_dataset
    from ..data.lfads_h5 import export_lfads

    refuse_inputs({"--out": args.out}, {"FILE": args.file})
    new_file(args.out, args.force)
    data = load_dataset(args.file)
    export_lfads(data, args.out)
    print(f"wrote {Path(args.out)}: lfads-torch input with {data.n_trials} trials, "
          f"{int((~data.heldout_neurons).sum())} encod / {data.n_neurons} recon neurons")
