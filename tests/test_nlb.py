"""Import of NLB tensor files: units, labels derived from the hand path, splits; on planted files
and on the real MC_Maze_Small tensors."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

from gnocchi_core import DataError, load_dataset
from gnocchi_core.data import SPLITS
from gnocchi_core.data.nlb import import_nlb, integrate_velocity

from conftest import assert_same_data


def _write_nlb(path, train_vel_mm_s, n_eval=3, n_heldin=4, n_heldout=2, seed=0):
    """A tiny NLB tensor file: Poisson spikes, the given train velocities (mm/s), eval trials without behaviour."""
    rng = np.random.default_rng(seed)
    n_train, n_bins, _ = train_vel_mm_s.shape
    with h5py.File(path, "w") as f:
        for split, n in (("train", n_train), ("eval", n_eval)):
            f[f"{split}_spikes_heldin"] = rng.poisson(0.3, (n, n_bins, n_heldin)).astype(np.float32)
            f[f"{split}_spikes_heldout"] = rng.poisson(0.3, (n, n_bins, n_heldout)).astype(np.float32)
        f["train_behavior"] = train_vel_mm_s.astype(np.float32)
    return path


# A planted reach: 10 ms bins, spikes from -100 ms, behaviour lagged 20 ms (so from -80 ms: onset is
# behaviour bin 8); still until onset, constant velocity for 10 bins (100 ms), still for the rest.
BIN_MS, T0_MS, LAG_MS, N_BINS, ONSET_BIN = 10.0, -100.0, 20.0, 30, 8
PLANTED_ANGLES_DEG = (135.0, -45.0, 45.0, -135.0)  # condition ids by angle: -135 → 0, -45 → 1, 45 → 2, 135 → 3


def _planted_reaches(per_condition=3, speed_mm_s=1000.0, jitter_deg=5.0, seed=0):
    """Velocities (trials, bins, 2) in mm/s, the planted group of each trial and its reach velocity in cm/s."""
    rng = np.random.default_rng(seed)
    groups = rng.permutation(np.repeat(np.arange(len(PLANTED_ANGLES_DEG)), per_condition))
    angles = np.radians(np.asarray(PLANTED_ANGLES_DEG)[groups] + rng.uniform(-jitter_deg, jitter_deg, len(groups)))
    speeds = speed_mm_s * rng.uniform(0.8, 1.2, len(groups))
    v = np.stack([speeds * np.cos(angles), speeds * np.sin(angles)], axis=1)
    vel = np.zeros((len(groups), N_BINS, 2))
    vel[:, ONSET_BIN:ONSET_BIN + 10] = v[:, None, :]
    return vel, groups, v / 10.0


def _import_planted(path, **kwargs):
    return import_nlb(path, bin_ms=BIN_MS, t0_ms=T0_MS, behavior_lag_ms=LAG_MS, **kwargs)


# ---------------------------------------------------------------------- planted files
def test_units_are_cm_and_cm_per_s(tmp_path):
    vel = np.zeros((6, 20, 2))
    vel[..., 0], vel[..., 1] = 100.0, -50.0  # mm/s = 10 and -5 cm/s
    data = import_nlb(_write_nlb(tmp_path / "nlb.h5", vel), bin_ms=5.0, t0_ms=-50.0, behavior_lag_ms=0.0)
    assert data.behavior_units == {"hand_vel": "cm/s", "hand_pos": "cm"}
    np.testing.assert_allclose(data.behavior["hand_vel"][:6], np.broadcast_to([10.0, -5.0], (6, 20, 2)))
    centres_s = (np.arange(20) + 0.5) * 0.005  # bin centres after the window start
    np.testing.assert_allclose(data.behavior["hand_pos"][:6, :, 0], np.broadcast_to(10.0 * centres_s, (6, 20)),
                               rtol=1e-5)
    np.testing.assert_allclose(data.behavior["hand_pos"][:6, :, 1], np.broadcast_to(-5.0 * centres_s, (6, 20)),
                               rtol=1e-5)
    assert np.isnan(data.behavior["hand_vel"][6:]).all() and np.isnan(data.behavior["hand_pos"][6:]).all()
    assert "mm/s to cm/s" in data.provenance.description


def test_labels_are_derived_from_the_hand_path(tmp_path):
    vel, _, v_cm_s = _planted_reaches()
    data = _import_planted(_write_nlb(tmp_path / "nlb.h5", vel), n_conditions=4)
    info = data.trial_info
    labelled = info["nlb_split"] == "train"
    # start: the onset bin's centre, half a bin into the movement; target: after the 100 ms of movement
    np.testing.assert_allclose(info.loc[labelled, ["start_x", "start_y"]], v_cm_s * 0.005, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(info.loc[labelled, ["target_x", "target_y"]], v_cm_s * 0.1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(info.loc[labelled, "reach_angle"], np.arctan2(v_cm_s[:, 1], v_cm_s[:, 0]), atol=1e-6)
    for column, dtype in (("condition_id", np.int64), ("heldout_condition", np.bool_), ("start_x", np.float64),
                          ("reach_angle", np.float64)):
        assert info[column].dtype == dtype, column
    assert not info["heldout_condition"].any()
    # eval trials have no behaviour: NaN labels, no condition; and they stay the test trials
    unlabelled = info.loc[~labelled]
    assert unlabelled[["start_x", "start_y", "target_x", "target_y", "reach_angle"]].isna().all().all()
    assert (unlabelled["condition_id"] == -1).all() and (unlabelled["split"] == "test").all()
    notes = data.provenance.description
    assert "labels derived from the hand path" in notes and "behaviour bin 8" in notes and "k-means (k=4" in notes


def test_onset_bin_follows_the_behaviour_lag(tmp_path):
    vel, _, v_cm_s = _planted_reaches()
    path = _write_nlb(tmp_path / "nlb.h5", vel)
    # without the lag, t = 0 falls in behaviour bin 10: 2.5 bins into the movement
    data = import_nlb(path, bin_ms=BIN_MS, t0_ms=T0_MS, behavior_lag_ms=0.0, n_conditions=4)
    np.testing.assert_allclose(data.trial_info[["start_x", "start_y"]][:len(vel)], v_cm_s * 0.025, rtol=1e-5)
    # a window without movement onset: imported, unlabelled, and the notes say why
    data = import_nlb(path, bin_ms=BIN_MS, t0_ms=50.0, behavior_lag_ms=0.0)
    assert data.trial_info["start_x"].isna().all() and (data.trial_info["condition_id"] == -1).all()
    assert "no trial labels derived" in data.provenance.description


def test_condition_ids_are_deterministic_and_ordered_by_angle(tmp_path):
    vel, groups, _ = _planted_reaches()
    path = _write_nlb(tmp_path / "nlb.h5", vel)
    a, b, c = (_import_planted(path, n_conditions=4, seed=s) for s in (0, 0, 7))
    ids = a.trial_info["condition_id"].to_numpy()[:len(groups)]
    assert ids.tolist() == b.trial_info["condition_id"].to_numpy()[:len(groups)].tolist()
    assert ids.tolist() == c.trial_info["condition_id"].to_numpy()[:len(groups)].tolist()  # stable across seeds
    # the planted groups are recovered, numbered by increasing angle
    order = np.argsort(PLANTED_ANGLES_DEG)
    expected = np.empty(len(order), int)
    expected[order] = np.arange(len(order))
    np.testing.assert_array_equal(ids, expected[groups])
    info = a.trial_info[a.trial_info["condition_id"] >= 0]
    mean_angle = info.groupby("condition_id")["reach_angle"].mean()
    assert mean_angle.is_monotonic_increasing


def test_fewer_distinct_reaches_than_conditions_gives_fewer_clusters(tmp_path):
    vel, _, _ = _planted_reaches(per_condition=1, jitter_deg=0.0)
    vel[:] = vel[0]  # four identical reaches
    data = _import_planted(_write_nlb(tmp_path / "nlb.h5", vel))
    assert set(data.trial_info["condition_id"][:4]) == {0}
    assert "1 cluster(s) instead of n_conditions=8" in data.provenance.description


def test_stratified_labelled_test_split_covers_every_condition(tmp_path):
    vel, groups, _ = _planted_reaches(per_condition=3)
    data = _import_planted(_write_nlb(tmp_path / "nlb.h5", vel), n_conditions=4, labelled_test_fraction=0.1,
                           valid_fraction=0.2)
    info = data.trial_info
    assert data.n_trials == len(groups) and (info["nlb_split"] == "train").all()  # eval trials dropped
    assert set(info["split"]) <= set(SPLITS)
    counts = info.groupby("condition_id")["split"].value_counts().unstack(fill_value=0)
    assert len(counts) == 4
    for split in ("train", "valid", "test"):  # 3 trials per condition: one in each split
        assert (counts[split] >= 1).all(), (split, counts)
    assert info[["start_x", "start_y", "target_x", "target_y", "reach_angle"]].notna().all().all()
    notes = data.provenance.description
    assert "labelled_test_fraction=0.1" in notes and "3 NLB eval trials dropped" in notes


def test_stratified_splits_are_seeded_and_keep_the_requested_sizes(tmp_path):
    vel, _, _ = _planted_reaches(per_condition=10)
    path = _write_nlb(tmp_path / "nlb.h5", vel)
    a, b = (_import_planted(path, n_conditions=4, labelled_test_fraction=0.25, seed=3) for _ in range(2))
    assert a.trial_info["split"].tolist() == b.trial_info["split"].tolist()
    assert a.trial_info["split"].value_counts().to_dict() == {"train": 22, "test": 10, "valid": 8}
    default = _import_planted(path, n_conditions=4)  # default: train/valid from the NLB train trials, eval → test
    assert default.trial_info["split"].value_counts().to_dict() == {"train": 32, "valid": 8, "test": 3}
    counts = default.trial_info.query("condition_id >= 0").groupby("condition_id")["split"].value_counts()
    assert (counts.unstack(fill_value=0)["valid"] == 2).all()  # 20% of each condition's 10 trials


def test_bad_arguments_are_refused(tmp_path):
    vel, _, _ = _planted_reaches()
    path = _write_nlb(tmp_path / "nlb.h5", vel)
    with pytest.raises(ValueError, match="valid_fraction \\+ labelled_test_fraction"):
        _import_planted(path, valid_fraction=0.5, labelled_test_fraction=0.5)
    with pytest.raises(ValueError, match="labelled_test_fraction"):
        _import_planted(path, labelled_test_fraction=-0.1)
    with pytest.raises(ValueError, match="n_conditions"):
        _import_planted(path, n_conditions=0)
    with h5py.File(path, "a") as f:
        del f["train_behavior"]
    with pytest.raises(ValueError, match="needs labelled trials"):
        _import_planted(path, labelled_test_fraction=0.2)
    data = _import_planted(path)  # no behaviour: imported unlabelled, the old unstratified split
    assert data.behavior == {} and (data.trial_info["condition_id"] == -1).all()


def test_labelled_import_round_trips_through_a_dataset_file(tmp_path):
    vel, _, _ = _planted_reaches()
    data = _import_planted(_write_nlb(tmp_path / "nlb.h5", vel), n_conditions=4)
    data.save(tmp_path / "out.h5")
    assert_same_data(data, load_dataset(tmp_path / "out.h5"))


def test_integrate_velocity_of_constant_velocity():
    pos = integrate_velocity(np.full((1, 4, 2), 10.0), bin_ms=10)  # 10 cm/s for 40 ms
    np.testing.assert_allclose(pos[0, :, 0], [0.05, 0.15, 0.25, 0.35], rtol=1e-6)


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


# ---------------------------------------------------------------------- the real MC_Maze_Small tensors
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
    assert data.behavior_units == {"hand_vel": "cm/s", "hand_pos": "cm"}
    assert data.trial_info["split"].value_counts().to_dict() == {"train": 60, "valid": 15, "test": 25}
    assert "gnocchi data import" in data.provenance.command and data.provenance.licence == "CC-BY-4.0"


def test_counts_velocity_and_integrated_position_match_the_file(shared_data):
    path = shared_data / "mc_maze_small_full.h5"
    data = import_nlb(path)
    with h5py.File(path, "r") as f:
        train = np.concatenate([f["train_spikes_heldin"][()], f["train_spikes_heldout"][()]], axis=-1)
        evals = np.concatenate([f["eval_spikes_heldin"][()], f["eval_spikes_heldout"][()]], axis=-1)
        vel = f["train_behavior"][()].astype(np.float64) / 10.0  # mm/s → cm/s
    np.testing.assert_array_equal(data.spikes, np.concatenate([train, evals]).astype(int))
    np.testing.assert_allclose(data.behavior["hand_vel"][:75], vel, rtol=1e-6)
    assert np.isnan(data.behavior["hand_vel"][75:]).all()  # eval trials have no behaviour
    pos = data.behavior["hand_pos"][:75].astype(np.float64)
    # consecutive bin-centre positions differ by the mean of the two bins' velocities × bin width
    np.testing.assert_allclose(np.diff(pos, axis=1), (vel[:, 1:] + vel[:, :-1]) / 2 * 0.005, atol=1e-4)
    reach = np.linalg.norm(pos[:, -1] - pos[:, 0], axis=-1)
    assert 5 < np.median(reach) < 25  # cm: monkey reaches are about 10 cm


def test_mc_maze_small_labels(shared_data):
    data = import_nlb(shared_data / "mc_maze_small_full.h5")
    info = data.trial_info
    labelled = (info["nlb_split"] == "train").to_numpy()
    assert labelled.sum() == 75
    columns = ["start_x", "start_y", "target_x", "target_y", "reach_angle"]
    assert np.isfinite(info.loc[labelled, columns].to_numpy()).all()
    assert info.loc[~labelled, columns].isna().all().all() and (info.loc[~labelled, "condition_id"] == -1).all()
    reach = np.hypot(info["target_x"] - info["start_x"], info["target_y"] - info["start_y"])[labelled]
    assert 3 < reach.min() and reach.max() < 25 and 8 < reach.median() < 16  # cm
    # the hand is (nearly) still before onset: the start is close to the window start
    assert np.hypot(info["start_x"], info["start_y"])[labelled].median() < 2
    assert sorted(info.loc[labelled, "condition_id"].unique()) == list(range(8))
    # the stratified labelled test split: every derived condition is tested, eval trials are dropped
    held = import_nlb(shared_data / "mc_maze_small_full.h5", labelled_test_fraction=0.2)
    assert held.n_trials == 75 and held.trial_info["split"].value_counts().to_dict() == \
        {"train": 45, "valid": 15, "test": 15}
    counts = held.trial_info.groupby("condition_id")["split"].value_counts().unstack(fill_value=0)
    assert (counts[["train", "valid", "test"]] >= 1).all().all()
    assert np.isfinite(held.trial_info[columns].to_numpy()).all()


def test_split_is_seeded(shared_data):
    path = shared_data / "mc_maze_small_full.h5"
    a, b, c = import_nlb(path, seed=1), import_nlb(path, seed=1), import_nlb(path, seed=2)
    assert a.trial_info["split"].tolist() == b.trial_info["split"].tolist()
    assert a.trial_info["split"].tolist() != c.trial_info["split"].tolist()
