"""lfads-torch against our LFADS: same split, same scoring, one run on one machine.

    python benchmarks/lfads_torch/run.py --lfads-torch SOURCE [--data NLB_FILE] [--epochs N]
        [--seeds 0 ...] [--threads 2] [--out DIR] [--skip-ours] [--posterior-samples 50]

Run with the MAIN environment's python (gnocchi_core installed). lfads-torch runs in its own venv
(`setup_venv.py`, created on first use) as a subprocess; SOURCE is a checkout, a bare git directory
or ``git+https://github.com/arsedler9/lfads-torch``. Every figure printed comes from this run.

Protocol (see README.md): the split is `gnocchi_core.bench.load_heldout_split` (NLB train trials →
train / valid, 0.2, seeded; NLB eval trials → test). lfads-torch gets that split as its input file
(`export_lfads`), trains with its own ``configs/single.yaml`` + ``nlb_mc_maze_small`` model and
datamodule (early stopping and checkpointing on the valid trials), and its posterior-sampled test
rates are scored here with OUR `bits_per_spike` on the test trials' held-out neurons, as
`bench_cobps` scores ours. Seconds per epoch: median after the first 5 epochs, each epoch's wall
time including its validation and checkpointing, for both.

The functions above `main` are pure (no venv, no training) so they can be unit-tested.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mc_maze_small" / "mc_maze_small_full.h5"
DEFAULT_OUT = ROOT / "work" / "lfads_torch_bench"
WARMUP_EPOCHS = 5
#: lfads-torch's config for this data set (configs/model/…, configs/datamodule/…)
LT_CONFIG = "nlb_mc_maze_small"
#: lfads-torch's train loader drops the last incomplete batch (datamodules.py: drop_last=True)
LT_BATCH_SIZE = 64

#: lfads-torch's optimiser as its nlb_mc_maze_small config ships it: constant lr 4e-3 (lr_scheduler False,
#: no warm-up), Adam(W) with weight_decay 0, and the raw weights evaluated (no EMA).
LT_OPTIMISER = {"train": {"warmup_steps": 0, "min_lr_fraction": 1.0, "ema_decay": 0.0}}
#: ... plus its regularisation and stopping as shipped: dropout 0.02, KL and L2 scales 0 (so their ramps
#: do nothing), up to 1000 epochs (single.yaml), early-stopping patience 200 (single.yaml).
LT_REGULARISATION = {"dropout_rate": 0.02, "kl_ic_scale": 0.0, "kl_co_scale": 0.0, "l2_gen_scale": 0.0,
                     "l2_con_scale": 0.0, "train": {**LT_OPTIMISER["train"], "epochs": 1000, "patience": 200}}
#: our rows: (folder, name, LfadsConfig overrides)
OUR_ROWS = [
    ("defaults", "ours: defaults", {}),
    ("lt_optimiser", "ours: lfads-torch optimiser", LT_OPTIMISER),
    ("lt_optimiser_regularisation", "ours: lfads-torch optimiser + regularisation", LT_REGULARISATION),
]
LT_ROW = f"lfads-torch ({LT_CONFIG} config)"
SMOOTHING_ROW = "NLB smoothing baseline (60 ms, GLM)"


# ---------------------------------------------------------------------------------------------- pure parts
def split_of(data) -> np.ndarray:
    return data.trial_info["split"].to_numpy()


def recon_order(heldout: np.ndarray) -> np.ndarray:
    """The neuron order of lfads-torch's recon data as `export_lfads` writes it: held-in, then held-out."""
    heldout = np.asarray(heldout, bool)
    return np.r_[np.flatnonzero(~heldout), np.flatnonzero(heldout)]


def lfads_torch_batch_size(n_train: int, configured: int = LT_BATCH_SIZE) -> int:
    """lfads-torch's train loader has drop_last=True: with fewer train trials than its batch size (64)
    it would train on nothing. Then one batch of all of them, which is what ours does with batch 64."""
    return min(configured, n_train)


