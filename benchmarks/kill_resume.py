"""Does training survive `kill -9` at random moments and resume to bit-identical weights?

Makes a small synthetic dataset, trains a reference model uninterrupted (`gnocchi train MODEL`, a
tiny config with ``checkpoint_every: 1``, one CPU thread so runs are deterministic), then for each
trial starts the same training into a fresh folder, SIGKILLs it after a delay drawn uniformly
within the reference run's duration, and runs ``--resume`` until it completes (a fresh start when
the kill came before any checkpoint: there is nothing to resume). Every third trial is killed
twice: the resumed run is killed again, right as it writes a checkpoint (after a random delay, as
soon as a ``.best.pt.*.tmp``, or in alternate such trials ``.last.pt.*.tmp``, exists), and resumed
again. A first kill that a faster-than-the-reference run outlives is redrawn within that run's
duration (a fresh folder; at most 3 times). A kill counts as "during a checkpoint write" when such a
temporary file exists right after it: the case the atomic writes must survive. Each finished
folder must be bit-identical: every ``.pt`` file (best.pt, model.pt, last.pt, autoencoder/*.pt)
equal to the reference's, every tensor by `torch.equal`, every other value by ``==``; and clean:
loadable by `gnocchi_core.load_model` (in a fresh process) and holding no ``*.tmp`` file. Exits 1
if any resume fails, differs or is not clean; the training folders and logs are then kept (in a
temporary folder, printed).

    python benchmarks/kill_resume.py [--model lfads|gnocchi|both] [--kills 10] [--seed 0]
        [--epochs E] [--json OUT]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # torch reads these when it starts

import torch  # noqa: E402

from gnocchi_core.models.training import BEST, LAST, has_checkpoint  # noqa: E402

TRAIN = {"batch_size": 16, "warmup_steps": 10, "patience": 1000, "checkpoint_every": 1}
CONFIGS = {
    "lfads": {"ic_enc_dim": 16, "ci_enc_dim": 8, "con_dim": 8, "co_dim": 2, "ic_dim": 8, "gen_dim": 16, "fac_dim": 4,
              "posterior_samples": 2, "prior_components": 2, "train": TRAIN},
    "gnocchi": {"code_dim": 4, "channels": 16, "cond_dim": 32, "encoder_channels": 16, "sample_steps": 3,
                "latent_dim": 4, "ae_channels": 16, "ae_epochs": 20, "prior_components": 2, "train": TRAIN},
}
EPOCHS = {"lfads": 50, "gnocchi": 60}
WRITE_TMPS = (".last.pt.", ".best.pt.")
#: load the folder in a fresh process: this one's gnocchi_core may be older than the code the runs used
LOAD = "import sys, gnocchi_core; gnocchi_core.load_model(sys.argv[1], device='cpu')"


def code_hash() -> str:
    """A digest of gnocchi_core's sources, to notice the library changing under a running benchmark."""
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted((ROOT / "gnocchi_core").rglob("*.py")))).hexdigest()


def train_command(model: str, work: Path, out: Path, epochs: int, resume: bool) -> list[str]:
    return [sys.executable, "-m", "gnocchi_core.cli", "train", model, "--data", str(work / "data.h5"), "--out",
            str(out), "--config", str(work / f"{model}.json"), "--epochs", str(epochs), "--device", "cpu",
            *(["--resume"] if resume else [])]


def start(command: list[str], log: Path) -> subprocess.Popen:
    with open(log, "a") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        return subprocess.Popen(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)


def write_tmps(out: Path, prefixes: tuple[str, ...] = WRITE_TMPS) -> list[str]:
    """Checkpoint temporary files (a write in progress, or cut short) in ``out`` and its stages."""
    found = []
    for folder in (out, out / "autoencoder"):
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            continue
        found += [str((folder / n).relative_to(out)) for n in names if n.startswith(prefixes) and n.endswith(".tmp")]
    return found


def written(tmp: str) -> str:
    """The file a checkpoint temporary file was to become: 'autoencoder/.last.pt.x1y2.tmp' -> 'ae/last.pt'."""
    folder, _, name = tmp.rpartition("/")
    return ("ae/" if folder else "") + name[1:].rsplit(".", 2)[0]


