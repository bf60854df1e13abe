"""lfads-torch input files: exact round trips, the layout lfads-torch expects, foreign files."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

from gnocchi_core import DataError, load_dataset
from gnocchi_core.data.lfads_h5 import export_lfads, import_lfads
from gnocchi_core.data.nlb import import_nlb

from conftest import assert_same_data, make_trialdata


def test_round_trip_through_lfads_file_is_exact(tmp_path):
    data = make_trialdata()
    export_lfads(data, tmp_path / "lfads.h5")
    assert_same_data(data, import_lfads(tmp_path / "lfads.h5"))


def test_layout_is_what_lfads_torch_reads(tmp_path):
    data = make_trialdata(n_trials=12, n_neurons=6)
    path = tmp_path / "lfads.h5"
    export_lfads(data, path)
    heldin = np.flatnonzero(~data.heldout_neurons)
    heldout = np.flatnonzero(data.heldout_neurons)
    with h5py.File(path, "r") as f:
        assert all(isinstance(v, h5py.Dataset) for v in f.values())  # lfads-torch reads v[()] of every key
        for split in ("train", "valid", "test"):
            inds = np.flatnonzero(data.trial_info["split"] == split)
            np.testing.assert_array_equal(f[f"{split}_encod_data"][()], data.spikes[inds][:, :, heldin])
            np.testing.assert_array_equal(f[f"{split}_recon_data"][()],
                                          data.spikes[inds][:, :, np.r_[heldin, heldout]])
            assert f[f"{split}_behavior"].shape == (len(inds), 20, 4)
            # lfads-torch divides truth by conversion_factor to get expected counts per bin
            np.testing.assert_allclose(f[f"{split}_truth"][()] / f["conversion_factor"][()],
                                       data.rates[inds][:, :, np.r_[heldin, heldout]] * 0.01, rtol=1e-6)


def test_real_data_round_trips_through_the_cli(shared_data, tmp_path):
    ours = tmp_path / "maze.h5"
    import_nlb(shared_data / "mc_maze_small_full.h5").save(ours)
    for args in (["data", "export-lfads", str(ours), "--out", str(tmp_path / "lfads.h5")],
                 ["data", "import", str(tmp_path / "lfads.h5"), "--format", "lfads", "--out", str(tmp_path / "back.h5")]):
        result = subprocess.run([sys.executable, "-m", "gnocchi_core.cli", *args], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    original, back = load_dataset(ours), load_dataset(tmp_path / "back.h5")
    back.provenance.command = original.provenance.command
    assert_same_data(original, back)


def _write_foreign(path, forward_bins=0):
    """An lfads-torch file as other tools write it: held-out neurons last, forward bins in recon."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for split, n in (("train", 8), ("valid", 3)):
            recon = rng.poisson(1.0, (n, 10 + forward_bins, 5)).astype(np.float32)
            f[f"{split}_recon_data"] = recon
            f[f"{split}_encod_data"] = recon[:, :10, :4]
            f[f"{split}_behavior"] = rng.normal(size=(n, 10 + forward_bins, 2))
    return path


def test_foreign_file_imports_with_given_bin_width(tmp_path):
    path = _write_foreign(tmp_path / "foreign.h5", forward_bins=2)
    data = import_lfads(path, bin_ms=20.0, t0_ms=-100.0)
    assert data.spikes.shape == (11, 12, 5) and data.bin_ms == 20.0 and data.t0_ms == -100.0
    np.testing.assert_array_equal(data.heldout_neurons, [False] * 4 + [True])
    assert data.trial_info["split"].tolist() == ["train"] * 8 + ["valid"] * 3
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(data.spikes[8:], f["valid_recon_data"][()])
    assert data.behavior["behavior"].shape == (11, 12, 2)


def test_foreign_file_without_bin_width_or_keys_is_a_clear_error(tmp_path):
    path = _write_foreign(tmp_path / "foreign.h5")
    with pytest.raises(DataError, match="bin width.*--bin-ms"):
        import_lfads(path)
    with h5py.File(path, "a") as f:
        del f["valid_recon_data"]
    with pytest.raises(DataError, match="valid_recon_data"):
        import_lfads(path, bin_ms=10)


def test_export_needs_train_and_valid_trials(tmp_path):
    data = make_trialdata().split("train", "test")
    with pytest.raises(DataError, match="valid"):
        export_lfads(data, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()
