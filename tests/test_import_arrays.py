"""Bring your own recording: MATLAB / NumPy arrays → TrialData, with labels and splits derived."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from gnocchi_core import DataError, TrialData, load_dataset
from gnocchi_core.cli import main
from gnocchi_core.data.kinematics import speed_onsets, to_cm
from gnocchi_core.data.labels import condition_ids, derive_splits
from gnocchi_core.data.readiness import has_conditions, has_reaches, readiness

import recordings


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recordings")
    return {"continuous": recordings.continuous_mat(folder / "m1.mat", n_bins=3000),
            "struct": recordings.struct_mat(folder / "trials.mat", n_trials=70),
            "npz": recordings.trials_npz(folder / "reaches.npz")}


COMMANDS = {  # the README's commands for each shape
    "continuous": ["--spikes", "spike_counts", "--units-axis", "0", "--time", "time", "--behavior", "hand_pos=pos:m",
                   "--behavior", "hand_vel=vel:m/s", "--segment", "speed-onset", "--window", "-200", "600"],
    "struct": ["--spikes", "trials.spikes", "--condition", "trials.condition", "--bin-ms", "20"],
    "npz": ["--spikes", "spikes", "--bin-ms", "10", "--behavior", "hand_pos=hand_pos:mm", "--condition", "target",
            "--segment", "speed-onset", "--window", "-100", "300"],
}


def _import(files, shape, tmp_path, capsys, *extra):
    out = tmp_path / f"{shape}.h5"
    assert main(["data", "import", str(files[shape]), *COMMANDS[shape], *extra, "--out", str(out)]) == 0
    capsys.readouterr()
    return load_dataset(out), out


def test_continuous_mat_is_cut_into_reaches_at_speed_onsets(files, tmp_path, capsys):
    data, out = _import(files, "continuous", tmp_path, capsys)
    assert data.bin_ms == 50 and data.t0_ms == -200 and data.n_bins == 16 and data.n_neurons == 171
    assert data.align_event == "move_onset" and data.behavior_units == {"hand_pos": "cm", "hand_vel": "cm/s"}
    assert data.behavior["hand_pos"].shape == (data.n_trials, 16, 3)
    # reaches of the planted 10 cm: in cm now, ending 10 cm from where they start (or at the centre)
    reach = np.hypot(data.trial_info["target_x"] - data.trial_info["start_x"],
                     data.trial_info["target_y"] - data.trial_info["start_y"])
    assert np.median(reach) > 8 and data.behavior["hand_pos"][..., :2].max() <= 10.01
    # the hand is still before onset and moving after it
    speed = np.linalg.norm(data.behavior["hand_vel"][..., :2], axis=-1)
    assert speed[:, :3].mean() < 0.2 * speed[:, 5:12].mean()
    assert has_reaches(data) and has_conditions(data) and all(v is None for v in readiness(data).values())
    counts = data.trial_info["split"].value_counts()
    assert counts["train"] > counts["test"] > 0 and counts["valid"] > 0
    assert "k-means" in data.provenance.derived and "split derived stratified" in data.provenance.derived


def test_struct_array_of_binary_trains_is_rebinned_and_labelled(files, tmp_path, capsys):
    data, out = _import(files, "struct", tmp_path, capsys)
    raw = __import__("scipy.io").io.loadmat(files["struct"])["trials"]
    first = raw["spikes"][0, 0]  # units × ms, 0/1
    assert data.n_trials == 70 and data.n_neurons == 61 and data.bin_ms == 20 and data.t0_ms == 0
    assert data.n_bins == min(raw["spikes"][0, i].shape[1] for i in range(70)) // 20
    np.testing.assert_array_equal(data.spikes[0, :, :], first[:, : data.n_bins * 20].reshape(61, -1, 20).sum(-1).T)
    assert data.trial_info["condition"].tolist()[:3] == ["left", "right", "up"]
    names = sorted(recordings.CONDITIONS)
    assert [names[i] for i in data.trial_info["condition_id"]] == data.trial_info["condition"].tolist()
    assert not data.behavior and has_conditions(data) and not has_reaches(data)
    for split in ("train", "valid", "test"):  # stratified: every condition in every split
        assert data.trial_info.loc[data.trial_info["split"] == split, "condition_id"].nunique() == 7
    assert main(["data", "check", str(out)]) == 0
    text = capsys.readouterr().out
    assert "neural-only evaluation" in text and "no reach panel" in text


def test_npz_trials_aligned_to_movement_onset(files, tmp_path, capsys):
    data, _ = _import(files, "npz", tmp_path, capsys)
    assert data.n_bins == 40 and data.t0_ms == -100 and data.behavior_units["hand_pos"] == "cm"
    ends = data.trial_info[["target_x", "target_y"]].to_numpy()
    angle = data.trial_info["target"].to_numpy() * np.pi / 4
    np.testing.assert_allclose(ends, 8 * np.column_stack([np.cos(angle), np.sin(angle)]), atol=0.3)  # 80 mm = 8 cm
    assert np.abs(data.trial_info[["start_x", "start_y"]].to_numpy()).max() < 0.5
    assert data.trial_info["condition_id"].nunique() == 8 and "hand_vel differentiated" in data.provenance.description


def test_info_says_what_was_derived(files, tmp_path, capsys):
    _, out = _import(files, "struct", tmp_path, capsys)
    assert main(["data", "info", str(out)]) == 0
    assert "derived      condition_id enumerates the 7 distinct values of condition" in capsys.readouterr().out


def test_arrays_in_python(files):
    raw = np.load(files["npz"])
    data = TrialData.from_arrays(raw["spikes"], bin_ms=20, source_bin_ms=10, conditions=raw["target"],
                                 behavior={"hand_pos": (raw["hand_pos"], "mm")}, seed=3)
    assert data.n_bins == 30 and data.behavior["hand_pos"].shape == (160, 30, 2)
    np.testing.assert_array_equal(data.spikes[:, 0], raw["spikes"][:, 0] + raw["spikes"][:, 1])
    np.testing.assert_allclose(data.behavior["hand_pos"][:, 0], raw["hand_pos"][:, :2].mean(1) / 10, rtol=1e-5)
    again = TrialData.from_arrays(raw["spikes"], bin_ms=20, source_bin_ms=10, conditions=raw["target"], seed=3)
    assert data.trial_info["split"].tolist() == again.trial_info["split"].tolist()  # seeded


def test_continuous_in_python_with_given_onsets():
    rng = np.random.default_rng(0)
    counts = rng.poisson(1.0, (4000, 7))
    data = TrialData.from_continuous(counts, bin_ms=10, onsets=[50, 900, 3990], window_ms=(-100, 200),
                                     conditions=["a", "b", "c"])
    assert data.n_trials == 2 and "1 dropped" in data.provenance.description  # the last window leaves the recording
    np.testing.assert_array_equal(data.spikes[1], counts[890:920])
    assert data.trial_info["condition"].tolist() == ["a", "b"]


def test_matlab_v73_files_are_read_through_hdf5(tmp_path, capsys):
    path = tmp_path / "v73.mat"
    rng = np.random.default_rng(1)
    counts = rng.poisson(2.0, (120, 9, 30))  # trials × units × bins, as MATLAB sees it
    with h5py.File(path, "w", userblock_size=512) as f:
        f["spikes"] = counts.T  # MATLAB writes column-major: h5py sees the axes reversed
        f["cond"] = (np.arange(120) % 4 + 1).astype(float)[None, :].T
    out = tmp_path / "v73.h5"
    assert main(["data", "import", str(path), "--spikes", "spikes", "--units-axis", "1", "--bin-ms", "25",
                 "--condition", "cond", "--out", str(out)]) == 0
    data = load_dataset(out)
    np.testing.assert_array_equal(data.spikes, counts.transpose(0, 2, 1))
    assert data.trial_info["condition_id"].tolist()[:5] == [0, 1, 2, 3, 0]


def test_units_speed_onsets_and_splits():
    assert to_cm(np.array([1.0]), "m")[1] == "cm" and to_cm(np.array([1.0]), "m")[0][0] == 100
    assert to_cm(np.array([5.0]), "mm/s")[0][0] == 0.5 and to_cm(np.array([5.0]), "mm/s")[1] == "cm/s"
    assert to_cm(np.array([5.0]), "N")[1] == "N"  # not a length: unchanged
    t = np.arange(3000)
    planted = np.array([400, 1300, 2200])
    speed = sum(np.exp(-0.5 * ((t - p - 60) / 20.0) ** 2) for p in planted)  # peaks 60 samples after onset
    found = speed_onsets(speed, threshold=0.2, min_separation=300)
    assert np.all(np.abs(found - (planted + 60 - 36)) <= 1)  # 20 % of the peak is 1.79 s.d. before it
    ids, names = condition_ids(["b", "a", "b ", "c"])
    assert ids.tolist() == [1, 0, 1, 2] and names == ["a", "b", "c"]
    split, note = derive_splits(np.repeat(np.arange(5), 20), valid_fraction=0.15, test_fraction=0.2, seed=0)
    assert (split == "test").sum() == 20 and (split == "valid").sum() == 15 and "stratified" in note


@pytest.mark.parametrize("args, message", [
    (["--spikes", "nope"], "not in the file (expected one of its variables, found pos, spike_counts, time, vel)"),
    (["--spikes", "spike_counts", "--time", "time"], "a continuous recording needs trials to be cut"),
    (["--spikes", "spike_counts"], "the sample interval is unknown"),
    (["--spikes", "spike_counts", "--time", "time", "--bin-ms", "75", "--segment", "speed-onset"],
     "bin width must be a whole multiple of the recording's sample interval"),
    (["--spikes", "spike_counts", "--time", "time", "--segment", "speed-onset"], "cannot find movement onsets"),
    (["--spikes", "spike_counts.x"], "not a struct"),
    (["--spikes", "spike_counts", "--time", "time", "--behavior", "hand_pos"], "expected NAME=KEY[:UNIT]"),
])
def test_bad_imports_say_what_is_wrong(files, tmp_path, capsys, args, message):
    out = tmp_path / "bad.h5"
    assert main(["data", "import", str(files["continuous"]), *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not out.exists()


def test_import_refuses_to_overwrite_its_input(files, capsys):
    before = files["npz"].read_bytes()
    assert main(["data", "import", str(files["npz"]), "--spikes", "spikes", "--bin-ms", "10",
                 "--out", str(files["npz"])]) == 2
    assert "is an input of this command (SRC)" in capsys.readouterr().err and files["npz"].read_bytes() == before


def test_splits_given_in_the_file_are_kept(tmp_path, capsys):
    rng = np.random.default_rng(2)
    split = np.array(["train", "val", "test", "train"] * 10)
    path = tmp_path / "given.npz"
    np.savez(path, spikes=rng.poisson(1.0, (40, 25, 6)), split=split, cue=np.arange(40) % 2)
    out = tmp_path / "given.h5"
    assert main(["data", "import", str(path), "--spikes", "spikes", "--bin-ms", "5", "--split", "split",
                 "--condition", "cue", "--out", str(out)]) == 0
    data = load_dataset(out)
    assert data.trial_info["split"].tolist() == [{"val": "valid"}.get(s, s) for s in split]
    assert "split derived" not in data.provenance.derived
    np.savez(path, spikes=rng.poisson(1.0, (40, 25, 6)), split=np.array(["train", "holdout"] * 20))
    assert main(["data", "import", str(path), "--spikes", "spikes", "--bin-ms", "5", "--split", "split",
                 "--out", str(out)]) == 2
    assert "exists; pass --force to replace it" in capsys.readouterr().err
    assert main(["data", "import", str(path), "--spikes", "spikes", "--bin-ms", "5", "--split", "split",
                 "--out", str(out), "--force"]) == 2
    assert "unknown split names" in capsys.readouterr().err and load_dataset(out).n_trials == 40  # kept as it was
