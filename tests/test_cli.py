"""The `gnocchi` command as a new user meets it: the README's quick start and the help."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from gnocchi_core import load_dataset
from gnocchi_core.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", README.read_text(), flags=re.S)


def test_readme_quick_start_opens_the_explorer():
    """The README's main command serves the dashboard from a clean clone, on the shipped assets."""
    quick_start = _readme_commands()[0]
    steps = [s.strip() for s in quick_start.split("&&") if not s.strip().startswith("pip install")]
    assert steps == ["panel serve explorer/app.py"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(shlex.split(steps[0]) + ["--port", str(port), "--address", "127.0.0.1"],
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
    finally:
        server.terminate()
        server.wait(10)


def test_readme_synthetic_data_example_runs(tmp_path):
    steps = _readme_commands()[2]
    result = subprocess.run(steps, shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "trials       500" in result.stdout and "neurons      100 (80 held-in, 20 held-out)" in result.stdout
    data = load_dataset(tmp_path / "demo.h5")
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
