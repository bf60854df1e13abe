"""`gnocchi bench ...`: benchmarks that print figures (sampling latency and fidelity, generation
quality, training speed, co-bps). The work is in gnocchi_core.bench; this module only parses."""

from __future__ import annotations

import os

from .common import add_command, add_device, add_group, new_folder, refuse_inputs

MODEL = "assets/models/gnocchi"
DATA = "assets/motornet_reach/motornet_reach.h5"
MAZE = "../shared/data/mc_maze_small/mc_maze_small_full.h5"


def register(commands) -> None:
    """Add the `bench` group and its benchmarks to the top-level subparsers."""
    group = add_group(
        commands, "bench", help="benchmarks that print figures",
        description="Benchmarks that print figures: sampling latency and few-step fidelity of GNOCCHI, "
                    "generation quality, LFADS training speed, and LFADS co-bps against the NLB smoothing baseline.",
        examples=[f"gnocchi bench sample --model {MODEL} --data {DATA}",
                  f"gnocchi bench quality --model {MODEL} --data {DATA} --steps 10",
                  "gnocchi bench train lfads --epochs 5",
                  f"gnocchi bench cobps --data {MAZE}"],
        title="benchmarks", metavar="BENCHMARK")

    sample = add_command(
        group, "sample", help="sampling latency and few-step fidelity of a trained GNOCCHI model", run=_bench_sample,
        description="Latency p50/p95 for 1, 8 and 32 trials at several DDIM step counts, and the fidelity of "
                    "few-step DDIM to the full ancestral (DDPM) chain: per-neuron R² of conditional means "
                    "for the same 32 codes, beside two DDPM runs' R² (the noise floor).",
        examples=[f"gnocchi bench sample --model {MODEL} --data {DATA}",
                  f"gnocchi bench sample --model {MODEL} --steps 5 10 --batch 1 8 --repeats 5"])
    sample.add_argument("--model", required=True, help="trained model folder")
    sample.add_argument("--data", help="dataset whose test trials give the codes (default: prior samples)")
    sample.add_argument("--steps", type=int, nargs="+", default=[10, 25, 50, 1000],
                        help="DDIM step counts (default 10 25 50 1000)")
    sample.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32], help="trials per call (default 1 8 32)")
    sample.add_argument("--repeats", type=int, default=20, help="timed calls per setting (default 20)")
    sample.add_argument("--fidelity-samples", type=int, default=8,
                        help="draws per code in each conditional mean of the fidelity check (default 8)")
    add_device(sample)

    quality = add_command(
        group, "quality", help="code SNR for target x/y and R² of generated vs true rates", run=_bench_quality,
        description="Behaviour axes from the training codes; SNR and R² on the held-in test trials.",
        examples=[f"gnocchi bench quality --model {MODEL} --data {DATA}",
                  f"gnocchi bench quality --model {MODEL} --data {DATA} --steps 25"])
    quality.add_argument("--model", required=True, help="trained model folder")
    quality.add_argument("--data", required=True, help="the dataset it was trained on (.h5)")
    quality.add_argument("--steps", type=int, help="DDIM steps (default: the model's)")
    add_device(quality)

    sources = (f"NLB tensors ({MAZE}; where it is missing, the error message gives the one-line recipe that "
               "makes it with nlb_tools), the DANDI NWB train session (sub-Jenkins_ses-small_desc-train_behavior+"
               "ecephys.nwb, binned as nlb_tools does) or a GNOCCHI dataset with train/valid/test splits")
    protocol = ("Early stopping and checkpoint selection use a valid split of the train trials only (20%%, "
                "stratified, seeded); the eval trials are scored once, at the end.")
    train = add_command(
        group, "train", help="training speed (seconds per epoch) of a model", run=_bench_train,
        description="LFADS at lfads-torch's mc_maze_small sizes (batch 64) on the co-bps split of MC_Maze_Small "
                    "(60 train, 15 valid trials × 140 bins): median seconds per epoch after 5 warm-up epochs, "
                    "validation and checkpoints included. " + protocol,
        examples=["gnocchi bench train lfads", "gnocchi bench train lfads --epochs 5 --threads 2",
                  "gnocchi bench train lfads --device cuda"])
    train.add_argument("model", choices=("lfads",), help="the model to time")
    train.add_argument("--data", help=f"default {MAZE}; also: {sources}")
    train.add_argument("--epochs", type=int, default=25, help="timed epochs (default 25, after 5 warm-up)")
    train.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    add_device(train, "cpu")

    cobps = add_command(
        group, "cobps", help="co-bps of LFADS and of the NLB smoothing baseline on held-out neurons",
        run=_bench_cobps,
        description="Train LFADS (defaults, or --config overrides) and score the test trials' held-out neurons' "
                    "bits per spike (nlb_tools' formula), beside NLB's smoothing baseline. " + protocol +
                    " With several --seeds: each seed's co-bps, then mean ± sd.",
        examples=[f"gnocchi bench cobps --data {MAZE}",
                  f"gnocchi bench cobps --data {MAZE} --seeds 0 1 2",
                  f"gnocchi bench cobps --data {MAZE} --config adam.json   "
                  '# adam.json: {"train": {"warmup_steps": 0, "min_lr_fraction": 1.0, "ema_decay": 0.0}}',
                  "gnocchi bench cobps --data sub-Jenkins_ses-small_desc-train_behavior+ecephys.nwb"])
    cobps.add_argument("--data", required=True, help=sources)
    cobps.add_argument("--epochs", type=int, help="maximum LFADS epochs (default: the config's)")
    cobps.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="SEED",
                       help="training seeds, one model each (default 0)")
    cobps.add_argument("--config", help="JSON file of LfadsConfig fields to override (as `train lfads --config`)")
    cobps.add_argument("--out", help="keep the trained model(s) in this folder (one subfolder per seed)")
    add_device(cobps, "cpu")


def _bench_sample(args) -> None:
    from ..bench import bench_sampling

    bench_sampling(args.model, data_path=args.data, steps=args.steps, batches=args.batch,
                   repeats=args.repeats, device=args.device, fidelity_samples=args.fidelity_samples)


def _bench_quality(args) -> None:
    from ..bench import bench_quality

    bench_quality(args.model, args.data, steps=args.steps, device=args.device)


def _bench_train(args) -> None:
    from ..bench import bench_train_lfads

    bench_train_lfads(args.data, epochs=args.epochs, threads=args.threads, device=args.device)


def _bench_cobps(args) -> None:
    import numpy as np

    from ..bench import bench_cobps
    from ..models.lfads import LfadsConfig
    from .common import config_overrides

    inputs = {"--data": args.data, **({"--config": args.config} if args.config else {})}
    if args.out:
        refuse_inputs({"--out": args.out}, inputs)
        new_folder(args.out)
    overrides = config_overrides(args)
    LfadsConfig.from_dict(overrides, path=args.config)  # a bad --config fails before any training
    runs = []
    for seed in args.seeds:
        out = None if not args.out else os.path.join(args.out, f"seed{seed}" if len(args.seeds) > 1 else "")
        runs.append(bench_cobps(args.data, epochs=args.epochs, seed=seed, config=overrides or None, out_dir=out,
                                device=args.device))
    if len(runs) > 1:
        values = np.array([r["lfads"] for r in runs])
        print(f"LFADS: co-bps {values.mean():.4f} ± {values.std(ddof=1):.4f} (mean ± sd over seeds "
              f"{' '.join(map(str, args.seeds))}: {', '.join(f'{v:.4f}' for v in values)}); smoothing baseline "
              f"{runs[0]['smoothing']:.4f} (deterministic)")
