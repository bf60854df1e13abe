"""`gnocchi sweep`: hyper-parameter sweeps on Ray Tune (the optional `sweep` extra).

Without Ray: the one-line install hint, and `gnocchi --help` never importing Ray. With Ray: the search
space's grammar and its errors, the output folder's refusals, PBT's clone of another trial's weights,
4-trial sweeps of each model on a local runtime (results.csv, best, every trial folder loads), a sweep
joining a Ray cluster started with `ray start --head` (--address), and a killed sweep finished by --resume
without retraining what was done. The sweeps run on 2 CPUs, one
torch thread per trial (the runtime's workers get OMP_NUM_THREADS=1 and set torch's threads).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gnocchi_core import load_model
from gnocchi_core.cli import main
from gnocchi_core.data.synthetic import SynthConfig, synthesize
from gnocchi_core.errors import ConfigError

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason='Ray Tune is not installed (pip install -e ".[sweep]")')

LFADS_TINY = {"ic_enc_dim": 16, "ci_enc_dim": 8, "con_dim": 8, "co_dim": 2, "ic_dim": 8, "gen_dim": 16, "fac_dim": 4,
              "posterior_samples": 4, "prior_components": 2, "kl_increase_steps": 20, "l2_increase_steps": 20,
              "train": {"batch_size": 32, "warmup_steps": 5, "ema_decay": 0.9, "patience": 1000}}
GNOCCHI_TINY = {"code_dim": 4, "channels": 16, "cond_dim": 32, "encoder_channels": 16, "sample_steps": 5,
                "diffusion_steps": 100, "prior_components": 2, "latent_dim": 4, "ae_channels": 16, "ae_epochs": 3,
                "train": {"batch_size": 32, "warmup_steps": 5, "ema_decay": 0.9, "patience": 1000}}
LFADS_SEARCH = {"dropout_rate": {"uniform": [0.0, 0.3]}, "cd_rate": {"uniform": [0.1, 0.4]},
                "kl_ic_scale": {"choice": [1e-5, 1e-4]}}
LR = {"loguniform": [2e-3, 2e-2]}


def space(tmp_path: Path, base: dict, extra: dict | None = None, train: dict | None = None, name="space.json") -> Path:
    obj = json.loads(json.dumps(base))
    obj.update(extra or {})
    obj["train"].update(train or {})
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """90 trials, 16 neurons (4 held out), 70 bins: both models train an epoch in well under a second."""
    path = tmp_path_factory.mktemp("sweep_data") / "tiny.h5"
    synthesize(SynthConfig(n_trials=90, n_neurons=16, n_heldout_neurons=4, grid=3, seed=1)).save(path)
    return path


def sweep_args(kind, data, space_path, out, trials=4, *extra) -> list[str]:
    return ["sweep", kind, "--data", str(data), "--space", str(space_path), "--trials", str(trials),
            "--out", str(out), "--cpus", "2", *extra]


def rows_of(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def check_sweep(out: Path, kind: str, searched: list[str], mode: str, metric: str, trials: int = 4) -> list[dict]:
    """results.csv has a row per trial with its parameters and score (``metric`` at the epoch of the lowest
    validation loss, whose weights the folder keeps); every trial folder loads, with the parameters of its
    row; best is a copy of the best score's trial."""
    rows = rows_of(out)
    assert [r["trial"] for r in rows] == [f"trial_{i:05d}" for i in range(trials)]
    for row in rows:
        assert row["folder"] == f"trials/{row['trial']}" and math.isfinite(float(row["score"]))
        assert int(row["epochs"]) >= 1 and float(row["seconds"]) > 0 and row["stopped"]
        import torch

        kept = torch.load(out / row["folder"] / "best.pt", weights_only=True)  # the weights the folder holds
        assert int(row["best_epoch"]) == kept["epoch"]
        # as last.pt last wrote it: a scheduler's stop may come later, or before the first checkpoint (no last.pt)
        history = _history(out / row["folder"]) if (out / row["folder"] / "last.pt").is_file() else []
        if kept["epoch"] < len(history):
            record = history[kept["epoch"]]
            assert record["valid_loss"] == pytest.approx(kept["valid_loss"])
            assert float(row["score"]) == pytest.approx(record[metric])
        model = load_model(out / row["folder"], device="cpu")
        assert model.kind == kind
        config = json.loads((out / row["folder"] / "config.json").read_text())["config"]
        for key in searched:
            *parents, leaf = key.split(".")
            node = config
            for parent in parents:
                node = node[parent]
            assert row[key] != "" and float(row[key]) == pytest.approx(node[leaf]), key
        summary = json.loads((out / row["folder"] / "sweep_trial.json").read_text())
        assert (summary["threads"], summary["device"]) == (1, "cpu")  # cpus_per_trial 1: one torch thread
    pick = max if mode == "max" else min
    best = pick(rows, key=lambda r: float(r["score"]))
    assert load_model(out / "best", device="cpu").kind == kind
    assert (out / "best" / "model.pt").read_bytes() == (out / best["folder"] / "model.pt").read_bytes()
    assert (out / "ray" / "sweep").is_dir() and (out / "sweep.json").is_file()
    return rows


