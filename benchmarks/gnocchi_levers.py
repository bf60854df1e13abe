"""Measure a GNOCCHI configuration on the *tuning* dataset, never on the shipped report's trials.

The tuning dataset is simulated from the shipped policy with another seed (7): the same task and
neurons' kind, but other trials and other noise, so no setting chosen with this script is chosen
on the trials `assets/models/report` scores. Each run trains one configuration per seed, evaluates
it with the report's protocol (`evaluate_model`, test split of the tuning dataset) at each guidance
scale asked for, and appends one JSON line per (seed, guidance) to ``OUT/results.jsonl``.

    python benchmarks/gnocchi_levers.py --name latent --config '{"space": "latent"}' --seeds 0 1
    python benchmarks/gnocchi_levers.py --table          # mean over seeds per (name, guidance)

A finished model folder with the same config is reused, so rerunning a row only re-evaluates it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "gnocchi_levers"
TUNING_SEED = 7
#: (column, metric) shown by --table
COLUMNS = [("nav x", "nav_slope_target_x"), ("nav y", "nav_slope_target_y"),
           ("leak x", "leakage_target_x"), ("leak y", "leakage_target_y"),
           ("end cm", "decoded_target_error_cm"), ("R²", "r2_generated"), ("R² 1", "r2_generated_single"),
           ("SNR x", "code_snr_target_x"), ("SNR y", "code_snr_target_y"),
           ("held-out", "heldout_target_error_frac_grid"), ("AE R²", "r2_autoencoder"),
           ("AE end cm", "decoded_target_error_cm_autoencoder"), ("train s", "train_seconds")]


def tuning_dataset(out: Path) -> Path:
    """The tuning dataset (simulated once from the shipped policy with seed 7, ground truth stored)."""
    path = out / "tuning.h5"
    if not path.is_file():
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(["gnocchi", "data", "simulate", "--out", str(path), "--trials-per-condition", "60",
                        "--policy", str(ROOT / "assets" / "motornet_reach" / "policy.pt"),
                        "--seed", str(TUNING_SEED)], check=True)
    return path


def run(name: str, overrides: dict, seeds: list[int], guidances: list[float], out: Path, data_path: Path,
        threads: int, samples: int) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    import gnocchi_core
    from gnocchi_core.analysis.decoding import BehaviourDecoder
    from gnocchi_core.analysis.evaluation import decoded_reach, evaluate_model
    from gnocchi_core.analysis.metrics import condition_average, mean_r2
    from gnocchi_core.models.gnocchi import GnocchiConfig, GnocchiModel

    data = gnocchi_core.load_dataset(data_path)
    decoder = BehaviourDecoder.fit(data.subset(trials=data.heldin_conditions("train")))
    for seed in seeds:
        params = json.loads(json.dumps(overrides))
        params.setdefault("train", {})["seed"] = seed
        config = GnocchiConfig.from_dict(params)
        folder = out / "models" / f"{name}-seed{seed}"
        saved = folder / "config.json"
        started = time.perf_counter()
        if saved.is_file() and json.loads(saved.read_text())["config"] == json.loads(json.dumps(
                GnocchiModel(config)._config_dict())):
            model, seconds = gnocchi_core.load_model(folder), json.loads(saved.read_text()).get("train_seconds")
        else:
            torch.manual_seed(seed)
            model = GnocchiModel(config, device="cpu").fit(data, folder, resume=(folder / "run.json").is_file(),
                                                           progress=True)
            seconds = time.perf_counter() - started
            record = json.loads(saved.read_text())
            record["train_seconds"] = seconds
            saved.write_text(json.dumps(record, indent=1))
        extra = {}
        if model.autoencoder is not None:  # how well the autoencoder alone reproduces the test trials' rates
            test = data.heldin_conditions("test")
            with torch.no_grad():
                counts = torch.from_numpy(data.spikes[test].astype(np.float32)).transpose(1, 2)
                rates = model._to_rates(model.autoencoder.encode(counts)).transpose(1, 2).numpy()
            conditions = data.trial_info["condition_id"].to_numpy()[test]
            extra["r2_autoencoder"] = mean_r2(condition_average(data.rates[test], conditions)[0],
                                              condition_average(rates, conditions)[0])
            ends = decoded_reach(decoder, rates, data)[1][:, 2:]  # the endpoint error the autoencoder alone allows
            targets = data.trial_info[["target_x", "target_y"]].to_numpy()[test]
            extra["decoded_target_error_cm_autoencoder"] = float(np.linalg.norm(ends - targets, axis=1).mean())
        for guidance in guidances:
            model.config.guidance = guidance
            evaluation = evaluate_model(name, model, data, decoder, samples=samples, seed=0)
            row = {"name": name, "config": overrides, "resolved_config": model._config_dict(), "seed": seed,
                   "guidance": guidance,
                   "train_seconds": seconds, "metrics": {**evaluation.metrics, **extra},
                   "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:])}
            with open(out / "results.jsonl", "a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(json.dumps({k: row["metrics"].get(k) for _, k in COLUMNS[:-1]} | extra | {"guidance": guidance}))


def differences(resolved: dict, defaults: dict) -> dict:
    """The fields of ``resolved`` that differ from ``defaults`` (nested for ``train``), seed left out."""
    diff = {}
    for key, value in resolved.items():
        if isinstance(value, dict):
            inner = {k: v for k, v in value.items() if k != "seed" and defaults[key].get(k) != v}
            if inner:
                diff[key] = inner
        elif defaults.get(key) != (list(value) if isinstance(value, tuple) else value):
            diff[key] = value
    return diff


def commands(out: Path) -> str:
    """For each configuration, the command that reruns it with today's defaults."""
    import dataclasses

    from gnocchi_core.models.gnocchi import GnocchiConfig

    defaults = json.loads(json.dumps(dataclasses.asdict(GnocchiConfig())))
    lines, seen = [], {}
    for line in (out / "results.jsonl").read_text().splitlines():
        row = json.loads(line)
        seen.setdefault(row["name"], (row, []))[1].append(row["guidance"])
    for name, (row, guidances) in seen.items():
        config = json.dumps(differences(row["resolved_config"], defaults))
        w = " ".join(f"{g:g}" for g in sorted(set(guidances)))
        lines.append(f"python benchmarks/gnocchi_levers.py --name {name} --guidance {w} --config '{config}'")
    return "\n".join(lines)


