"""The `gnocchi` command as a new user meets it: the README's quick start and the help."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import time
import urllib.request
from importlib.metadata import version
from pathlib import Path

import pytest

from gnocchi_core import load_dataset
from gnocchi_core.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
ASSETS = README.parent / "assets"


def _readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", README.read_text(), flags=re.S)


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a socket listening on ``port``, from Linux's /proc/net/tcp{,6}."""
    import ipaddress

    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not Path(table).exists():
            pytest.skip("no /proc/net/tcp on this system")
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # kernel byte order
                found.add(str(ipaddress.ip_address(words)))
    return found


def test_readme_quick_start_opens_the_explorer():
    """The README's main command serves the dashboard from a clean clone, on the shipped assets."""
    quick_start = _readme_commands()[0]
    steps = [s.strip() for s in quick_start.split("&&") if not s.strip().startswith("pip install")]
    assert steps == ["panel serve explorer/app.py --address 127.0.0.1 --allow-websocket-origin localhost:5006 "
                     "--allow-websocket-origin 127.0.0.1:5006"]  # this machine only, unless told otherwise
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(shlex.split(steps[0]) + ["--port", str(port)],
                              cwd=README.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, page = time.monotonic() + 120, ""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an http_proxy
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with opener.open(f"http://127.0.0.1:{port}/app", timeout=60) as response:
                    page = response.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert "GNOCCHI Explorer" in page, server.stdout.read() if server.poll() is not None else "no page"
        assert listening_addresses(port) == {"127.0.0.1"}
    finally:
        server.terminate()
        server.wait(10)


def test_readme_synthetic_data_example_runs(tmp_path):
    steps = _readme_commands()[2]
    result = subprocess.run(steps, shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "trials       500" in result.stdout and "neurons      100 (80 held-in, 20 held-out)" in result.stdout
    data = load_dataset(tmp_path / "work" / "demo.h5")
    assert data.trial_info["heldout_condition"].any()


def test_ci_runs_the_readme_test_command():
    ci = (README.parent / ".ci" / "run").read_text()
    assert _readme_commands()[1] in ci


def test_help_lists_every_data_command(capsys):
    try:
        main(["data", "--help"])
    except SystemExit as done:
        assert done.code == 0
    out = capsys.readouterr().out
    for command in ("info", "import", "synth", "export-lfads"):
        assert command in out


def test_synth_options_reach_the_generator(tmp_path):
    out = tmp_path / "small.h5"
    assert main(["data", "synth", "--out", str(out), "--grid", "3", "--trials", "45", "--neurons", "12",
                 "--heldout-neurons", "2", "--heldout-targets", "0", "8", "--bin-ms", "20", "--seed", "3"]) == 0
    data = load_dataset(out)
    assert (data.n_trials, data.n_neurons, data.bin_ms) == (45, 12, 20.0)
    assert data.heldout_neurons.sum() == 2
    assert sorted(data.trial_info.loc[data.trial_info["heldout_condition"], "condition_id"].unique()) == [0, 8]


def test_bad_synth_option_is_one_line(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path / "x.h5"), "--bin-ms", "15"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bin" in err and not (tmp_path / "x.h5").exists()


def _help(capsys, *argv: str) -> str:
    """The help page `gnocchi ARGV --help` prints (argparse exits 0 after printing it)."""
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_version_prints_the_installed_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"gnocchi {version('gnocchi-explorer')}"


@pytest.mark.parametrize("argv, described, example", [
    ((), "generative models of neural population activity", "gnocchi data synth --out demo.h5"),
    (("data",), "GNOCCHI TrialData format", "gnocchi data synth --out demo.h5"),
    (("train",), "--resume continues a killed run", "gnocchi train gnocchi --data demo.h5"),
    (("bench",), "sampling latency", "gnocchi bench sample --model assets/models/gnocchi"),
    (("generate",), "Writes generated trials", "gnocchi generate --model assets/models/gnocchi --navigate"),
    (("data", "import"), "Bin, align and label a recording", "gnocchi data import "),
    (("train", "gnocchi"), "Train GNOCCHI", "--max-minutes 5"),
])
def test_help_has_a_description_and_examples(capsys, argv, described, example):
    out = _help(capsys, *argv)
    description = out.split("\n\n")[1]  # usage, then the description paragraph
    assert described in " ".join(description.split())
    examples = out.split("examples:\n", 1)[1]
    assert example in examples and all(line.startswith("  ") for line in examples.splitlines() if line)


def test_every_command_has_examples(capsys):
    """No command is left without a description and an example, groups included."""
    commands = [("data", c) for c in ("info", "import", "synth", "simulate", "export-lfads")]
    commands += [("train", "gnocchi"), ("train", "lfads"), ("evaluate",), ("generate",), ("build-assets",)]
    commands += [("bench", c) for c in ("sample", "quality", "train", "cobps")]
    for argv in commands:
        out = _help(capsys, *argv)
        assert len(out.split("\n\n")) >= 4, argv  # usage, description, options, examples
        assert f"gnocchi {' '.join(argv)} " in out.split("examples:\n", 1)[1], argv


def test_generate_help_separates_points_from_ddim_steps(capsys):
    out = " ".join(_help(capsys, "generate").split())
    assert "--points POINTS --navigate: positions across the grid's span (default 9)" in out
    assert "--steps N DDIM steps for GNOCCHI (default: the model's own)" in out


def test_generate_walks_points_with_ddim_steps(tmp_path, monkeypatch):
    """On the shipped GNOCCHI model (seconds): --points positions, --steps reaches the sampler."""
    import gnocchi_core.workflows as workflows

    seen = []
    real = workflows.generated_trials

    def spy(model, codes, **kwargs):
        seen.append(kwargs["steps"])
        return real(model, codes, **kwargs)

    monkeypatch.setattr(workflows, "generated_trials", spy)
    out = tmp_path / "walk.h5"
    assert main(["generate", "--model", str(ASSETS / "models" / "gnocchi"), "--navigate", "target_x", "--data",
                 str(ASSETS / "motornet_reach" / "motornet_reach.h5"), "--points", "3", "--steps", "2",
                 "--out", str(out), "--device", "cpu"]) == 0
    assert seen == [2]
    walk = load_dataset(out)
    assert walk.n_trials == 3 and walk.trial_info["commanded_target_x_cm"].nunique() == 3


def test_train_stops_on_its_time_budget_and_leaves_a_model(tmp_path, capsys):
    import json

    import torch

    from gnocchi_core import load_model

    torch.set_num_threads(1)
    data = tmp_path / "d.h5"
    assert main(["data", "synth", "--out", str(data), "--grid", "3", "--trials", "60", "--neurons", "12",
                 "--heldout-neurons", "2"]) == 0
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"ic_enc_dim": 8, "ci_enc_dim": 0, "con_dim": 0, "co_dim": 0, "ic_dim": 4,
                                  "gen_dim": 8, "fac_dim": 3, "posterior_samples": 2, "prior_components": 2}))
    assert main(["train", "lfads", "--data", str(data), "--out", str(tmp_path / "m"), "--device", "cpu",
                 "--config", str(config), "--epochs", "100000", "--max-minutes", "0.05"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"done: \d+ epochs \(stopped: time budget of 0.05 min\)", out), out
    assert load_model(tmp_path / "m").n_neurons == 12
