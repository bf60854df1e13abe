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

    simulate = data_commands.add_parser(
        "simulate", help="simulate reaching with a GRU-controlled MotorNet arm (needs the [simulate] extra)",
        description="A GRU policy drives a 6-muscle MotorNet arm from varied starts to an n×n target grid; "
                    "its units are the neurons (Poisson spikes, ground-truth rates). Trains the policy "
                    "(about 17 min on one core) unless --policy names a saved one; writes a figure beside --out.")
    simulate.add_argument("--out", required=True, help="dataset file to write (.h5); the figure goes beside it (.png)")
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
    simulate.set_defaults(run=_data_simulate)

    export = data_commands.add_parser(
        "export-lfads", help="write a dataset as an lfads-torch input file",
        description="encod = held-in neurons, recon = all neurons with held-out last; train/valid/test blocks.")
    export.add_argument("file", help="a GNOCCHI dataset (.h5)")
    export.add_argument("--out", required=True, help="lfads-torch input file to write (.h5)")
    export.set_defaults(run=_data_export_lfads)

    train = commands.add_parser("train", help="train a model on a dataset",
                                description="Train a model; checkpoints go to --out and --resume continues a "
                                            "killed run exactly where it stopped.")
    train_models = train.add_subparsers(title="models", metavar="MODEL")
    train.set_defaults(run=lambda args: train.print_help())
    gnocchi = train_models.add_parser("gnocchi", help="the code-conditioned diffusion model",
                                      description="Train GNOCCHI on the 'train' trials, validating on 'valid'.")
    gnocchi.add_argument("--data", required=True, help="a GNOCCHI dataset (.h5)")
    gnocchi.add_argument("--out", required=True, help="model folder to write")
    gnocchi.add_argument("--epochs", type=int, help="maximum epochs (default 400; early stopping may end sooner)")
    gnocchi.add_argument("--seed", type=int, help="random seed (default 0)")
    gnocchi.add_argument("--config", help="JSON file of GnocchiConfig fields to override")
    gnocchi.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    gnocchi.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    gnocchi.set_defaults(run=_train_gnocchi)
    lfads = train_models.add_parser(
        "lfads", help="the LFADS baseline (lfads-torch's architecture)",
        description="Train LFADS on the 'train' trials, validating on 'valid'; encoders read the held-in neurons, "
                    "the readout reconstructs all. Also writes OUT/lfads_output_{data name}.h5 with lfads-torch's "
                    "output keys. --data may be a GNOCCHI dataset or an lfads-torch input file.")
    lfads.add_argument("--data", required=True, help="a GNOCCHI dataset or an lfads-torch input file (.h5)")
    lfads.add_argument("--out", required=True, help="model folder to write")
    lfads.add_argument("--epochs", type=int, help="maximum epochs (default 800; early stopping may end sooner)")
    lfads.add_argument("--seed", type=int, help="random seed (default 0)")
    lfads.add_argument("--config", help="JSON file of LfadsConfig fields to override")
    lfads.add_argument("--bin-ms", type=float, help="bin width in ms, for lfads-torch files gnocchi did not write")
    lfads.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    lfads.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    lfads.set_defaults(run=_train_lfads)

    bench = commands.add_parser("bench", help="benchmarks that print figures")
    bench_commands = bench.add_subparsers(title="benchmarks", metavar="BENCHMARK")
    bench.set_defaults(run=lambda args: bench.print_help())
    sample = bench_commands.add_parser(
        "sample", help="sampling latency and few-step fidelity of a trained GNOCCHI model",
        description="Latency p50/p95 for 1, 8 and 32 trials at several DDIM step counts, and the fidelity of "
                    "few-step DDIM to the full ancestral (DDPM) chain: per-neuron R² of conditional means "
                    "for the same 32 codes, beside two DDPM runs' R² (the noise floor).")
    sample.add_argument("--model", required=True, help="trained model folder")
    sample.add_argument("--data", help="dataset whose test trials give the codes (default: prior samples)")
    sample.add_argument("--steps", type=int, nargs="+", default=[10, 25, 50, 1000], help="DDIM step counts")
    sample.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32], help="trials per call")
    sample.add_argument("--repeats", type=int, default=20, help="timed calls per setting (default 20)")
    sample.add_argument("--fidelity-samples", type=int, default=8,
                        help="draws per code in each conditional mean of the fidelity check (default 8)")
    sample.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    sample.set_defaults(run=_bench_sample)
    quality = bench_commands.add_parser(
        "quality", help="code SNR for target x/y and R² of generated vs true rates",
        description="Behaviour axes from the training codes; SNR and R² on the held-in test trials.")
    quality.add_argument("--model", required=True, help="trained model folder")
    quality.add_argument("--data", required=True, help="the dataset it was trained on (.h5)")
    quality.add_argument("--steps", type=int, help="DDIM steps (default: the model's)")
    quality.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    quality.set_defaults(run=_bench_quality)
    bench_train = bench_commands.add_parser(
        "train", help="training speed (seconds per epoch) of a model",
        description="LFADS at lfads-torch's mc_maze_small sizes on MC_Maze_Small (75 train trials, 140 bins, "
                    "batch 64): median seconds per epoch, validation and checkpoints included.")
    bench_train.add_argument("model", choices=("lfads",), help="the model to time")
    bench_train.add_argument("--data", help="NLB tensor file or GNOCCHI dataset "
                             "(default: ../shared/data/mc_maze_small/mc_maze_small_full.h5)")
    bench_train.add_argument("--epochs", type=int, default=25, help="timed epochs (default 25, after 5 warm-up)")
    bench_train.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    bench_train.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    bench_train.set_defaults(run=_bench_train)
    cobps = bench_commands.add_parser(
        "cobps", help="co-bps of LFADS (default config) and of the NLB smoothing baseline",
        description="Train LFADS with its defaults and score held-out neurons' bits per spike (nlb_tools' "
                    "formula); NLB tensor files: train trials → eval trials, as NLB's 'val' phase.")
    cobps.add_argument("--data", required=True, help="NLB tensor file (e.g. mc_maze_small_full.h5) or GNOCCHI dataset")
    cobps.add_argument("--epochs", type=int, help="maximum LFADS epochs (default: the config's)")
    cobps.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    cobps.add_argument("--out", help="keep the trained model in this folder")
    cobps.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    cobps.set_defaults(run=_bench_cobps)

    evaluate = commands.add_parser(
        "evaluate", help="the paper's metrics and figures for one or more trained models on a dataset",
        description="Code SNR, generated-vs-truth R², latent navigation (slope, unintended movement), axis "
                    "orthogonality, held-out-target error and velocity R², side by side; writes report.json, "
                    "report.md and PNG figures to --out.")
    evaluate.add_argument("--data", required=True, help="the dataset the models were trained on (.h5)")
    evaluate.add_argument("--model", required=True, action="append", help="model folder (repeat for several)")
    evaluate.add_argument("--name", action="append", help="display name per --model (default: folder names)")
    evaluate.add_argument("--out", required=True, help="report folder to write")
    evaluate.add_argument("--samples", type=int, default=8,
                          help="diffusion samples averaged into each conditional mean (default 8)")
    evaluate.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    evaluate.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    evaluate.set_defaults(run=_evaluate)

    generate = commands.add_parser(
        "generate", help="generate trials from codes or along a behaviour axis and save them as a dataset",
        description="Writes generated trials (Poisson spikes, their rates, decoded kinematics, codes) as a "
                    "GNOCCHI dataset, and with --lfads also as an lfads-torch input file, e.g. to augment a "
                    "decoder's training set.")
    generate.add_argument("--model", required=True, help="trained model folder")
    source = generate.add_mutually_exclusive_group(required=True)
    source.add_argument("--codes", help=".npy file of codes (trials, code_dim)")
    source.add_argument("--navigate", metavar="AXIS", help="walk along a behaviour axis: start_x, start_y, "
                        "target_x or target_y (needs --data)")
    source.add_argument("--prior", type=int, metavar="N", help="N codes drawn from the model's code mixture")
    generate.add_argument("--data", help="the dataset the model was trained on (for --navigate, and to fit a "
                          "decoder when the model folder has none)")
    generate.add_argument("--steps", type=int, default=9, help="--navigate: steps across the grid's span (default 9)")
    generate.add_argument("--references", type=int, default=1, help="--navigate: reference trials (default 1)")
    generate.add_argument("--seed", type=int, default=0, help="noise and spike seed (default 0)")
    generate.add_argument("--out", required=True, help="dataset file to write (.h5)")
    generate.add_argument("--lfads", help="also write an lfads-torch input file here")
    generate.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    generate.set_defaults(run=_generate)

    assets = commands.add_parser(
        "build-assets", help="simulate the default dataset, train every seed of the default models, write the reports",
        description="Writes into --out: motornet_reach/ (the MotorNet dataset, simulated from the shipped policy), "
                    "models/{gnocchi,lfads,lfads_ic}/ (seed 0) and models/seeds/ (the other seeds), models/report/ "
                    "(every seed on the test trials) and, when MC_Maze_Small is found, models/maze/ and "
                    "models/report_maze/. Each model trains in its own process with --threads torch threads, so "
                    "weights are bit-identical on the same machine. A killed build resumes; finished parts are "
                    "kept. `--out assets` refreshes the shipped assets.")
    assets.add_argument("--out", default="gnocchi-assets",
                        help="folder to write (default ./gnocchi-assets; pass 'assets' to refresh the shipped ones)")
    assets.add_argument("--jobs", type=int, default=2, help="models trained at once (default 2)")
    assets.add_argument("--threads", type=int, default=1, help="torch threads per model (default 1)")
    assets.add_argument("--maze", default=None,
                        help="MC_Maze_Small NLB tensor file (default: ../shared/data/mc_maze_small/"
                             "mc_maze_small_full.h5 beside the repository, when present)")
    assets.add_argument("--no-maze", action="store_true", help="skip the MC_Maze_Small report")
    assets.add_argument("--device", default="cpu", help="cpu (default), cuda[:N] or auto")
    assets.set_defaults(run=_build_assets)
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