def checkpoint_epoch(out: Path) -> str:
    """Where training stood at the kill, from the newest readable last.pt: 'ae:N' (GNOCCHI's
    autoencoder stage), 'N' (epochs done), 'end' (training over), '-' (no checkpoint yet)."""
    for path, prefix in ((out / "last.pt", ""), (out / "autoencoder" / "last.pt", "ae:")):
        if path.is_file():
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001 - an unreadable last.pt is what this benchmark would report
                return prefix + "unreadable"
            return "end" if state.get("stopped") and not prefix else f"{prefix}{int(state['epoch'])}"
    return "-"


def run_until_kill(command: list[str], out: Path, log: Path, delay: float, aim: str | None) -> dict:
    """Run ``command``; SIGKILL it ``delay`` s in (with ``aim``, e.g. 'best.pt', then as soon as that
    checkpoint is being written). {'finished_s': ...} if it finished first."""
    began = time.monotonic()
    process = start(command, log)
    while process.poll() is None and time.monotonic() - began < delay:
        time.sleep(0.005)
    while aim and process.poll() is None and not write_tmps(out, (f".{aim}.",)):
        time.sleep(0.0005)
    if process.poll() is not None:
        return {"finished_s": round(time.monotonic() - began, 3), "rc": process.returncode}
    process.kill()
    at = time.monotonic() - began
    process.wait()
    tmps = write_tmps(out)
    return {"at_s": round(at, 3), "aimed": aim, "epoch": checkpoint_epoch(out), "during_write": bool(tmps),
            "tmp_files": tmps, "restart": not has_checkpoint(out)}


def differences(a, b, path: str = "") -> list[str]:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        ok = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
        return [] if ok else [path]
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) \
        else [path]


def compare(ref: Path, out: Path) -> list[str]:
    """'file: key' for every value of every reference .pt file that the trial's differs in."""
    found = []
    for path in sorted(ref.rglob("*.pt")):
        name = str(path.relative_to(ref))
        if not (out / name).is_file():
            found.append(f"{name}: missing")
            continue
        load = lambda p: torch.load(p, map_location="cpu", weights_only=True)  # noqa: E731
        found += [f"{name}: {d or 'all'}" for d in differences(load(path), load(out / name))]
    return found


def trial(model: str, work: Path, index: int, epochs: int, plan: list[tuple[float, str | None]],
          rng: random.Random) -> dict:
    """Kill per ``plan`` ((delay, aim) per kill), resume to the end, check the folder."""
    out, log = work / f"{model}_{index}", work / f"{model}_{index}.log"
    kills, resume, redrawn = [], False, 0
    for delay, aim in plan:
        kill = run_until_kill(train_command(model, work, out, epochs, resume), out, log, delay, aim)
        while "finished_s" in kill and not kills and redrawn < 3:  # a slower reference (CPU load): kill sooner
            shutil.rmtree(out, ignore_errors=True)
            redrawn += 1
            kill = run_until_kill(train_command(model, work, out, epochs, False), out, log,
                                  rng.uniform(0, kill["finished_s"]), aim)
        if "finished_s" in kill:  # the run ended before this kill could land (e.g. no checkpoint write was left)
            break
        kills.append(kill)
        resume = not kill["restart"]
    record = {"trial": index, "kills": kills, "kills_planned": len(plan), "redrawn": redrawn, "problems": []}
    if kills or not (out / "model.pt").is_file():
        with open(log, "a") as handle:
            rc = subprocess.run(train_command(model, work, out, epochs, resume), cwd=ROOT, timeout=3600,
                                stdout=handle, stderr=subprocess.STDOUT).returncode
        if rc:
            record["problems"].append(f"resume exited {rc} (see {log})")
    record["resumed"] = not record["problems"]
    if record["resumed"]:
        record["problems"] += [str(Path(d, f).relative_to(out)) + " left" for d, _, files in os.walk(out)
                               for f in files if f.endswith(".tmp")]
        loaded = subprocess.run([sys.executable, "-c", LOAD, str(out)], cwd=ROOT, capture_output=True, text=True)
        if loaded.returncode:
            record["problems"].append(f"load_model: {(loaded.stderr.strip().splitlines() or ['?'])[-1]}")
        diffs = compare(work / f"{model}_ref", out)
        record["problems"] += diffs[:5] + ([f"... {len(diffs) - 5} more"] if len(diffs) > 5 else [])
        record["identical"] = not diffs
    else:
        record["identical"] = False
    record["ok"] = not record["problems"]
    return record