def check_export(path, data, model_yaml: dict | None = None) -> list[str]:
    """Check the exported file against what lfads_torch/datamodules.py reads and what its model config
    expects. Raises ValueError on a mismatch; returns what was checked (for the log)."""
    import h5py

    heldout = np.asarray(data.heldout_neurons, bool)
    n_in, n_all, n_bins = int((~heldout).sum()), int(heldout.size), int(data.n_bins)
    split = split_of(data)
    order = recon_order(heldout)
    notes = []
    with h5py.File(path, "r") as f:
        keys = set(f.keys())
        # datamodules.MANDATORY_KEYS, and test_encod_data (present → a test set is built and sampled)
        for key in ("train_encod_data", "train_recon_data", "valid_encod_data", "valid_recon_data",
                    "test_encod_data"):
            if key not in keys:
                raise ValueError(f"{path}: {key} missing (lfads_torch.datamodules needs it)")
        for s in ("train", "valid", "test"):
            inds = f[f"{s}_inds"][()]
            if not np.array_equal(inds, np.flatnonzero(split == s)):
                raise ValueError(f"{path}: {s}_inds is not the {s} trials of the split")
            encod, recon = f[f"{s}_encod_data"], f[f"{s}_recon_data"]
            if encod.shape != (len(inds), n_bins, n_in) or recon.shape != (len(inds), n_bins, n_all):
                raise ValueError(f"{path}: {s} shapes {encod.shape} / {recon.shape}, expected "
                                 f"({len(inds)}, {n_bins}, {n_in}) / ({len(inds)}, {n_bins}, {n_all})")
            if not np.array_equal(recon[()], data.spikes[inds][:, :, order]):
                raise ValueError(f"{path}: {s}_recon_data is not the split's spikes, held-out neurons last")
            if not np.array_equal(encod[()], recon[()][:, :, :n_in]):
                raise ValueError(f"{path}: {s}_encod_data is not the held-in part of {s}_recon_data")
        notes.append(f"{sorted(k for k in keys if k.endswith(('_encod_data', '_recon_data', '_inds')))} present; "
                     f"recon = {n_in} held-in + {n_all - n_in} held-out neurons (last), {n_bins} bins")
        extras = sorted(k for k in keys if not k.endswith(("_encod_data", "_recon_data", "_inds")))
        if extras:
            notes.append(f"also in the file, unused (batch_keys / attr_keys overridden to []): {extras}")
        if "conversion_factor" in keys or any(k.endswith("_truth") for k in keys):
            notes.append("the file has truth: lfads-torch will report r2 against it")
    if model_yaml is not None:
        want = {"encod_data_dim": n_in, "encod_seq_len": n_bins}
        for key, value in want.items():
            if model_yaml.get(key) != value:
                raise ValueError(f"lfads-torch's {LT_CONFIG} model config has {key}={model_yaml.get(key)}, "
                                 f"our file needs {value}")
        readout = model_yaml["readout"]["modules"][0]["out_features"]
        if readout != n_all:
            raise ValueError(f"lfads-torch's readout has {readout} outputs, our file has {n_all} neurons")
        notes.append(f"matches {LT_CONFIG}.yaml: encod_data_dim {n_in}, encod_seq_len {n_bins}, readout "
                     f"{readout}; recon_seq_len {model_yaml.get('recon_seq_len')} → overridden to {n_bins} "
                     "(no forward-prediction bins)")
    return notes


def read_test_rates(output_file, data) -> tuple[np.ndarray, np.ndarray, dict]:
    """Held-out rates (expected counts per bin) of lfads-torch's posterior-sampled test trials, the
    matching held-out spikes, and the checks made. The output file is lfads-torch's copy of our input
    with ``test_output_params`` (trials in file order, recon neuron order) added."""
    import h5py

    heldout = np.asarray(data.heldout_neurons, bool)
    n_in = int((~heldout).sum())
    expected = np.flatnonzero(split_of(data) == "test")
    with h5py.File(output_file, "r") as f:
        params = f["test_output_params"][()]
        inds = f["test_inds"][()]
        recon = f["test_recon_data"][()]
    if params.shape != (len(expected), data.n_bins, heldout.size):
        raise ValueError(f"{output_file}: test_output_params {params.shape}, expected "
                         f"({len(expected)}, {data.n_bins}, {heldout.size})")
    if not np.array_equal(inds, expected):
        raise ValueError(f"{output_file}: test_inds differ from the split's test trials")
    if not np.array_equal(recon, data.spikes[inds][:, :, recon_order(heldout)]):
        raise ValueError(f"{output_file}: test_recon_data is not our test trials' spikes in recon order")
    spikes = data.spikes[inds][:, :, heldout]
    checks = {"test_inds_match": True, "test_recon_data_match": True,
              "own_trial_best_match": own_trial_matches(params[:, :, :n_in], recon[:, :, :n_in])}
    return params[:, :, n_in:], spikes, checks


