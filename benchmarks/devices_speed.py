"""Seconds per training epoch of one model: 1 process (2 torch threads, or 1) against 2 gloo processes of 1
thread each (what `gnocchi train ... --devices 2 --device cpu` runs), for LFADS and GNOCCHI on tiny and
medium synthetic data (tiny: 300 trials x 24 neurons, small nets; medium: 500 trials x 100 neurons, the
default configs).

    python benchmarks/devices_speed.py [--epochs 12] [--rounds 3] [--json OUT.json]

The variants run interleaved, ``--rounds`` times, so that load from elsewhere hits each alike; the first
epoch of every run (warm-up) is dropped. Prints each run, then the median, interquartile range and range
of the pooled epochs per variant. Run it on an otherwise idle machine."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gnocchi_core.data.synthetic import SynthConfig, synthesize
from gnocchi_core.models import distributed
from gnocchi_core.models.gnocchi import GnocchiConfig, GnocchiModel
from gnocchi_core.models.lfads import LfadsConfig, LfadsModel
from gnocchi_core.models.training import TrainConfig

DATA = {"tiny": SynthConfig(n_trials=300, n_neurons=24, n_heldout_neurons=4, grid=3, seed=1),
        "medium": SynthConfig(seed=0)}  # 500 trials, 100 neurons, 70 bins


def configs(epochs: int):
    lfads_tiny = LfadsConfig(ic_enc_dim=32, ci_enc_dim=16, con_dim=16, co_dim=2, ic_dim=16, gen_dim=32, fac_dim=8,
                             posterior_samples=2, prior_components=3,
                             train=TrainConfig(epochs=epochs, batch_size=32, lr=1e-2, weight_decay=0.0,
                                               warmup_steps=20, grad_clip=200.0, patience=1000))
    lfads_default = LfadsConfig(posterior_samples=2)
    lfads_default = replace(lfads_default, train=replace(lfads_default.train, epochs=epochs, patience=1000))
    gnocchi_tiny = GnocchiConfig(code_dim=4, channels=16, cond_dim=32, encoder_channels=16, prior_components=2,
                                 latent_dim=4, ae_channels=16, ae_epochs=1, diffusion_steps=100,
                                 train=TrainConfig(epochs=epochs, batch_size=32, patience=1000))
    gnocchi_default = GnocchiConfig(ae_epochs=1)
    gnocchi_default = replace(gnocchi_default, train=replace(gnocchi_default.train, epochs=epochs, patience=1000))
    return {("lfads", "tiny"): lfads_tiny, ("lfads", "medium"): lfads_default,
            ("gnocchi", "tiny"): gnocchi_tiny, ("gnocchi", "medium"): gnocchi_default}


def timed_fit(kind: str, size: str, epochs: int, result: str, out: str) -> None:
    config = configs(epochs)[(kind, size)]
    data = synthesize(DATA[size])
    stamps = []
    model_class = LfadsModel if kind == "lfads" else GnocchiModel
    model_class(config, device="cpu").fit(data, out, progress=False,  # every rank: the same folder
                                          on_epoch_end=lambda record: stamps.append(time.perf_counter()))
    if distributed.is_main():
        stamps = stamps[-epochs:]  # GNOCCHI: the diffusion stage's epochs (its autoencoder epoch comes first)
        Path(result).write_text(json.dumps({"epoch_s": [b - a for a, b in zip(stamps, stamps[1:])],
                                            "threads": torch.get_num_threads()}))


def one_process(kind, size, epochs, result, out, threads):
    torch.set_num_threads(threads)
    timed_fit(kind, size, epochs, result, out)


VARIANTS = (("1 process, 2 threads", 1, 2), ("1 process, 1 thread", 1, 1), ("2 processes, 1 thread each", 2, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=12, help="epochs per run (the first is dropped)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write every epoch's seconds to this file")
    args = parser.parse_args()
    os.environ.pop("OMP_NUM_THREADS", None)  # each of 2 ranks then takes CPUs // 2 threads
    pooled: dict[str, list[float]] = {}
    work = Path(tempfile.mkdtemp(prefix="devices_speed_"))
    try:
        for round_ in range(args.rounds):  # interleaved, so that load from elsewhere hits every variant alike
            for kind, size in configs(args.epochs):
                for name, processes, threads in VARIANTS:
                    run = work / f"{round_}_{kind}_{size}_{processes}_{threads}"
                    result, out = str(run) + ".json", str(run)
                    if processes == 1:
                        one_process(kind, size, args.epochs, result, out, threads)
                    else:
                        distributed.launch(timed_fit, (kind, size, args.epochs, result, out), world_size=2,
                                           device="cpu")
                    times = json.loads(Path(result).read_text())["epoch_s"]
                    pooled.setdefault(f"{kind} {size}: {name}", []).extend(times)
                    print(f"round {round_}: {kind} {size} {name}: {statistics.median(times):.2f} s/epoch", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    for key, times in pooled.items():
        q = statistics.quantiles(times, n=4)
        print(f"{key:45s} median {statistics.median(times):.2f} s/epoch, IQR {q[0]:.2f}-{q[2]:.2f}, "
              f"range {min(times):.2f}-{max(times):.2f} (n={len(times)})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(pooled, indent=1))


if __name__ == "__main__":
    main()
