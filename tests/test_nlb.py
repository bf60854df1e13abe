"""Import of NLB tensor files, on the real MC_Maze_Small tensors."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

from gnocchi_core import DataError, load_dataset
from gnocchi_core.data.nlb import import_nlb, integrate_velocity


def test_cli_imports_mc_maze_small(shared_data, tmp_path):
    out = tmp_path / "maze.h5"
    result = subprocess.run(
        [sys.executable, "-m", "gnocchi_core.cli", "data", "import",
         str(shared_data / "mc_maze_small_full.h5"), "--format", "nlb", "--out", str(out)],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    data = load_dataset(out)
    assert (data.n_trials, data.n_bins, data.bin_ms, data.n_neurons) == (100, 140, 5.0, 142)
    assert data.heldout_neurons.sum() == 35 and data.heldout_neurons[-35:].all()
    assert data.window_ms == (-250.0, 450.0)
    assert set(data.behavior) == {"hand_vel", "hand_pos"}
    assert data.behavior_units == {"hand_vel": "mm/s", "hand_pos": "mm"}
    assert data.trial_info["split"].value_counts().to_dict() == {"train": 60, "valid": 15, "test": 25}
    assert "gnocchi data import" in data.provenance.command and data.provenance.licence == "CC-BY-4.0"


def test_counts_velocity_and_integrated_position_match_the_file(shared_data):
    path = shared_data / "mc_maze_small_full.h5"
    data = import_nlb(path)
    with h5py.File(path, "r") as f:
        train = np.concatenate([f["train_spikes_heldin"][()], f["train_spikes_heldout"][()]], axis=-1)
        evals = np.concatenate([f["eval_spikes_heldin"][()], f["eval_spikes_heldout"][()]], axis=-1)
        vel = f["train_behavior"][()]
    np.testing.assert_array_equal(data.spikes, np.concatenate([train, evals]).astype(int))
    np.testing.assert_array_equal(data.behavior["hand_vel"][:75], vel)
    assert np.isnan(data.behavior["hand_vel"][75:]).all()  # eval trials have no behaviour
    pos = data.behavior["hand_pos"][:75].astype(np.float64)
    # consecutive bin-centre positions differ by the mean of the two bins' velocities × bin width
    np.testing.assert_allclose(np.diff(pos, axis=1), (vel[:, 1:] + vel[:, :-1]) / 2 * 0.005, atol=1e-3)
    reach = np.linalg.norm(pos[:, -1] - pos[:, 0], axis=-1)
    assert 50 < np.median(reach) < 250  # mm: monkey reaches are about 10 cm


def test_split_is_seeded(shared_data):
    path = shared_data / "mc_maze_small_full.h5"
    a, b, c = import_nlb(path, seed=1), import_nlb(path, seed=1), import_nlb(path, seed=2)
    assert a.trial_info["split"].tolist() == b.trial_info["split"].tolist()
    assert a.trial_info["split"].tolist() != c.trial_info["split"].tolist()


def test_integrate_velocity_of_constant_velocity():
    pos = integrate_velocity(np.full((1, 4, 2), 100.0), bin_ms=10)  # 100 mm/s for 40 ms
    np.testing.assert_allclose(pos[0, :, 0], [0.5, 1.5, 2.5, 3.5])


def test_wrong_shapes_and_missing_arrays_are_named(tmp_path):
    path = tmp_path / "nlb.h5"
    with h5py.File(path, "w") as f:
        f["train_spikes_heldin"] = np.zeros((4, 10, 3))
        f["train_spikes_heldout"] = np.zeros((4, 9, 2))
    with pytest.raises(DataError, match=r"train_spikes_heldout.*\(4, 10, 2\).*\(4, 9, 2\)"):
        import_nlb(path)
    with h5py.File(path, "w") as f:
        f["train_spikes_heldin"] = np.zeros((4, 10, 3))
    with pytest.raises(DataError, match="train_spikes_heldout"):
        import_nlb(path)