def own_trial_matches(rates: np.ndarray, spikes: np.ndarray) -> int:
    """How many trials' predicted held-in rates explain their own trial's spikes better (Poisson
    log-likelihood) than any other trial's: an empirical check that output rows follow input rows."""
    rates = np.clip(np.asarray(rates, np.float64), 1e-9, None)
    spikes = np.asarray(spikes, np.float64)
    ll = np.einsum("itn,jtn->ij", np.log(rates), spikes) - rates.sum(axis=(1, 2))[:, None]  # ll[i, j]: rates i, spikes j
    return int((ll.argmax(axis=0) == np.arange(len(ll))).sum())


def epoch_stats(epoch_s: list[float], warmup: int = WARMUP_EPOCHS) -> dict:
    """Median / min / max seconds per epoch after `warmup` epochs (all of them if that leaves none)."""
    counted = list(epoch_s[warmup:]) if len(epoch_s) > warmup else list(epoch_s)
    if not counted:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(counted), "min": min(counted), "max": max(counted), "n": len(counted)}


def summarise(row: str, runs: list[dict]) -> dict:
    """One table row from per-seed runs, each with cobps, counted epoch_s, epochs, best_epoch."""
    cobps = [r["cobps"] for r in runs if r.get("cobps") is not None]
    pooled = [t for r in runs for t in (r.get("epoch_s") or [])]
    return {
        "row": row,
        "cobps_mean": float(np.mean(cobps)) if cobps else None,
        "cobps_sd": float(np.std(cobps, ddof=1)) if len(cobps) > 1 else None,
        "n_seeds": len(runs),
        "s_per_epoch_median": statistics.median(pooled) if pooled else None,
        "s_per_epoch_min": min(pooled) if pooled else None,
        "s_per_epoch_max": max(pooled) if pooled else None,
        "epochs": [r.get("epochs") for r in runs],
        "best_epoch": [r.get("best_epoch") for r in runs],
        "runs": runs,
    }


def _fmt(value, spec: str, empty: str = "—") -> str:
    return empty if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


def format_table(rows: list[dict]) -> str:
    head = f"{'row':<46} {'co-bps':>16} {'s/epoch (min–max)':>24} {'epochs':>10} {'best':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        cobps = _fmt(r["cobps_mean"], ".4f")
        if r.get("cobps_sd") is not None:
            cobps += f" ± {r['cobps_sd']:.4f}"
        speed = "—" if r.get("s_per_epoch_median") is None else \
            f"{r['s_per_epoch_median']:.3f} ({r['s_per_epoch_min']:.2f}–{r['s_per_epoch_max']:.2f})"
        epochs = "/".join(_fmt(e, "d") for e in r.get("epochs") or []) or "—"
        best = "/".join(_fmt(e, "d") for e in r.get("best_epoch") or []) or "—"
        lines.append(f"{r['row']:<46} {cobps:>16} {speed:>24} {epochs:>10} {best:>10}")
    return "\n".join(lines)


