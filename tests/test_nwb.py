"""NWB import: the official DANDI test-split file, planted NLB-layout files, and errors."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from math import erf
from pathlib import Path

import h5py
import numpy as np
import pytest
from pynwb import NWBHDF5IO, NWBFile, TimeSeries
from pynwb.behavior import SpatialSeries

from gnocchi_core.data import load_dataset
from gnocchi_core.data.nwb import import_nwb
from gnocchi_core.errors import DataError

WINDOW = (-200.0, 500.0)
BIN = 5.0


def _nwb(identifier: str = "planted") -> NWBFile:
    return NWBFile(session_description="planted test data", identifier=identifier,
                   session_start_time=datetime(2021, 1, 1, tzinfo=timezone.utc))


def _write(nwb: NWBFile, path: Path) -> Path:
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def _expected_counts(rel_ms: np.ndarray, window=WINDOW, bin_ms=BIN) -> np.ndarray:
    """Counts per bin from spike times relative to onset, bins closed on the left."""
    n_bins = round((window[1] - window[0]) / bin_ms)
    bins = np.floor((np.round(rel_ms, 6) - window[0]) / bin_ms).astype(int)
    return np.bincount(bins[(bins >= 0) & (bins < n_bins)], minlength=n_bins)


# ---------------------------------------------------------------------- the real DANDI file
@pytest.fixture(scope="module")
def dandi_test_file(shared_data) -> Path:
    return shared_data / "sub-Jenkins_ses-small_desc-test_ecephys.nwb"


def test_dandi_test_split_imports_at_nlb_window(dandi_test_file, tmp_path):
    # The test split stores only -250..+450 ms around each onset (units/obs_intervals).
    data = import_nwb(dandi_test_file, window_ms=(-250.0, 450.0))
    assert data.spikes.shape == (100, 140, 107)
    assert data.align_event == "move_onset" and data.t0_ms == -250.0 and data.bin_ms == 5.0
    assert (data.trial_info["split"] == "test").all()
    assert not data.heldout_neurons.any()
    assert data.behavior == {}
    with h5py.File(dandi_test_file, "r") as f:
        bounds = np.r_[0, f["units/spike_times_index"][:]]
        times = f["units/spike_times"][:]
        onsets = f["intervals/trials/move_onset_time"][:]
        assert np.array_equal(data.neuron_ids, f["units/id"][:])
        assert np.array_equal(data.trial_info["trial_id"], f["intervals/trials/id"][:])
    unit = int(np.argmax(np.diff(bounds)))  # the busiest unit, on one of its trials
    unit_times = times[bounds[unit]:bounds[unit + 1]]
    trial = 42
    expected = _expected_counts((unit_times - onsets[trial]) * 1e3, window=(-250.0, 450.0))
    assert expected.sum() > 10
    assert np.array_equal(data.spikes[trial, :, unit], expected)
    assert data.spikes.sum() == len(times)  # every spike lies in some trial's observed segment
    assert "DANDI:000140" in data.provenance.source and data.provenance.licence == "CC-BY-4.0"
    assert "Churchland" in data.provenance.citation and "Pei" in data.provenance.citation
    data.save(tmp_path / "test_split.h5")
    assert np.array_equal(load_dataset(tmp_path / "test_split.h5").spikes, data.spikes)


def test_dandi_test_split_rejects_window_beyond_observed_segments(dandi_test_file):
    with pytest.raises(DataError, match="observed from -250 to 450 ms") as err:
        import_nwb(dandi_test_file)  # default -200..+500 runs 50 ms past every segment
    assert err.value.path == str(dandi_test_file) and err.value.field == "window_ms"


# ---------------------------------------------------------------------- planted MC_Maze layout
REL_SPIKES_MS = np.array([-250.0, -200.5, -200.0, -197.5, -150.0, 0.0, 2.5, 4.999, 5.0, 250.0, 499.5, 500.0, 620.0])
MAZE_TRIALS = [  # start, onset, split, trial_type, trial_version, active_target
    (0.0, 0.5, "train", 1, 0, 1),
    (1.5, 2.1, "val", 1, 0, 0),
    (3.0, 3.5, "test", 1, 0, 1),
    (4.5, np.nan, "train", 1, 0, 0),  # failed trial: no movement onset
    (6.0, 6.6, "train", 2, 1, 1),
    (7.5, 8.3, "train", 2, 1, 0),  # window ends 8.8 s, after the recording (8.5 s)
]
HELDOUT = [False, True, False, True]
UNIT_IDS = [10, 11, 12, 13]
END_S = 8.5


def _targets(i: int) -> np.ndarray:
    return np.array([[10.0 * i, -3.0], [40.0 + i, 25.0 - 2 * i]])


@pytest.fixture(scope="module")
def maze_file(tmp_path_factory) -> Path:
    nwb = _nwb()
    nwb.add_unit_column("heldout", "held out in NLB")
    onsets = np.array([t[1] for t in MAZE_TRIALS])
    for u, (uid, heldout) in enumerate(zip(UNIT_IDS, HELDOUT)):
        # unit u fires the planted pattern u + 1 times per trial
        times = np.sort(np.concatenate([o + np.repeat(REL_SPIKES_MS, u + 1) / 1e3 for o in onsets if np.isfinite(o)]))
        nwb.add_unit(spike_times=times, heldout=heldout, id=uid)
    for name in ("move_onset_time", "go_cue_time", "split", "trial_type", "trial_version", "active_target"):
        nwb.add_trial_column(name, name)
    nwb.add_trial_column("target_pos", "targets x, y", index=True)
    for i, (start, onset, split, kind, version, active) in enumerate(MAZE_TRIALS):
        nwb.add_trial(start_time=start, stop_time=start + 1.2, move_onset_time=onset, go_cue_time=onset - 0.3,
                      split=split, trial_type=kind, trial_version=version, active_target=active,
                      target_pos=_targets(i))
    t = np.arange(0, round(END_S * 1000)) / 1000
    behavior = nwb.create_processing_module("behavior", "hand and eye")
    hand_pos = SpatialSeries(name="hand_pos", data=np.c_[10 * t, 3 - 5 * t], timestamps=t,
                             reference_frame="screen centre", unit="mm")
    behavior.add(hand_pos)
    behavior.add(TimeSeries(name="hand_vel", data=np.tile([10.0, -5.0], (len(t), 1)), timestamps=hand_pos,
                            unit="mm/s"))
    behavior.add(TimeSeries(name="eye_pos", data=np.c_[t], starting_time=0.0, rate=1000.0, unit="mm"))
    return _write(nwb, tmp_path_factory.mktemp("maze") / "sub-Planted_ses-maze.nwb")


@pytest.fixture(scope="module")
def maze(maze_file):
    return import_nwb(maze_file)


KEPT = [0, 1, 2, 4]


def test_maze_spike_counts_match_planted(maze):
    assert maze.spikes.shape == (len(KEPT), 140, 4)
    for u in range(4):
        expected = (u + 1) * _expected_counts(REL_SPIKES_MS)
        for k in range(len(KEPT)):
            assert np.array_equal(maze.spikes[k, :, u], expected), (k, u)
    # the edge cases: -200 opens bin 0, +500 is outside, 4.999 and 5.0 straddle an edge
    assert maze.spikes[0, 0, 0] == 2 and maze.spikes[0, 40, 0] == 3 and maze.spikes[0, 41, 0] == 1


def test_maze_neurons_splits_and_dropped_trials(maze):
    assert np.array_equal(maze.neuron_ids, UNIT_IDS)
    assert np.array_equal(maze.heldout_neurons, HELDOUT)
    info = maze.trial_info
    assert info["trial_id"].tolist() == KEPT
    assert info["split"].tolist() == ["train", "valid", "test", "train"]
    assert info["condition_id"].tolist() == [0, 0, 0, 1]
    assert not info["heldout_condition"].any()
    starts, onsets = (np.array([MAZE_TRIALS[i][j] for i in KEPT]) for j in (0, 1))
    assert np.allclose(info["start_ms"], (starts - onsets) * 1e3) and np.allclose(info["go_cue_ms"], -300.0)
    description = maze.provenance.description
    assert "1 trials with NaN move_onset_time" in description
    assert "1 trials whose window leaves the observed recording" in description


def test_maze_start_target_and_angle(maze):
    info = maze.trial_info
    onsets = np.array([MAZE_TRIALS[i][1] for i in KEPT])
    targets = np.array([_targets(i)[MAZE_TRIALS[i][5]] for i in KEPT])
    # the file is in mm; the dataset in cm, the targets (in the hand's frame) converted with the hand
    assert np.allclose(info["start_x"], onsets) and np.allclose(info["start_y"], 0.3 - 0.5 * onsets)
    assert np.allclose(info[["target_x", "target_y"]], targets / 10)
    expected = np.arctan2(targets[:, 1] - (3 - 5 * onsets), targets[:, 0] - 10 * onsets)
    assert np.allclose(info["reach_angle"], expected)


def test_maze_behaviour_bin_means(maze):
    onsets = np.array([MAZE_TRIALS[i][1] for i in KEPT])
    centre = onsets[:, None] + (WINDOW[0] + BIN * np.arange(140) + 2.0)[None, :] / 1e3  # mean of 5 samples
    assert set(maze.behavior) == {"hand_pos", "hand_vel", "eye_pos"}
    assert maze.behavior["hand_pos"].dtype == np.float32
    assert np.allclose(maze.behavior["hand_pos"][..., 0], centre, atol=1e-5)  # mm in the file, cm here
    assert np.allclose(maze.behavior["hand_pos"][..., 1], 0.3 - 0.5 * centre, atol=1e-5)
    assert np.allclose(maze.behavior["hand_vel"], [1.0, -0.5])
    assert np.allclose(maze.behavior["eye_pos"][..., 0], centre / 10, atol=1e-6)
    assert maze.behavior_units == {"hand_pos": "cm", "hand_vel": "cm/s", "eye_pos": "cm"}


def test_maze_round_trips_through_save(maze, tmp_path):
    maze.save(tmp_path / "maze.h5")
    back = load_dataset(tmp_path / "maze.h5")
    assert np.array_equal(back.spikes, maze.spikes)
    assert np.array_equal(back.heldout_neurons, maze.heldout_neurons)
    assert np.array_equal(back.neuron_ids, maze.neuron_ids)
    for name in maze.behavior:
        assert np.array_equal(back.behavior[name], maze.behavior[name])
    assert back.behavior_units == maze.behavior_units
    assert back.trial_info.columns.tolist() == maze.trial_info.columns.tolist()
    assert back.trial_info["split"].tolist() == maze.trial_info["split"].tolist()
    assert np.allclose(back.trial_info["reach_angle"], maze.trial_info["reach_angle"])
    assert back.provenance == maze.provenance and (back.t0_ms, back.bin_ms) == (-200.0, 5.0)


def test_other_binning(maze_file):
    data = import_nwb(maze_file, bin_ms=10.0, window_ms=(-100.0, 300.0))
    assert data.spikes.shape == (5, 40, 4) and data.t0_ms == -100.0  # the last trial now fits (ends 8.6 s)
    assert np.array_equal(data.spikes[0, :, 0], _expected_counts(REL_SPIKES_MS, (-100.0, 300.0), 10.0))


# ---------------------------------------------------------------------- planted MC_RTT layout
CHANGES_S = np.array([1.0, 3.0, 5.0, 7.0, 8.6])
ONSETS_S = CHANGES_S + np.array([0.2505, 0.3005, 0.2205, 0.3505, 0.1505])
RTT_TARGETS = np.array([[50.0, 0.0], [50.0, 40.0], [0.0, 40.0], [-30.0, -20.0], [0.0, 0.0]])
SIGMA_S = 0.05
RTT_END_S = 9.0


def test_align_to_another_trial_event(maze_file, maze):
    go = import_nwb(maze_file, window_ms=(-100.0, 500.0), align="go_cue_time")
    assert go.align_event == "go_cue" and "aligned to go_cue_time" in go.provenance.description
    # the go cue is 300 ms before movement onset, so the hand is where it was 300 ms earlier
    onset = maze.trial_info.set_index("trial_id")["start_x"]
    go_start = go.trial_info.set_index("trial_id")["start_x"]
    shared = onset.index.intersection(go_start.index)
    assert len(shared) >= 3 and np.allclose(go_start[shared], onset[shared] - 0.3, atol=1e-3)
    assert np.allclose(import_nwb(maze_file, align="go_cue").trial_info["start_x"], go.trial_info["start_x"])
    with pytest.raises(DataError, match="alignment event not in the trials table") as err:
        import_nwb(maze_file, align="reward")
    assert "go_cue_time" in str(err.value) and "move_onset_time" in str(err.value)


def _rtt_hand(t: np.ndarray):
    """Gaussian speed profiles that cross 20 % of peak exactly at each planted onset."""
    pos, vel = np.zeros((len(t), 2)), np.zeros((len(t), 2))
    previous = np.zeros(2)
    for onset, target in zip(ONSETS_S, RTT_TARGETS):
        peak_t = onset + SIGMA_S * np.sqrt(2 * np.log(5))
        z = (t - peak_t) / SIGMA_S
        step = target - previous
        pos += step * (0.5 * (1 + np.vectorize(erf)(z / np.sqrt(2))))[:, None]
        vel += step * (np.exp(-z**2 / 2) / (SIGMA_S * np.sqrt(2 * np.pi)))[:, None]
        previous = target
    return pos, vel


@pytest.fixture(scope="module", params=["finger_vel", "derivative"])
def rtt_file(request, tmp_path_factory) -> Path:
    nwb = _nwb("rtt")
    rng = np.random.default_rng(0)
    for _ in range(3):
        nwb.add_unit(spike_times=np.sort(rng.uniform(0, RTT_END_S, 200)))
    nwb.add_trial_column("split", "NLB split")
    for start, split in [(0.0, "train"), (2.0, "val"), (4.0, "test")]:
        nwb.add_trial(start_time=start, stop_time=start + 2.0, split=split)
    t = np.arange(0, round(RTT_END_S * 1000)) / 1000
    pos, vel = _rtt_hand(t)
    target = np.zeros((len(t), 2))
    for change, goal in zip(CHANGES_S, RTT_TARGETS):
        target[t >= change - 1e-9] = goal
    behavior = nwb.create_processing_module("behavior", "cursor and finger")
    cursor = TimeSeries(name="cursor_pos", data=pos, timestamps=t, unit="mm")
    behavior.add(cursor)
    behavior.add(TimeSeries(name="target_pos", data=target, timestamps=cursor, unit="mm"))
    if request.param == "finger_vel":
        behavior.add(TimeSeries(name="finger_vel", data=vel, timestamps=cursor, unit="mm/s"))
    return _write(nwb, tmp_path_factory.mktemp("rtt") / f"rtt_{request.param}.nwb")


def test_rtt_reaches_found_at_planted_onsets(rtt_file):
    data = import_nwb(rtt_file)
    info = data.trial_info
    kept = slice(0, 4)  # the last reach's window runs past the end of the recording
    assert info["trial_id"].tolist() == [0, 1, 2, 3]
    onset_ms = (ONSETS_S - CHANGES_S)[kept] * 1e3
    assert np.all(np.abs(-info["target_change_ms"] - onset_ms) < BIN)
    starts = _rtt_hand(ONSETS_S[kept])[0]  # 3.6 % of the way along: the onset is at 20 % of peak speed
    assert np.allclose(info[["start_x", "start_y"]], starts / 10, atol=0.02)  # mm in the file, cm here
    assert np.allclose(info[["target_x", "target_y"]], RTT_TARGETS[kept] / 10)
    step = RTT_TARGETS[kept] - starts
    assert np.allclose(info["reach_angle"], np.arctan2(step[:, 1], step[:, 0]), atol=0.05)
    assert info["split"].tolist() == ["train", "valid", "test", "train"]  # 7.35 s lies in no trial
    assert info["condition_id"].tolist() == [2, 3, 1, 0]  # distinct targets, sorted
    assert {"hand_pos", "hand_vel", "cursor_pos", "target_pos"} <= set(data.behavior)
    assert data.behavior_units["hand_vel"] == "cm/s"
    assert np.allclose(data.behavior["hand_pos"], data.behavior["cursor_pos"])
    assert not data.heldout_neurons.any()
    assert "1 trials whose window leaves the observed recording" in data.provenance.description


# ---------------------------------------------------------------------- errors
def test_not_hdf5(tmp_path):
    path = tmp_path / "notes.nwb"
    path.write_text("not an nwb file")
    with pytest.raises(DataError, match="not an HDF5 file") as err:
        import_nwb(path)
    assert err.value.path == str(path)


def test_hdf5_but_not_nwb(tmp_path):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(DataError, match="not NWB") as err:
        import_nwb(path)
    assert err.value.path == str(path)


def test_nwb_without_units(tmp_path):
    nwb = _nwb()
    nwb.add_trial(start_time=0.0, stop_time=1.0)
    path = _write(nwb, tmp_path / "no_units.nwb")
    with pytest.raises(DataError, match="no units table") as err:
        import_nwb(path)
    assert err.value.path == str(path) and err.value.field == "units"


def test_units_without_spike_times(tmp_path):
    nwb = _nwb()
    nwb.add_unit_column("quality", "sorting quality")
    nwb.add_unit(quality=1.0)
    path = _write(nwb, tmp_path / "no_spikes.nwb")
    with pytest.raises(DataError, match="no spike times") as err:
        import_nwb(path)
    assert err.value.path == str(path) and err.value.field == "units/spike_times"


def test_nwb_without_trials_or_behaviour(tmp_path):
    nwb = _nwb()
    nwb.add_unit(spike_times=[0.1, 0.2])
    path = _write(nwb, tmp_path / "no_trials.nwb")
    with pytest.raises(DataError, match="no trials to align") as err:
        import_nwb(path)
    assert err.value.path == str(path)


def test_window_not_whole_bins(maze_file):
    with pytest.raises(DataError, match="whole") as err:
        import_nwb(maze_file, window_ms=(-200.0, 502.0))
    assert err.value.field == "window_ms" and err.value.path == str(maze_file)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        import_nwb(tmp_path / "absent.nwb")


def test_cli_imports_the_dandi_test_split(dandi_test_file, tmp_path):
    out = tmp_path / "test_split.h5"
    result = subprocess.run(
        [sys.executable, "-m", "gnocchi_core.cli", "data", "import", str(dandi_test_file),
         "--window", "-250", "450", "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    data = load_dataset(out)
    assert (data.n_trials, data.n_neurons, data.n_bins) == (100, 107, 140)
    assert "--window -250 450" in data.provenance.command
    # the default window does not fit this file: one line that says which window does
    result = subprocess.run([sys.executable, "-m", "gnocchi_core.cli", "data", "import", str(dandi_test_file),
                             "--out", str(tmp_path / "x.h5")], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "use --window -250 450" in result.stderr and not (tmp_path / "x.h5").exists()