def benchmark(model: str, work: Path, n: int, rng: random.Random, epochs: int) -> dict:
    (work / f"{model}.json").write_text(json.dumps(CONFIGS[model]))
    ref, code = work / f"{model}_ref", code_hash()
    began, first_checkpoint = time.monotonic(), None
    process = start(train_command(model, work, ref, epochs, False), work / f"{model}_ref.log")
    while process.poll() is None:
        if first_checkpoint is None and has_checkpoint(ref):
            first_checkpoint = time.monotonic() - began
        time.sleep(0.01)
    duration = time.monotonic() - began
    if process.returncode:
        sys.exit(f"{model}: the reference run failed (see {work / f'{model}_ref.log'})")
    print(f"\n{model}: reference run {duration:.1f} s ({epochs} epochs, first checkpoint at "
          f"{first_checkpoint or 0:.1f} s)")
    print(f"{'trial':>5}  {'kills (s; * = aimed at a write)':<32} {'at epoch':<12} {'in a write':<22} "
          f"{'resumed':<8} identical")
    trials = []
    for i in range(n):
        plan = [(rng.uniform(0, duration), None)]
        if i % 3 == 2:  # kill the resumed run again, as it writes best.pt or last.pt (alternately)
            plan.append((rng.uniform(0, duration / 2), LAST if i // 3 % 2 else BEST))
        record = trial(model, work, i, epochs, plan, rng)
        record["code_changed"] = code != (code := code_hash())
        trials.append(record)
        kills = record["kills"]
        at = ", ".join([f"{k['at_s']:.2f}" + "*" * bool(k["aimed"]) for k in kills]
                       + ["finished first"] * (record["kills_planned"] - len(kills))) \
            + f" ({record['redrawn']} redrawn)" * bool(record["redrawn"])
        epochs_at = ", ".join(k["epoch"] for k in kills)
        writes = ", ".join("+".join(map(written, k["tmp_files"])) or "no" for k in kills)
        print(f"{i:>5}  {at:<32} {epochs_at:<12} {writes:<22} {'yes' if record['resumed'] else 'NO':<8} "
              f"{'yes' if record['identical'] else 'NO'}", flush=True)
        for problem in record["problems"]:
            print(f"         ! {problem}")
        if record["code_changed"]:
            print("         ~ gnocchi_core's sources changed while this trial ran: its runs may mix code versions")
    kills = [k for t in trials for k in t["kills"]]
    times = [k["at_s"] for k in kills] or [0]
    count = lambda key: sum(t[key] for t in trials)  # noqa: E731
    summary = (f"{model}: {count('resumed')}/{n} resumed, {count('identical')}/{n} bit-identical, {count('ok')}/{n} "
               f"clean ({len(kills)} kills at {min(times):.1f}–{max(times):.1f} s; "
               f"{sum(k['during_write'] for k in kills)} during a checkpoint write, "
               f"{sum(k['during_write'] for k in kills if not k['aimed'])} of them unaimed; "
               f"{sum(k['restart'] for k in kills)} before the first checkpoint, restarted fresh)")
    return {"epochs": epochs, "config": CONFIGS[model], "reference_s": round(duration, 2),
            "first_checkpoint_s": round(first_checkpoint or 0, 2), "trials": trials, "summary": summary,
            "code_changed": any(t["code_changed"] for t in trials), "ok": all(t["ok"] for t in trials)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["lfads", "gnocchi", "both"], default="both")
    parser.add_argument("--kills", type=int, default=10, help="trials per model (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random kill times (default 0)")
    parser.add_argument("--epochs", type=int, help=f"training epochs (default {EPOCHS})")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    began, rng = time.monotonic(), random.Random(args.seed)
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="kill_resume_"))
    subprocess.run([sys.executable, "-m", "gnocchi_core.cli", "data", "synth", "--out", str(work / "data.h5"),
                    "--grid", "3", "--trials", "90", "--neurons", "20", "--heldout-neurons", "4", "--seed", "0"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    models = ["lfads", "gnocchi"] if args.model == "both" else [args.model]
    results = {m: benchmark(m, work, args.kills, rng, args.epochs or EPOCHS[m]) for m in models}
    print()
    for result in results.values():
        print(result["summary"])
    total = time.monotonic() - began
    print(f"total {total:.0f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        figures = {"command": " ".join(sys.argv), "seed": args.seed, "total_s": round(total),
                   "torch": torch.__version__, "models": results}
        Path(args.json).write_text(json.dumps(figures, indent=1))
    ok = all(r["ok"] for r in results.values())
    if ok:
        shutil.rmtree(work)
    else:
        print(f"kept the training folders and logs in {work}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