def _data_simulate(args) -> None:
    import dataclasses

    from .data import motornet_sim as sim

    config = sim.MotorNetSimConfig(
        grid=args.grid, trials_per_condition=args.trials_per_condition, n_neurons=args.neurons,
        n_heldout_neurons=args.heldout_neurons, seed=args.seed,
        heldout_targets=tuple(args.held_out) if args.held_out is not None else None,
        **({"split_fractions": tuple(args.split)} if args.split else {}))
    policy_path = Path(args.policy) if args.policy else Path(args.out).parent / "policy.pt"
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
    data.provenance.command = _command_line()
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


def _data_export_lfads(args) -> None:
    from .data import load_dataset
    from .data.lfads_h5 import export_lfads

    data = load_dataset(args.file)
    export_lfads(data, args.out)
    print(f"wrote {Path(args.out)}: lfads-torch input with {data.n_trials} trials, "
          f"{int((~data.heldout_neurons).sum())} encod / {data.n_neurons} recon neurons")


def _train_gnocchi(args) -> None:
    from .data import load_dataset
    from .models.gnocchi import GnocchiConfig, GnocchiModel
    from .models.training import resolve_device

    data = load_dataset(args.data)
    overrides = _config_overrides(args)
    config = GnocchiConfig.from_dict(overrides)
    device = resolve_device(args.device)
    print(f"training GNOCCHI on {args.data} ({data.n_trials} trials, {data.n_bins} bins, "
          f"{data.n_neurons} neurons) on {device}")
    model = GnocchiModel(config, device=args.device).fit(data, args.out, resume=args.resume)
    best = min(model.history, key=lambda r: r["valid_loss"])
    print(f"done: {len(model.history)} epochs, best valid loss {best['valid_loss']:.4f} at epoch "
          f"{best['epoch']}; model in {args.out}")


