"""Bring your own recording, end to end through the `gnocchi` command, for each shape users bring:
import → check → train (tiny) → evaluate → the explorer page, served by `gnocchi explore`, in Chromium."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gnocchi_core import load_dataset
from gnocchi_core.cli import main
from gnocchi_core.data.readiness import has_reaches

import recordings
from explorer_page import page_plot_names
from test_cli import listening_addresses
from test_import_arrays import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "gnocchi": {"code_dim": 4, "channels": 16, "cond_dim": 32, "encoder_channels": 16, "sample_steps": 3,
                "latent_dim": 4, "ae_channels": 16, "ae_epochs": 4, "prior_components": 2,
                "train": {"epochs": 6, "batch_size": 32, "warmup_steps": 5, "patience": 1000}},
    "lfads": {"ic_enc_dim": 16, "ci_enc_dim": 0, "con_dim": 0, "co_dim": 0, "ic_dim": 8, "gen_dim": 16, "fac_dim": 4,
              "posterior_samples": 2, "prior_components": 2,
              "train": {"epochs": 6, "batch_size": 32, "warmup_steps": 5, "patience": 1000}},
}
WRITERS = {"continuous": lambda p: recordings.continuous_mat(p / "m1.mat", n_bins=4000),
           "struct": lambda p: recordings.struct_mat(p / "trials.mat", n_trials=84),
           "npz": lambda p: recordings.trials_npz(p / "reaches.npz", n_trials=96)}


@pytest.fixture(scope="module", params=list(WRITERS))
def pipeline(request, tmp_path_factory):
    """One shape's file imported, checked, two tiny models trained on it and evaluated, all by `gnocchi`."""
    import torch

    torch.set_num_threads(1)
    shape = request.param
    root = tmp_path_factory.mktemp(shape)
    source = WRITERS[shape](root)
    data = root / f"{shape}.h5"
    assert main(["data", "import", str(source), *COMMANDS[shape], "--out", str(data)]) == 0
    assert main(["data", "check", str(data)]) == 0
    for kind, config in TINY.items():
        (root / f"{kind}.json").write_text(json.dumps(config))
        assert main(["train", kind, "--data", str(data), "--out", str(root / "models" / kind),
                     "--config", str(root / f"{kind}.json"), "--device", "cpu"]) == 0
    assert main(["evaluate", "--data", str(data), "--model", str(root / "models" / "gnocchi"),
                 "--model", str(root / "models" / "lfads"), "--out", str(root / "report"), "--samples", "2",
                 "--device", "cpu"]) == 0
    return {"shape": shape, "data": data, "models": root / "models",
            "report": json.loads((root / "report" / "report.json").read_text())}


def test_the_report_measures_what_the_data_allows(pipeline):
    data = load_dataset(pipeline["data"])
    report = pipeline["report"]["models"]
    for name in ("gnocchi", "lfads"):
        assert report[name]["r2_generated"]["mean"] is not None
        slope = report[name]["nav_slope_target_x"]
        if has_reaches(data):
            assert report[name]["code_snr_target_x"]["mean"] is not None and slope["mean"] is not None
        else:
            assert report[name]["code_snr_condition"]["mean"] is not None
            assert slope["mean"] is None and "no behaviour 'hand_pos'" in slope["why"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_explore_serves_the_page(pipeline, page):
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "gnocchi_core.cli", "explore", str(pipeline["data"]), "--models",
                               str(pipeline["models"]), "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            lines.append(line)
            if "serving http://127.0.0.1" in line or server.poll() is not None:
                break
        assert "serving" in lines[-1], "".join(lines)
        assert listening_addresses(port) == {"127.0.0.1"}  # this machine only, unless --address says otherwise
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_function("() => window.Bokeh && Bokeh.documents.length && "
                               "Bokeh.documents[0].get_model_by_name('codes-gnocchi') !== null", timeout=60_000)
        names = page_plot_names(page)
        assert {"codes-gnocchi", "codes-lfads"} <= names
        assert any(re.match(r"activity-gnocchi", n) for n in names)
        reach = any(n.startswith("reaches-") or n.startswith("mean-reach-") for n in names)
        assert reach == has_reaches(load_dataset(pipeline["data"]))
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_explore_says_in_the_terminal_why_it_cannot_open(pipeline, tmp_path, capsys):
    other = tmp_path / "other.h5"
    data = load_dataset(pipeline["data"])
    data.subset(neurons=list(range(data.n_neurons - 1))).save(other)  # one neuron fewer: no model matches
    (tmp_path / "other_models").mkdir()
    (tmp_path / "other_models" / "gnocchi").mkdir()
    (tmp_path / "other_models" / "gnocchi" / "config.json").write_text("{}")  # a folder in the way
    assert main(["explore", str(other), "--max-minutes", "1"]) == 2
    assert "a model trained on other data is in the way" in capsys.readouterr().err
