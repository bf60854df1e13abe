"""The TrialData contract: round trips, subsetting, atomic writes and every bad-input case."""

from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

import gnocchi_core
from gnocchi_core import DataError, TrialData, load_dataset
from gnocchi_core.cli import main
from gnocchi_core.data import trialdata

from conftest import assert_same_data, make_trialdata


def test_save_load_round_trip_is_exact(tmp_path):
    data = make_trialdata()
    path = tmp_path / "data.h5"
    data.save(path)
    loaded = gnocchi_core.load_dataset(path)
    assert_same_data(data, loaded)
    assert loaded.spikes.dtype == np.int32
    with h5py.File(path, "r") as f:
        assert f.attrs["schema_version"] == trialdata.SCHEMA_VERSION
        assert f["spikes"].compression == "gzip"
        assert f["spikes"].dtype == np.uint8  # smallest type that holds the counts


def test_standard_columns_are_filled_when_unknown():
    data = TrialData(spikes=np.ones((3, 4, 2), int), bin_ms=5, t0_ms=0, trial_info=None)
    info = data.trial_info
    assert list(info.columns) == list(trialdata.TRIAL_COLUMNS)
    assert info["trial_id"].tolist() == [0, 1, 2]
    assert (info["split"] == "train").all() and (info["condition_id"] == -1).all()
    assert info["target_x"].isna().all() and not info["heldout_condition"].any()
    assert not data.heldout_neurons.any()


def test_time_axis():
    data = make_trialdata(n_bins=20)
    assert data.window_ms == (-50.0, 150.0)
    np.testing.assert_allclose(data.bin_centers_ms[:2], [-45.0, -35.0])
    assert data.mean_rate_hz() == pytest.approx(data.spikes.mean() * 100.0)


def test_subset_by_trials_neurons_and_split():
    data = make_trialdata(n_trials=12, n_neurons=6)
    sub = data.subset(trials=[2, 5], neurons=np.array([True, False, True, False, False, True]))
    assert sub.spikes.shape == (2, 20, 3)
    np.testing.assert_array_equal(sub.spikes, data.spikes[[2, 5]][:, :, [0, 2, 5]])
    np.testing.assert_array_equal(sub.rates, data.rates[[2, 5]][:, :, [0, 2, 5]])
    np.testing.assert_array_equal(sub.neuron_ids, [100, 102, 105])
    np.testing.assert_array_equal(sub.behavior["hand_pos"], data.behavior["hand_pos"][[2, 5]])
    assert sub.trial_info["trial_id"].tolist() == [2, 5]
    assert sub.latents.shape == (2, 20, 3)

    valid = data.split("valid")
    assert (valid.trial_info["split"] == "valid").all() and valid.n_trials == 4
    assert data.split("train", "test").n_trials == 8
    heldin = data.heldin()
    assert heldin.n_neurons == 4 and not heldin.heldout_neurons.any()
    with pytest.raises(ValueError, match="unknown split"):
        data.split("training")


def test_subset_does_not_share_provenance():
    data = make_trialdata()
    sub = data.subset(trials=[0])
    sub.provenance.command = "changed"
    assert data.provenance.command == "pytest"