def strict_json(value):
    """`value` with NaN / inf → None and numpy scalars / arrays → Python, for json.dumps(allow_nan=False)."""
    if isinstance(value, dict):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return strict_json(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


# ---------------------------------------------------------------------------------------------- stages
def stage(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def load_split(path):
    """`gnocchi_core.bench.load_heldout_split`, checked to be the train/valid/test split."""
    from gnocchi_core.bench import load_heldout_split

    data, description = load_heldout_split(path)
    split = split_of(data)
    for s in ("train", "valid", "test"):
        if not (split == s).any():
            raise SystemExit(f"{path}: load_heldout_split gave no '{s}' trials; this benchmark needs train / "
                             "valid (selection) / test (scored once)")
    return data, description


def machine_info(threads: int) -> dict:
    import torch

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "torch_threads": torch.get_num_threads(),
            "threads_asked": threads, "platform": platform.platform(), "load_before": list(os.getloadavg())}


VERSION_PROBE = r"""
import json, importlib.metadata as md, pathlib, sys
out = {"python": sys.version.split()[0]}
for name in ("torch", "pytorch-lightning", "torchmetrics", "hydra-core", "omegaconf", "ray", "numpy", "h5py"):
    try:
        out[name] = md.version(name)
    except md.PackageNotFoundError:
        out[name] = None
import lfads_torch
src = pathlib.Path(lfads_torch.__file__).resolve().parents[1]
commit = src / "LFADS_TORCH_COMMIT"
out["lfads_torch_source"] = str(src)
out["lfads_torch_commit"] = commit.read_text().strip() if commit.is_file() else None
if out["lfads_torch_commit"] is None and (src / ".git").exists():
    import subprocess
    out["lfads_torch_commit"] = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"],
                                               capture_output=True, text=True).stdout.strip() or None
print(json.dumps(out))
"""


def lfads_torch_versions(python: Path) -> dict:
    done = subprocess.run([str(python), "-c", VERSION_PROBE], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def our_versions() -> dict:
    import importlib.metadata as md

    import torch

    out = {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__}
    try:
        out["gnocchi_core"] = md.version("gnocchi-explorer")
    except md.PackageNotFoundError:
        out["gnocchi_core"] = None
    return out


def lfads_torch_model_yaml(python: Path) -> dict:
    import yaml

    probe = "import lfads_torch, pathlib; print(pathlib.Path(lfads_torch.__file__).resolve().parents[1])"
    src = Path(subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True).stdout.strip())
    return yaml.safe_load((src / "configs" / "model" / f"{LT_CONFIG}.yaml").read_text())


def thread_env(threads: int) -> dict:
    return dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                OPENBLAS_NUM_THREADS=str(threads))


def run_lfads_torch(python: Path, data_file: Path, data, run_dir: Path, *, seed: int, epochs: int | None,
                    threads: int, posterior_samples: int | None) -> dict:
    """Train + posterior-sample lfads-torch in its venv, stream its output, score its test rates."""
    from gnocchi_core.analysis.metrics import bits_per_spike

    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    n_train = int((split_of(data) == "train").sum())
    cmd = [str(python), "-u", str(HERE / "driver.py"), "--data", str(data_file), "--run-dir", str(run_dir),
           "--seed", str(seed), "--threads", str(threads), "--recon-seq-len", str(data.n_bins),
           "--batch-size", str(lfads_torch_batch_size(n_train))]
    if epochs is not None:
        cmd += ["--epochs", str(epochs)]
    if posterior_samples is not None:
        cmd += ["--posterior-samples", str(posterior_samples)]
    print("  $ " + " ".join(cmd), flush=True)
    started = time.perf_counter()
    with open(run_dir / "lfads_torch.log", "w") as log, \
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=thread_env(threads), cwd=run_dir) as proc:
        for line in proc.stdout:
            log.write(line)
            print("  | " + line.rstrip("\n"), flush=True)
        rc = proc.wait()
    wall = time.perf_counter() - started
    if rc:
        raise SystemExit(f"lfads-torch failed (exit {rc}); its log: {run_dir / 'lfads_torch.log'}")
    timing = json.loads((run_dir / "timing.json").read_text())
    rates, spikes, checks = read_test_rates(timing["output_file"], data)
    cobps = bits_per_spike(rates, spikes)
    stats = epoch_stats(timing["epoch_s"])
    print(f"  lfads-torch seed {seed}: co-bps {cobps:.4f} on {len(spikes)} test trials; median "
          f"{stats['median']:.3f} s/epoch; {timing['epochs_trained']} epochs, best {timing['best_epoch']}; "
          f"trial order: test_inds and test_recon_data match the split; {checks['own_trial_best_match']}/"
          f"{len(spikes)} test trials' held-in rates fit their own trial's spikes best (chance: 1)", flush=True)
    return {"seed": seed, "cobps": cobps, "epoch_s": timing["epoch_s"][WARMUP_EPOCHS:] or timing["epoch_s"],
            "epochs": timing["epochs_trained"], "best_epoch": timing["best_epoch"],
            "stopped_early": timing["stopped_early"], "train_s": timing["train_s"],
            "posterior_sampling_s": timing["posterior_sampling_s"], "wall_s": wall, "checks": checks,
            "overrides": timing["overrides"], "run_dir": str(run_dir)}