def table(out: Path) -> str:
    import numpy as np

    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["name"], row["guidance"]), []).append(row)
    lines = ["| config | w | seeds | " + " | ".join(c for c, _ in COLUMNS) + " |",
             "|---|---|---|" + "---|" * len(COLUMNS)]
    for (name, guidance), members in groups.items():
        latest = {m["seed"]: m for m in members}  # a re-run replaces the earlier line of that seed
        cells = []
        for _, key in COLUMNS:
            values = [m["train_seconds"] if key == "train_seconds" else m["metrics"].get(key) for m in latest.values()]
            values = [v for v in values if v is not None]
            fmt = "{:.0f}" if key == "train_seconds" else "{:.3g}"
            cells.append(fmt.format(np.mean(values)) if values else "n/a")
        lines.append(f"| {name} | {guidance:g} | {len(latest)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="a short name for the configuration")
    parser.add_argument("--config", default="{}", help="GNOCCHI config overrides as JSON")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--table", action="store_true", help="print the results so far as a table")
    parser.add_argument("--commands", action="store_true",
                        help="print the command that reruns each configuration with today's defaults")
    args = parser.parse_args()
    if args.table or args.commands:
        print(table(args.out) if args.table else commands(args.out))
        return
    if not args.name:
        parser.error("--name is required")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    run(args.name, json.loads(args.config), args.seeds, args.guidance, args.out, tuning_dataset(args.out),
        args.threads, args.samples)


if __name__ == "__main__":
    main()