def test_existing_output_is_never_half_overwritten(tmp_path, monkeypatch):
    path = tmp_path / "data.h5"
    original = make_trialdata(seed=1)
    original.save(path)

    def fail_midway(group, name, values):
        if name == "trial_info" or name == "hand_pos":
            raise OSError("disk full")
        group.create_dataset(name, data=values)

    monkeypatch.setattr(trialdata, "_write", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        make_trialdata(seed=2).save(path)
    assert_same_data(original, load_dataset(path))
    assert sorted(os.listdir(tmp_path)) == ["data.h5"]  # no temporary file left behind


# ---------------------------------------------------------------------- bad input, in memory
@pytest.mark.parametrize("spikes, message", [
    (np.ones((3, 4)), "must be 3-D"),
    (np.ones((0, 4, 2)), "zero trials"),
    (np.full((2, 3, 2), np.nan), "NaN"),
    (-np.ones((2, 3, 2)), "non-negative"),
    (np.full((2, 3, 2), 0.5), "whole numbers"),
])
def test_bad_counts_are_rejected(spikes, message):
    with pytest.raises(DataError, match=message) as err:
        TrialData(spikes=spikes, bin_ms=5, t0_ms=0, trial_info=None)
    assert err.value.field == "spikes"


def test_behaviour_length_mismatch_names_field_and_shapes():
    with pytest.raises(DataError) as err:
        TrialData(spikes=np.ones((3, 4, 2), int), bin_ms=5, t0_ms=0, trial_info=None,
                  behavior={"hand_vel": np.zeros((3, 5, 2))})
    text = str(err.value)
    assert "behavior/hand_vel" in text and "(3, 4, dims)" in text and "(3, 5, 2)" in text


def test_other_fields_are_checked():
    spikes = np.ones((3, 4, 2), int)
    with pytest.raises(DataError, match="trial_info.*3 rows.*2 rows"):
        TrialData(spikes=spikes, bin_ms=5, t0_ms=0, trial_info={"split": ["train", "test"]})
    with pytest.raises(DataError, match="split"):
        TrialData(spikes=spikes, bin_ms=5, t0_ms=0, trial_info={"split": ["train", "val", "test"]})
    with pytest.raises(DataError, match="heldout_neurons"):
        TrialData(spikes=spikes, bin_ms=5, t0_ms=0, trial_info=None, heldout_neurons=[True])
    with pytest.raises(DataError, match="bin_ms"):
        TrialData(spikes=spikes, bin_ms=0, t0_ms=0, trial_info=None)
    with pytest.raises(DataError, match="rates"):
        TrialData(spikes=spikes, bin_ms=5, t0_ms=0, trial_info=None, rates=np.ones((3, 4, 3)))


# ---------------------------------------------------------------------- bad input, on disk
def _saved(tmp_path):
    path = tmp_path / "data.h5"
    make_trialdata().save(path)
    return path


def _edit(path, edit):
    with h5py.File(path, "a") as f:
        edit(f)
    return path


def _replace(name, values):
    def edit(f):
        del f[name]
        f.create_dataset(name, data=values)
    return edit


def _overwrite_with_text(path):
    path.write_text("spikes,bins\n1,2\n")
    return path


def _truncate(path):
    path.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])
    return path


BAD_FILES = {
    "not hdf5": (_overwrite_with_text, "not an HDF5 file", None),
    "truncated": (_truncate, "truncated or corrupt", None),
    "missing spikes": (lambda p: _edit(p, lambda f: f.__delitem__("spikes")), "missing", "spikes"),
    "missing trial column": (lambda p: _edit(p, lambda f: f.__delitem__("trial_info/split")),
                                 "missing", "trial_info/split"),
    "wrong rank": (lambda p: _edit(p, _replace("spikes", np.ones((12, 20)))), "3-D", "spikes"),
    "nan counts": (lambda p: _edit(p, _replace("spikes", np.full((12, 20, 6), np.nan))), "NaN", "spikes"),
    "negative counts": (lambda p: _edit(p, _replace("spikes", -np.ones((12, 20, 6)))), "non-negative", "spikes"),
    "non-integer counts": (lambda p: _edit(p, _replace("spikes", np.full((12, 20, 6), 1.5))),
                           "whole numbers", "spikes"),
    "behaviour length": (lambda p: _edit(p, _replace("behavior/hand_pos", np.zeros((12, 19, 2)))),
                         "does not match", "behavior/hand_pos"),
    "zero trials": (lambda p: _edit(p, _replace("spikes", np.zeros((0, 20, 6)))), "zero trials", "spikes"),
    "other hdf5": (lambda p: _edit(p, lambda f: f.attrs.__delitem__("format")), "not a GNOCCHI dataset", "format"),
    "future schema": (lambda p: _edit(p, lambda f: f.attrs.__setitem__("schema_version", 99)),
                      "unsupported schema", "schema_version"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_raise_one_specific_error(tmp_path, case):
    corrupt, message, field = BAD_FILES[case]
    path = corrupt(_saved(tmp_path))
    with pytest.raises(DataError, match=message) as err:
        load_dataset(path)
    assert err.value.path == str(path) and str(path) in str(err.value)
    assert err.value.field == field


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_cli_reports_bad_files_in_one_line(tmp_path, case, capsys):
    corrupt, message, _ = BAD_FILES[case]
    path = corrupt(_saved(tmp_path))
    assert main(["data", "info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(path) in err and "Traceback" not in err


def test_cli_error_has_no_traceback_in_a_real_process(tmp_path):
    path = tmp_path / "missing.h5"
    result = subprocess.run([sys.executable, "-m", "gnocchi_core.cli", "data", "info", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == f"gnocchi: error: {path}: file not found"
