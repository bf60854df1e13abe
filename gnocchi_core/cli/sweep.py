"""`gnocchi sweep gnocchi|lfads`: a hyper-parameter sweep on Ray Tune (an optional extra), on this machine
or on a Ray cluster. Ray is imported only when the command runs."""

from __future__ import annotations

from ..sweep.runner import METRICS
from .common import add_command, new_folder, refuse_inputs

SPACE_EXAMPLE = ('{"dropout_rate": {"uniform": [0.0, 0.6]}, "train": {"lr": {"loguniform": [1e-4, 1e-2]}}, '
                 '"kl_ic_scale": {"choice": [1e-5, 1e-4]}}')


def register(commands) -> None:
    """Add the `sweep` command to the top-level subparsers."""
    sweep = add_command(
        commands, "sweep", help="tune hyper-parameters: many trainings on Ray Tune, locally or on a cluster",
        run=_sweep,
        description=f"""Train --trials models with hyper-parameters drawn from --space, scheduled by ASHA
        (stops the worst trials early; the default for GNOCCHI) or population-based training (the worst
        trials continue from the best ones' weights with perturbed learning rate, dropout, coordinated
        dropout and KL/L2 weights, as AutoLFADS does; the default for LFADS). The objective is the
        validation score each model reports per epoch: held-out neurons' bits per spike on the valid
        trials for LFADS (its validation loss when no neuron is held out), the validation loss for GNOCCHI;
        --metric ranks by another validation value the model records (e.g. valid_rec, GNOCCHI's
        reconstruction loss).

        --space is a JSON object of config fields (as --config of `gnocchi train`); a value is fixed, or a
        search domain: {{"uniform": [lo, hi]}}, {{"loguniform": [lo, hi]}}, {{"choice": [a, b, ...]}},
        {{"randint": [lo, hi]}} (integers, both ends included). E.g. {SPACE_EXAMPLE}.

        Without --address a local Ray runtime starts in this process; with one the trials run on that
        Ray cluster (`ray start --head` on one machine, `ray start --address HEAD:6379` on the others;
        --out on a file system all of them mount). OUT holds one model folder per trial (trials/),
        results.csv, best/ (a copy of the best trial's model) and Ray's state (ray/); a killed sweep
        continues with the same command plus --resume. Needs the sweep extra: pip install -e ".[sweep]".""",
        examples=["gnocchi sweep lfads --data demo.h5 --space space.json --trials 8 --out sweeps/lfads_demo",
                  "gnocchi sweep gnocchi --data demo.h5 --space space.json --trials 16 --out sweeps/gnocchi_demo "
                  "--scheduler asha --epochs 200",
                  "gnocchi sweep lfads --data demo.h5 --space space.json --trials 8 --out sweeps/lfads_demo --resume",
                  "gnocchi sweep lfads --data demo.h5 --space space.json --trials 32 --out /shared/sweeps/lfads "
                  "--address head-node:6379 --gpus-per-trial 0.5 --cpus-per-trial 2"])
    sweep.add_argument("model", choices=("gnocchi", "lfads"), help="the model to tune")
    sweep.add_argument("--data", required=True, help="a GNOCCHI dataset or an lfads-torch input file (.h5)")
    sweep.add_argument("--space", required=True, help="JSON file: config fields, each a value or a search domain")
    sweep.add_argument("--trials", required=True, type=int, help="how many trials (models) to train")
    sweep.add_argument("--out", required=True, help="the sweep's folder to write")
    sweep.add_argument("--scheduler", choices=("asha", "pbt", "none"),
                       help="asha, pbt, or none (every trial trains to its epoch budget); default: pbt for lfads, "
                            "asha for gnocchi")
    sweep.add_argument("--epochs", type=int, help="each trial's maximum epochs (train.epochs; default: the "
                       "space's, else the model's)")
    sweep.add_argument("--seed", type=int, default=0, help="seed of the search's random draws (default 0); each "
                       "model's own seed is train.seed")
    sweep.add_argument("--metric", choices=sorted({m for kind in METRICS.values() for m in kind}),
                       help="what trials are ranked by, a validation value each model records per epoch: for lfads "
                            + ", ".join(METRICS["lfads"]) + "; for gnocchi " + ", ".join(METRICS["gnocchi"])
                            + " (default: valid_heldout_bps for lfads when neurons are held out, else valid_loss)")
    sweep.add_argument("--address", help="join the Ray cluster at ADDRESS (host:port, or 'auto') instead of "
                       "starting a local runtime")
    sweep.add_argument("--cpus-per-trial", type=float, default=1, metavar="C",
                       help="CPUs per trial (default 1); also each trial's torch threads")
    sweep.add_argument("--gpus-per-trial", type=float, default=0, metavar="G",
                       help="GPUs per trial (default 0; fractions share a GPU); a trial with one trains on CUDA")
    sweep.add_argument("--cpus", type=int, metavar="N", help="CPUs of the local runtime (default: all of this "
                       "machine's); not with --address")
    sweep.add_argument("--resume", action="store_true", help="continue the interrupted sweep in --out")


def _sweep(args) -> int:
    from ..errors import GnocchiError
    from ..sweep import require_ray, run_sweep

    refuse_inputs({"--out": args.out}, {"--data": args.data, "--space": args.space})
    new_folder(args.out)
    if args.cpus is not None and args.address:
        raise GnocchiError("--cpus sizes the local Ray runtime; a cluster joined with --address has its own")
    require_ray()
    result = run_sweep(args.model, args.data, args.space, args.trials, args.out, scheduler=args.scheduler,
                       address=args.address, cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                       resume=args.resume, epochs=args.epochs, seed=args.seed, metric=args.metric, num_cpus=args.cpus)
    return 0 if result.complete else 130
