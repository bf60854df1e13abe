"""benchmarks/lfads_torch/run.py's pure parts: the file lfads-torch reads is our split, and its output
is read back in the right trial and neuron order (no venv, no training)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from gnocchi_core.bench import load_heldout_split
from gnocchi_core.data.lfads_h5 import export_lfads

from recordings import nlb_tensors

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "lfads_torch" / "run.py"


@pytest.fixture(scope="module")
def run():
    spec = importlib.util.spec_from_file_location("lfads_torch_run", RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def split(tmp_path):
    data, _ = load_heldout_split(nlb_tensors(tmp_path / "nlb.h5", n_train=30, n_eval=9))
    export_lfads(data, tmp_path / "lfads_input.h5")
    return data, tmp_path / "lfads_input.h5"


def test_the_exported_file_is_the_split_with_held_out_neurons_last(run, split):
    data, path = split
    notes = run.check_export(path, data)
    assert any("held-out neurons (last)" in note for note in notes)
    with h5py.File(path, "a") as f:  # a file whose test trials are not the split's is refused
        f["test_inds"][0] = f["test_inds"][1]
    with pytest.raises(ValueError, match="test_inds"):
        run.check_export(path, data)


def test_lfads_torch_output_is_read_in_our_trial_and_neuron_order(run, split, tmp_path):
    data, path = split
    test = np.flatnonzero(data.trial_info["split"].to_numpy() == "test")
    order = run.recon_order(data.heldout_neurons)
    truth = np.random.default_rng(0).uniform(0.1, 1.0, (len(test), data.n_bins, data.n_neurons))
    output = tmp_path / "lfads_output.h5"
    with h5py.File(path) as src, h5py.File(output, "w") as f:  # lfads-torch copies its input and adds outputs
        for key in src:
            f[key] = src[key][()]
        f["test_output_params"] = truth[:, :, order]
    rates, spikes, checks = run.read_test_rates(output, data)
    assert np.array_equal(rates, truth[:, :, data.heldout_neurons])
    assert np.array_equal(spikes, data.spikes[test][:, :, data.heldout_neurons])
    assert checks["test_inds_match"] and checks["test_recon_data_match"]


def test_results_are_strict_json_with_spread_over_seeds(run):
    rows = [run.summarise("x", [{"cobps": 0.1, "epoch_s": [1.0, 2.0], "epochs": 3, "best_epoch": 1},
                                {"cobps": 0.2, "epoch_s": [3.0], "epochs": 4, "best_epoch": 2}]),
            run.summarise("undefined", [{"cobps": float("nan"), "epoch_s": [], "epochs": 0, "best_epoch": None}])]
    assert rows[0]["cobps_mean"] == pytest.approx(0.15) and rows[0]["cobps_sd"] == pytest.approx(0.0707, abs=1e-4)
    assert rows[0]["s_per_epoch_median"] == 2.0
    text = json.dumps(run.strict_json(rows), allow_nan=False)
    assert json.loads(text)[1]["runs"][0]["cobps"] is None
    assert "—" in run.format_table(rows).splitlines()[-1]