# ---------------------------------------------------------------------- without Ray
def test_missing_ray_is_one_line_saying_how_to_install(data, tmp_path, monkeypatch, capsys):
    for name in ("ray", "ray.tune"):
        monkeypatch.setitem(sys.modules, name, None)  # `import ray` raises ImportError
    path = space(tmp_path, LFADS_TINY, LFADS_SEARCH)
    assert main(sweep_args("lfads", data, path, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and 'pip install -e ".[sweep]"' in err
    assert not (tmp_path / "out" / "sweep.json").exists()


def test_help_and_other_commands_never_import_ray():
    code = ("import sys, contextlib, io\nfrom gnocchi_core.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    for argv in (['--help'], ['sweep', '--help']):\n"
            "        try:\n            main(argv)\n        except SystemExit:\n            pass\n"
            "assert 'ray' not in sys.modules, 'ray imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_space_grammar():
    from gnocchi_core.sweep import parse_space

    parsed = parse_space({"dropout_rate": {"uniform": [0.0, 0.6]}, "fac_dim": {"randint": [4, 6]},
                          "train": {"lr": {"loguniform": [1e-4, 1e-2]}, "epochs": 7},
                          "kl_ic_scale": {"choice": [1e-5, 1e-4]}, "gen_dim": 32}, "lfads")
    assert parsed.searched == ["dropout_rate", "fac_dim", "train.lr", "kl_ic_scale"]
    assert parsed.fixed == {"gen_dim": 32, "train": {"epochs": 7}}
    assert parsed.perturbable() == ["dropout_rate", "train.lr", "kl_ic_scale"]  # fac_dim: drawn once
    config = parsed.config({"dropout_rate": 0.25, "fac_dim": 6, "train": {"lr": 1e-3}, "kl_ic_scale": 1e-4})
    assert (config.dropout_rate, config.fac_dim, config.train.lr, config.train.epochs, config.gen_dim) == \
        (0.25, 6, 1e-3, 7, 32)
    assert config.train.batch_size == 64  # LFADS's own training defaults under the overrides
    assert parsed.domains["fac_dim"].clip(7.2) == 6 and parsed.domains["dropout_rate"].clip(0.72) == 0.6
    assert parsed.domains["kl_ic_scale"].clip(8e-6) == 1e-5 and parsed.domains["kl_ic_scale"].clip(1e-4) == 1e-4
    assert parsed.mutations()["kl_ic_scale"] == [1e-5, 1e-4]  # PBT moves along the list, never multiplies it off
    if HAS_RAY:
        from ray import tune

        assert parsed.domains["fac_dim"].to_tune().upper == 7  # inclusive here, exclusive in Ray
        assert isinstance(parsed.param_space()["train"]["lr"], tune.search.sample.Float)


@pytest.mark.parametrize("obj, message", [
    ({"dropout_rat": {"uniform": [0, 0.5]}}, "'dropout_rat': unknown field; did you mean 'dropout_rate'"),
    ({"dropout_rate": {"uniform": [0.5, 0.1]}}, "'dropout_rate': bad uniform domain: expected [lo, hi]"),
    ({"train": {"lr": {"loguniform": [0, 1e-2]}}}, "'train.lr': bad loguniform domain: expected [lo, hi]: two "
                                                    "numbers, 0 < lo"),
    ({"dropout_rate": {"uniform": [0.0, 1.5]}},
     "'dropout_rate': the uniform domain's bound 1.5 is not a valid value: expected a number in [0, 1)"),
    ({"kl_ic_scale": {"normal": [0, 1]}}, "'kl_ic_scale': expected a value or a search domain"),
    ({"fac_dim": {"uniform": [4, 8]}}, "'fac_dim': an integer field cannot take a uniform domain"),
    ({"cd_rate": {"choice": []}}, "'cd_rate': bad choice domain: expected a non-empty list"),
    ({"train": {"epochs": {"randint": [5, 10]}}}, "'train.epochs' must be a fixed value"),
    ({"train": {"uniform": [0, 1]}}, "'train': cannot be searched as a whole"),
    ([1, 2], "not a search space"),
])
def test_bad_space_names_the_file_and_the_field(tmp_path, obj, message):
    from gnocchi_core.sweep import read_space

    path = tmp_path / "space.json"
    path.write_text(json.dumps(obj))
    with pytest.raises(ConfigError) as err:
        read_space(path, "lfads")
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


@needs_ray
def test_bad_space_on_the_command_line_is_one_line(data, tmp_path, capsys):
    path = tmp_path / "space.json"
    path.write_text('{"train": {"lr": {"loguniform": [1e-4, 1e-2]}}, "dropout": 0.1,}')
    assert main(sweep_args("lfads", data, path, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"{path}: not valid JSON" in err


@needs_ray
def test_output_folder_refusals(data, tmp_path, capsys):
    """--out is never --data, never a previous sweep without --resume; a resume keeps the settings."""
    from gnocchi_core.sweep import runner

    path = space(tmp_path, LFADS_TINY, LFADS_SEARCH)
    out = tmp_path / "out"

    def refused(argv, message):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err, err

    refused(sweep_args("lfads", data, path, data), "--out is an input of this command (--data)")
    refused(sweep_args("lfads", data, path, out, 4, "--resume"), "no sweep to resume")
    refused(sweep_args("lfads", data, path, out, 1), "population-based training needs at least 2 trials")
    refused(sweep_args("gnocchi", data, space(tmp_path, GNOCCHI_TINY, name="g.json"), out, 4, "--metric",
                       "valid_heldout_bps"), "unknown metric 'valid_heldout_bps' for gnocchi: expected one of valid_loss")
    refused(sweep_args("gnocchi", data, space(tmp_path, GNOCCHI_TINY, name="g.json"), out, 4, "--scheduler", "pbt"),
            "the space searches none of them")
    runner._write_settings(runner._plan("lfads", data, path, 4, out, None, 1, 0, False, None, 0))  # a started sweep
    refused(sweep_args("lfads", data, path, out), "holds a sweep (sweep.json); --resume continues it")
    refused(sweep_args("lfads", data, path, out, 5, "--resume"), "cannot resume: these settings differ from the "
                                                                 "interrupted sweep's (trials: 4 → 5)")
    refused(sweep_args("lfads", data, path, out, 4, "--resume", "--metric", "valid_loss"),
            'objective: "valid_heldout_bps" → "valid_loss"')


@needs_ray
def test_a_trial_larger_than_the_runtime_is_refused_leaving_no_sweep(data, tmp_path, capsys):
    path = space(tmp_path, LFADS_TINY, LFADS_SEARCH)
    out = tmp_path / "out"
    assert main(sweep_args("lfads", data, path, out, 4, "--cpus-per-trial", "3")) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "a trial needs 3 CPUs, more than any node of the local Ray runtime has (2 CPUs" in err
    assert not (out / "sweep.json").exists()  # nothing started: the same folder takes the corrected command


# ---------------------------------------------------------------------- PBT's exploit, without a runtime
@needs_ray
def test_pbt_clone_continues_another_trials_run_with_its_own_config(data, tmp_path):
    """A trial that clones another gets that trial's training state and resumes it with its perturbed config."""
    from gnocchi_core.models.lfads import LfadsModel
    from gnocchi_core.sweep import parse_space, trial
    from gnocchi_core.data.lfads_h5 import load_training_data as load_data

    tiny = parse_space(LFADS_TINY | {"train": LFADS_TINY["train"] | {"checkpoint_every": 2}}, "lfads")
    dataset = load_data(data)
    source, target = tmp_path / "trial_00000", tmp_path / "trial_00001"
    LfadsModel(tiny.config({"train": {"lr": 4e-3}}, epochs=2), device="cpu").fit(dataset, source, progress=False)
    (tmp_path / "staging").mkdir()
    checkpoint = trial._checkpoint(source, tmp_path / "staging", "trial_00000", 2)
    clone = LfadsModel(tiny.config({"train": {"lr": 3.2e-3}}, epochs=4), device="cpu")
    summary: dict = {}
    origin = trial._take_checkpoint(checkpoint, target, "trial_00001", clone, summary, "lfads")
    assert origin == "trial_00000 at epoch 2" and summary["restored_from"]
    assert json.loads((target / "run.json").read_text())["config"]["train"]["lr"] == 3.2e-3
    clone.fit(dataset, target, resume=True, progress=False)  # record_run accepts the new config
    assert len(clone.history) == 4
    assert clone.history[:2] == _history(source)  # the clone's first epochs are the other trial's
    assert LfadsModel.load(source, device="cpu").config.train.lr == 4e-3
    assert load_model(target, device="cpu").config.train.lr == 3.2e-3
    # the same checkpoint again (a restart of the clone): the folder, further on, is kept
    assert trial._take_checkpoint(checkpoint, target, "trial_00001", clone, summary, "lfads") == "own folder"


def _history(folder: Path) -> list[dict]:
    import torch

    return torch.load(folder / "last.pt", weights_only=True)["history"]


# ---------------------------------------------------------------------- sweeps on a local runtime
@needs_ray
def test_lfads_pbt_sweep_of_4_trials(data, tmp_path, capsys):
    """4 trials on 2 slots: at epoch 3 PBT pauses trials for the waiting ones (or clones better ones);
    every paused trial resumes from its folder and ends at its budget."""
    path = space(tmp_path, LFADS_TINY, LFADS_SEARCH, {"lr": LR, "checkpoint_every": 3})
    out = tmp_path / "lfads_sweep"
    assert main(sweep_args("lfads", data, path, out, 4, "--epochs", "6")) == 0
    printed = capsys.readouterr().out
    assert "objective: held-out bits/spike on the valid trials (higher is better)" in printed
    assert "trial_00000  epoch    1/6  held-out bits/spike" in printed and "best: trial_" in printed
    searched = ["dropout_rate", "cd_rate", "kl_ic_scale", "train.lr"]
    rows = check_sweep(out, "lfads", searched, "max", "valid_heldout_bps")
    for row in rows:
        assert 0.0 <= float(row["dropout_rate"]) <= 0.3 and 0.1 <= float(row["cd_rate"]) <= 0.4  # clipped
        assert float(row["kl_ic_scale"]) in (1e-5, 1e-4)
        assert int(row["epochs"]) == 6 and row["stopped"] == "epoch budget"
    runs = [json.loads((out / r["folder"] / "sweep_trial.json").read_text())["runs"] for r in rows]
    assert any(len(r) > 1 for r in runs)  # paused at the perturbation interval, then continued
    assert all(run["from"] != "new" for r in runs for run in r[1:])  # never retrained from scratch


@needs_ray
def test_gnocchi_asha_sweep_of_4_trials(data, tmp_path, capsys):
    path = space(tmp_path, GNOCCHI_TINY, {"dropout": {"uniform": [0.0, 0.3]}}, {"lr": LR, "checkpoint_every": 2})
    out = tmp_path / "gnocchi_sweep"
    assert main(sweep_args("gnocchi", data, path, out, 4, "--epochs", "6", "--metric", "valid_rec")) == 0
    printed = capsys.readouterr().out
    assert "scheduler ASHA; objective: valid reconstruction loss on the valid trials (lower is better)" in printed
    rows = check_sweep(out, "gnocchi", ["dropout", "train.lr"], "min", "valid_rec")
    for row in rows:  # trained to the budget, or stopped by ASHA at a milestone (1 or 3 epochs)
        assert row["stopped"] in ("epoch budget", f"stopped by ASHA at epoch {row['epochs']}")


@needs_ray
def test_sweep_joins_a_running_ray_cluster_with_address(data, tmp_path, capsys):
    """The README's cluster command on one machine: `ray start --head`, then the sweep with --address."""
    import shutil

    from gnocchi_core.models.distributed import free_port

    ray_cli = Path(sys.executable).with_name("ray")
    ray_cli = str(ray_cli) if ray_cli.is_file() else shutil.which("ray")
    port = free_port()
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([ray_cli, "start", "--head", "--port", str(port), "--num-cpus", "2", "--include-dashboard",
                    "false", "--disable-usage-stats"], check=True, capture_output=True, env=env, timeout=180)
    try:
        path = space(tmp_path, LFADS_TINY, LFADS_SEARCH, {"lr": LR})
        out = tmp_path / "cluster"
        argv = sweep_args("lfads", data, path, out, 2, "--epochs", "2", "--scheduler", "none",
                          "--address", f"127.0.0.1:{port}")
        del argv[argv.index("--cpus"):argv.index("--cpus") + 2]  # the cluster has its own size
        assert main(argv) == 0
        printed = capsys.readouterr().out
        assert f"Ray cluster at 127.0.0.1:{port}: 2 CPUs, 0 GPUs; up to 2 trials at a time" in printed
        check_sweep(out, "lfads", ["dropout_rate", "cd_rate", "kl_ic_scale", "train.lr"], "max", "valid_heldout_bps",
                    trials=2)
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, env=env, timeout=180)


@needs_ray
def test_killed_sweep_resumes_without_retraining(data, tmp_path, capsys):
    """Kill the sweep (its whole process group, Ray included) while the second of 2 trials trains; the same
    command with --resume keeps the first trial as it was and continues the second from its last.pt."""
    path = space(tmp_path, LFADS_TINY, train={"lr": LR, "checkpoint_every": 1})
    out = tmp_path / "killed"
    argv = sweep_args("lfads", data, path, out, 2, "--epochs", "20", "--scheduler", "none")
    argv[argv.index("--cpus") + 1] = "1"  # one trial at a time
    log = open(tmp_path / "sweep.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "gnocchi_core.cli", *argv], stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    first, second = out / "trials" / "trial_00000", out / "trials" / "trial_00001"
    try:
        deadline = time.monotonic() + 150
        while not ((first / "sweep_trial.json").is_file() and (second / "last.pt").is_file()):
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "sweep.log").read_text()
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.close()
    assert not (second / "sweep_trial.json").exists()  # killed mid-training
    done = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}
    assert main(argv + ["--resume"]) == 0
    assert "resuming: 2 LFADS trials" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == done  # the finished trial: untouched
    runs = json.loads((second / "sweep_trial.json").read_text())["runs"]
    assert len(runs) == 1 and runs[0]["from"] == "own folder" and runs[0]["first_epoch"] > 1
    rows = rows_of(out)
    assert [int(r["epochs"]) for r in rows] == [20, 20] and all(r["folder"] for r in rows)
    for row in rows:
        load_model(out / row["folder"], device="cpu")