def run_ours(data_path: Path, config: dict, out_dir: Path, *, seed: int, epochs: int | None,
             posterior_samples: int | None) -> dict:
    """Our LFADS with `config` overrides through `gnocchi_core.bench.bench_cobps` (same split and scoring)."""
    from gnocchi_core.bench import bench_cobps

    config = json.loads(json.dumps(config))
    if posterior_samples is not None:
        config["posterior_samples"] = posterior_samples
    if out_dir.exists():
        shutil.rmtree(out_dir)
    started = time.perf_counter()
    result = bench_cobps(data_path, epochs=epochs, seed=seed, config=config or None, out_dir=out_dir, progress=True)
    missing = [k for k in ("lfads", "s_per_epoch", "epoch_s", "epochs", "best_epoch") if k not in result]
    if missing:
        raise SystemExit(f"gnocchi_core.bench.bench_cobps returned no {missing}: this benchmark needs them")
    return {"seed": seed, "cobps": result["lfads"], "epoch_s": result["epoch_s"], "epochs": result["epochs"],
            "best_epoch": result["best_epoch"], "stopped": result.get("stopped"), "config": config,
            "smoothing": result.get("smoothing"), "wall_s": time.perf_counter() - started, "run_dir": str(out_dir)}


def smoothing_row(data) -> float:
    """The NLB smoothing baseline on the test trials, fitted on the train trials (as bench_cobps does)."""
    from gnocchi_core.analysis.baselines import smoothing_baseline
    from gnocchi_core.analysis.metrics import bits_per_spike

    heldout = np.asarray(data.heldout_neurons, bool)
    train, test = data.split("train"), data.split("test")
    _, rates = smoothing_baseline(train.spikes[:, :, ~heldout], train.spikes[:, :, heldout],
                                  test.spikes[:, :, ~heldout], bin_ms=data.bin_ms)
    return bits_per_spike(rates, test.spikes[:, :, heldout])