def _config_overrides(args) -> dict:
    """Config fields from --config (JSON), with --epochs and --seed applied on top."""
    import json

    overrides = json.loads(Path(args.config).read_text()) if args.config else {}
    train_overrides = overrides.setdefault("train", {})
    if args.epochs is not None:
        train_overrides["epochs"] = args.epochs
    if args.seed is not None:
        train_overrides["seed"] = args.seed
    return overrides


def _train_lfads(args) -> None:
    from .data import load_dataset
    from .data.lfads_h5 import import_lfads
    from .models.lfads import LfadsConfig, LfadsModel, write_lfads_output
    from .models.training import resolve_device

    if not os.path.isfile(args.data):
        raise FileNotFoundError(f"{args.data}: file not found")
    with h5py.File(args.data, "r") if h5py.is_hdf5(args.data) else open(os.devnull) as f:
        lfads_input = isinstance(f, h5py.File) and "train_encod_data" in f
    if lfads_input:
        data = import_lfads(args.data, bin_ms=args.bin_ms)
    else:
        data = load_dataset(args.data)
    overrides = _config_overrides(args)
    config = LfadsConfig.from_dict(overrides)
    device = resolve_device(args.device)
    print(f"training LFADS on {args.data} ({data.n_trials} trials, {data.n_bins} bins, {data.n_neurons} neurons, "
          f"{int(data.heldout_neurons.sum())} held out) on {device}")
    model = LfadsModel(config, device=args.device).fit(data, args.out, resume=args.resume)
    best = min(model.history, key=lambda r: r["valid_loss"])
    heldout = f", held-out neurons {best['valid_heldout_bps']:.4f} bits/spike" if "valid_heldout_bps" in best else ""
    output = Path(args.out) / f"lfads_output_{Path(args.data).stem}.h5"
    write_lfads_output(model, data, output)
    print(f"done: {len(model.history)} epochs, best valid loss {best['valid_loss']:.4f} at epoch {best['epoch']}"
          f"{heldout}; model in {args.out}; outputs in {output}")


