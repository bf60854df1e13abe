"""How much faster does a sweep run with 2 trials at a time than with 1, on the same CPUs?

Makes a small synthetic dataset and a search space (LFADS or GNOCCHI, small models), then runs the
same 4-trial `gnocchi sweep` on a local Ray runtime of ``--cpus`` CPUs (default 2) two ways:
``--cpus-per-trial 2`` (one trial at a time, each with 2 torch threads) and ``--cpus-per-trial 1``
(two at a time, one thread each), ``--repeats`` times each, alternating. The scheduler is ``none``
(every trial trains its full budget) so both ways do the same work; the search's seed is fixed, so
they train the same 4 configurations. Times are the command's wall clock, Ray's start and stop
included: what a user waits for. The work folder is removed afterwards unless a sweep fails. Prints each run, the medians and the speed-up (median time with 1
trial at a time ÷ median with 2).

    python benchmarks/sweep_speedup.py [--model lfads|gnocchi] [--trials 4] [--epochs 20] [--repeats 3]
        [--cpus 2] [--json OUT.json]

Needs the sweep extra (pip install -e ".[sweep]"). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPACES = {
    "lfads": {"ic_enc_dim": 32, "ci_enc_dim": 16, "con_dim": 16, "co_dim": 2, "ic_dim": 16, "gen_dim": 32,
              "fac_dim": 8, "posterior_samples": 10, "prior_components": 3, "kl_increase_steps": 100,
              "l2_increase_steps": 100, "dropout_rate": {"uniform": [0.0, 0.3]}, "cd_rate": {"uniform": [0.1, 0.4]},
              "train": {"batch_size": 32, "warmup_steps": 20, "ema_decay": 0.95, "patience": 1000,
                        "lr": {"loguniform": [2e-3, 2e-2]}}},
    "gnocchi": {"code_dim": 4, "channels": 16, "cond_dim": 32, "encoder_channels": 16, "sample_steps": 5,
                "prior_components": 3, "latent_dim": 6, "ae_channels": 16, "ae_epochs": 10,
                "dropout": {"uniform": [0.0, 0.3]},
                "train": {"batch_size": 32, "warmup_steps": 20, "patience": 1000, "lr": {"loguniform": [1e-3, 1e-2]}}},
}


def sweep(model: str, data: Path, space: Path, out: Path, trials: int, epochs: int, cpus: int,
          cpus_per_trial: int) -> float:
    """Seconds one `gnocchi sweep` takes, start to exit."""
    command = [sys.executable, "-m", "gnocchi_core.cli", "sweep", model, "--data", str(data), "--space", str(space),
               "--trials", str(trials), "--out", str(out), "--epochs", str(epochs), "--scheduler", "none",
               "--cpus", str(cpus), "--cpus-per-trial", str(cpus_per_trial)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"sweep failed ({' '.join(command)}):\n{done.stdout}\n{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(SPACES), default="lfads")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray runtime (default 2)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    from gnocchi_core.data.synthetic import SynthConfig, synthesize
    from gnocchi_core.sweep import require_ray

    require_ray()
    work = Path(tempfile.mkdtemp(prefix="sweep_speedup_"))
    data = work / "data.h5"
    synthesize(SynthConfig(n_trials=200, n_neurons=30, n_heldout_neurons=6, grid=3, seed=1)).save(data)
    space = work / "space.json"
    space.write_text(json.dumps(SPACES[args.model]))
    ways = {1: args.cpus, 2: max(1, args.cpus // 2)}  # trials at a time → CPUs per trial
    times: dict[int, list[float]] = {1: [], 2: []}
    print(f"{args.trials}-trial {args.model} sweep, {args.epochs} epochs per trial, local Ray runtime of "
          f"{args.cpus} CPUs; in {work}")
    for repeat in range(args.repeats):
        for concurrent in ((1, 2) if repeat % 2 == 0 else (2, 1)):
            out = work / f"out_{concurrent}_{repeat}"
            seconds = sweep(args.model, data, space, out, args.trials, args.epochs, args.cpus, ways[concurrent])
            times[concurrent].append(seconds)
            load = os.getloadavg()[0]  # other work on the machine shows here: the figures mean little then
            print(f"  run {repeat + 1}: {concurrent} trial{'s' * (concurrent > 1)} at a time "
                  f"(--cpus-per-trial {ways[concurrent]}): {seconds:.1f} s (1-min load average after: {load:.1f})",
                  flush=True)
    medians = {k: statistics.median(v) for k, v in times.items()}
    speedup = medians[1] / medians[2]
    print(f"median: 1 at a time {medians[1]:.1f} s, 2 at a time {medians[2]:.1f} s; speed-up {speedup:.2f}×")
    shutil.rmtree(work, ignore_errors=True)  # kept only when a sweep fails (sys.exit above)
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "trials": args.trials, "epochs": args.epochs,
                                               "cpus": args.cpus, "seconds": times, "median": medians,
                                               "speedup": speedup}, indent=1))


if __name__ == "__main__":
    main()
