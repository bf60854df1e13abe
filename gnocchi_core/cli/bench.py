"""`gnocchi bench ...`: benchmarks that print figures (sampling latency and fidelity, generation
quality, training speed, co-bps). The work is in gnocchi_core.bench; this module only parses."""

from __future__ import annotations

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

    train = add_command(
        group, "train", help="training speed (seconds per epoch) of a model", run=_bench_train,
        description="LFADS at lfads-torch's mc_maze_small sizes on MC_Maze_Small (75 train trials, 140 bins, "
                    "batch 64): median seconds per epoch, validation and checkpoints included.",
        examples=["gnocchi bench train lfads", "gnocchi bench train lfads --epochs 5 --threads 2",
                  "gnocchi bench train lfads --device cuda"])
    train.add_argument("model", choices=("lfads",), help="the model to time")
    train.add_argument("--data", help=f"NLB tensor file or GNOCCHI dataset (default: {MAZE})")
    train.add_argument("--epochs", type=int, default=25, help="timed epochs (default 25, after 5 warm-up)")
    train.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    add_device(train, "cpu")

    cobps = add_command(
        group, "cobps", help="co-bps of LFADS (default config) and of the NLB smoothing baseline", run=_bench_cobps,
        description="Train LFADS with its defaults and score held-out neurons' bits per spike (nlb_tools' "
                    "formula); NLB tensor files: train trials → eval trials, as NLB's 'val' phase.",
        examples=[f"gnocchi bench cobps --data {MAZE}",
                  f"gnocchi bench cobps --data {MAZE} --epochs 100 --out models/lfads_maze"])
    cobps.add_argument("--data", required=True, help="NLB tensor file (e.g. mc_maze_small_full.h5) or GNOCCHI dataset")
    cobps.add_argument("--epochs", type=int, help="maximum LFADS epochs (default: the config's)")
    cobps.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    cobps.add_argument("--out", help="keep the trained model in this folder")
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
    from ..bench import bench_cobps

    if args.out:
        refuse_inputs({"--out": args.out}, {"--data": args.data})
        new_folder(args.out)
    bench_cobps(args.data, epochs=args.epochs, seed=args.seed, out_dir=args.out, device=args.device)