def _bench_train(args) -> None:
    from .bench import bench_train_lfads

    bench_train_lfads(args.data, epochs=args.epochs, threads=args.threads, device=args.device)


def _bench_cobps(args) -> None:
    from .bench import bench_cobps

    bench_cobps(args.data, epochs=args.epochs, seed=args.seed, out_dir=args.out, device=args.device)


def _bench_sample(args) -> None:
    from .bench import bench_sampling

    bench_sampling(args.model, data_path=args.data, steps=args.steps, batches=args.batch,
                   repeats=args.repeats, device=args.device, fidelity_samples=args.fidelity_samples)


def _bench_quality(args) -> None:
    from .bench import bench_quality

    bench_quality(args.model, args.data, steps=args.steps, device=args.device)



def _evaluate(args) -> None:
    from .workflows import evaluate_folders

    report = evaluate_folders(args.data, args.model, args.out, names=args.name, samples=args.samples,
                              seed=args.seed, device=args.device)
    _print_report(report)
    print(f"report: {Path(args.out) / 'report.md'}")


def _print_report(report: dict) -> None:
    from .analysis.report import ROWS, format_entry

    names = list(report["models"])
    keys = [key for key, _, _ in ROWS if any(key in report["models"][n] for n in names)]
    print(f"{'metric':<38}" + "".join(f"{n:>24}" for n in names))
    for key in keys:
        cells = [report["models"][n].get(key) for n in names]
        print(f"{key:<38}" + "".join(f"{'–' if c is None else _short(format_entry(c)):>24}" for c in cells))


def _short(text: str) -> str:
    return text.split(" (")[0] if not text.startswith("n/a") else "n/a"


def _generate(args) -> None:
    from .data import load_dataset
    from .data.lfads_h5 import export_lfads
    from .models import load_model
    from .workflows import generated_trials, load_decoder, navigation_plan

    model = load_model(args.model, device=args.device)
    data = load_dataset(args.data) if args.data else None
    extra = None
    if args.navigate:
        if data is None:
            raise GnocchiError("--navigate needs --data (the behaviour axes are fitted on its training trials)")
        codes, extra = navigation_plan(model, data, args.navigate, steps=args.steps, references=args.references)
    elif args.prior:
        codes = model.sample_prior(args.prior, seed=args.seed, kind="mixture")
    else:
        codes = np.load(args.codes, allow_pickle=False)
    decoder = load_decoder(args.model, data)
    trials = generated_trials(model, codes, seed=args.seed, decoder=decoder, extra=extra,
                              source=str(args.data or model.data_info.get("source", "")))
    trials.save(args.out)
    print(f"wrote {args.out}: {trials.n_trials} generated trials × {trials.n_bins} bins × {trials.n_neurons} neurons")
    if args.lfads:
        export_lfads(trials, args.lfads)
        print(f"wrote {args.lfads}: lfads-torch input file")


def _build_assets(args) -> None:
    from .assets import build_assets

    result = build_assets(args.out, jobs=args.jobs, threads=args.threads, device=args.device,
                          maze="" if args.no_maze else args.maze, progress=True)
    _print_report(result["report"])
    print("timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in result["timings"].items()))


if __name__ == "__main__":
    sys.exit(main())