# ---------------------------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lfads-torch", required=True, metavar="SOURCE",
                   help="lfads-torch checkout, bare git dir, or git+https://github.com/arsedler9/lfads-torch")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"NLB tensor file (default {DEFAULT_DATA})")
    p.add_argument("--epochs", type=int, default=None,
                   help="max epochs for every run (default: each config's own: lfads-torch 1000, ours 800 / 1000)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threads", type=int, default=2, help="torch threads for both (default 2)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--skip-ours", action="store_true", help="only lfads-torch (and the smoothing baseline)")
    p.add_argument("--posterior-samples", type=int, default=None,
                   help="posterior samples for both (default: both configs' own, 50); fewer for a smoke test")
    p.add_argument("--venv", type=Path, default=None, help="lfads-torch venv (default benchmarks/lfads_torch/.venv)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.update({k: str(args.threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(HERE))
    from setup_venv import DEFAULT_VENV, ensure_venv

    from gnocchi_core.data.lfads_h5 import export_lfads

    wall_start = time.perf_counter()
    machine = machine_info(args.threads)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    data_path = args.data.resolve()

    stage("lfads-torch environment")
    python = ensure_venv(args.lfads_torch, args.venv or DEFAULT_VENV)
    versions = {"lfads_torch_stack": lfads_torch_versions(python), "our_stack": our_versions()}
    print(f"  lfads-torch stack: {json.dumps(versions['lfads_torch_stack'])}")
    print(f"  our stack:         {json.dumps(versions['our_stack'])}")

    stage(f"split of {data_path}")
    data, description = load_split(data_path)
    split = split_of(data)
    counts = {s: int((split == s).sum()) for s in ("train", "valid", "test")}
    print(f"  {description}")
    print(f"  {counts}; {data.n_bins} bins of {data.bin_ms:g} ms; {int((~data.heldout_neurons).sum())} held-in + "
          f"{int(data.heldout_neurons.sum())} held-out neurons")
    data_file = out / "data" / f"{data_path.stem}_split.h5"
    data_file.parent.mkdir(parents=True, exist_ok=True)
    export_lfads(data, data_file)
    for note in check_export(data_file, data, lfads_torch_model_yaml(python)):
        print(f"  lfads-torch input {data_file.name}: {note}")
    print(f"  lfads-torch batch size {lfads_torch_batch_size(counts['train'])} "
          f"(its loader drops an incomplete last batch; ours: batch 64 → one batch of {counts['train']})")

    results = {"protocol": {
        "split": description, "counts": counts, "scored_on": "test trials, held-out neurons, once",
        "metric": "gnocchi_core.analysis.metrics.bits_per_spike (co-bps) on posterior-sampled rates",
        "s_per_epoch": f"median over epochs after the first {WARMUP_EPOCHS}; an epoch = wall time from one "
                       "epoch's start to the next's, validation and checkpointing included",
        "epochs_arg": args.epochs, "seeds": args.seeds, "threads": args.threads,
        "posterior_samples": args.posterior_samples or 50}, "data": str(data_path), "machine": machine,
        "versions": versions}

    lt_runs = []
    for seed in args.seeds:
        stage(f"lfads-torch, seed {seed}" + ("" if args.epochs is None else f", max {args.epochs} epochs"))
        lt_runs.append(run_lfads_torch(python, data_file, data, out / "lfads_torch" / f"seed{seed}", seed=seed,
                                       epochs=args.epochs, threads=args.threads,
                                       posterior_samples=args.posterior_samples))
    rows = [summarise(LT_ROW, lt_runs)]

    if not args.skip_ours:
        for slug, name, config in OUR_ROWS:
            runs = []
            for seed in args.seeds:
                stage(f"{name}, seed {seed}" + ("" if args.epochs is None else f", max {args.epochs} epochs")
                      + f"; overrides {json.dumps(config)}")
                runs.append(run_ours(data_path, config, out / "ours" / slug / f"seed{seed}", seed=seed,
                                     epochs=args.epochs, posterior_samples=args.posterior_samples))
            row = summarise(name, runs)
            row["config"] = config
            rows.append(row)

    stage("NLB smoothing baseline")
    smoothing = smoothing_row(data)
    rows.append(summarise(SMOOTHING_ROW, [{"cobps": smoothing}]) | {"epochs": [], "best_epoch": []})

    machine["load_after"] = list(os.getloadavg())
    results["rows"] = rows
    results["wall_s"] = time.perf_counter() - wall_start
    stage("results")
    print(f"co-bps on the {counts['test']} test trials' {int(data.heldout_neurons.sum())} held-out neurons "
          f"(mean ± sd over seeds {args.seeds} when several); s/epoch: median after {WARMUP_EPOCHS} warm-up epochs "
          "(min–max over those epochs); epochs trained; best epoch (0-based, chosen on valid)")
    print(format_table(rows))
    print(f"\nmachine: {machine['cores']} cores ({machine['cpu']}), {args.threads} torch threads for both; load average "
          f"before {machine['load_before'][0]:.2f}, after {machine['load_after'][0]:.2f} (1 min)")
    lt, ours = versions["lfads_torch_stack"], versions["our_stack"]
    print(f"lfads-torch {(lt.get('lfads_torch_commit') or 'unknown commit')[:12]}: python {lt['python']}, torch "
          f"{lt['torch']}, pytorch-lightning {lt['pytorch-lightning']}, torchmetrics {lt['torchmetrics']}, hydra-core "
          f"{lt['hydra-core']}, ray {lt['ray']}, numpy {lt['numpy']}")
    print(f"ours: gnocchi_core {ours['gnocchi_core']}, python {ours['python']}, torch {ours['torch']}, numpy "
          f"{ours['numpy']}")
    print(f"wall time {results['wall_s'] / 60:.1f} min")
    (out / "results.json").write_text(json.dumps(strict_json(results), indent=1, allow_nan=False))
    print(f"results: {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
