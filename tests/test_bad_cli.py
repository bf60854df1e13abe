"""The bad-input corpus, command line half: every case exits 2 with one line on stderr that names the
file or option and what was expected, no traceback, and every file it was given is byte-identical after.
(The API half is tests/test_bad_api.py.)"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from gnocchi_core.cli import main
from gnocchi_core.data.synthetic import SynthConfig, synthesize
from gnocchi_core.models.gnocchi import GnocchiConfig, GnocchiModel
from gnocchi_core.models.lfads import LfadsConfig, LfadsModel
from gnocchi_core.models.training import TrainConfig

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    """A folder of good and bad inputs: a dataset, two tiny models trained on it, and broken files."""
    root = tmp_path_factory.mktemp("inputs")
    data = synthesize(SynthConfig(n_trials=60, n_neurons=12, n_heldout_neurons=2, grid=3, seed=0))
    data.save(root / "data.h5")
    train = TrainConfig(epochs=2, batch_size=32, warmup_steps=2, patience=1000)
    GnocchiModel(GnocchiConfig(code_dim=3, channels=8, cond_dim=8, encoder_channels=8, sample_steps=2, latent_dim=3,
                               ae_channels=8, ae_epochs=1, train=train), device="cpu").fit(
        data, root / "gnocchi", progress=False)
    LfadsModel(LfadsConfig(ic_enc_dim=8, ci_enc_dim=0, con_dim=0, co_dim=0, ic_dim=4, gen_dim=8, fac_dim=3,
                           posterior_samples=2, prior_components=2, train=train), device="cpu").fit(
        data, root / "lfads", progress=False)
    data.subset(neurons=list(range(11))).save(root / "other.h5")  # one neuron fewer: no model fits it
    info = data.trial_info.copy()
    info["condition_id"], info[["start_x", "start_y", "target_x", "target_y"]] = -1, np.nan
    type(data)(spikes=data.spikes, bin_ms=data.bin_ms, t0_ms=data.t0_ms, trial_info=info).save(root / "bare.h5")
    info["split"] = "train"  # and no valid trials to validate on
    type(data)(spikes=data.spikes, bin_ms=data.bin_ms, t0_ms=data.t0_ms, trial_info=info).save(root / "novalid.h5")
    (root / "text.txt").write_text("not a recording\n")
    (root / "empty.h5").write_bytes(b"")
    raw = (root / "data.h5").read_bytes()
    (root / "truncated.h5").write_bytes(raw[: len(raw) // 2])
    with h5py.File(root / "plain.h5", "w") as f:
        f["x"] = np.arange(3)
    with h5py.File(root / "schema.h5", "w") as f:
        f.attrs["format"], f.attrs["schema_version"] = "gnocchi-trialdata", 99
    (root / "folder").mkdir()
    (root / "out_exists.h5").write_bytes(b"keep me")
    np.save(root / "codes.npy", np.zeros((3, 3), np.float32))
    np.save(root / "nan_codes.npy", np.full((3, 3), np.nan, np.float32))
    np.save(root / "codes_1d.npy", np.zeros(3, np.float32))
    np.save(root / "wide_codes.npy", np.zeros((3, 7), np.float32))
    np.save(root / "object.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(root / "arrays.npz", spikes=np.full((20, 30, 4), 2, np.int16), label=np.arange(20) % 2,
             short=np.arange(5), ragged=np.ones((20, 29, 4)))
    np.savez(root / "continuous.npz", counts=np.full((500, 4), 2, np.int16), time=np.arange(500) * 0.01,
             pos=np.zeros((500, 2)))
    np.savez(root / "object.npz", spikes=np.array([np.ones(3), np.ones(4)], dtype=object))
    for name, content in {"list.json": [1, 2], "fast.json": {"train": "fast"}, "unknown.json": {"colour": 3},
                          "unknown_train.json": {"train": {"speed": 1}}, "batch0.json": {"train": {"batch_size": 0}},
                          "string.json": {"code_dim": "big"}, "lr.json": {"train": {"lr": -1}},
                          "space.json": {"space": "pixels"}}.items():
        (root / name).write_text(json.dumps(content))
    (root / "broken.json").write_text("{not json")
    (root / "garbage.pt").write_bytes(b"\x80\x04not a checkpoint")
    (root / "interrupted").mkdir()
    shutil.copy(root / "gnocchi" / "config.json", root / "not_a_model.json")
    return root


TRAIN = ["train", "gnocchi", "--data", "{d}/data.h5", "--device", "cpu", "--out"]
LF = ["train", "lfads", "--data", "{d}/data.h5", "--device", "cpu", "--out"]
GEN = ["generate", "--model", "{d}/gnocchi", "--device", "cpu"]
EVAL = ["evaluate", "--data", "{d}/data.h5", "--model", "{d}/gnocchi", "--device", "cpu"]
IMP = ["data", "import"]

CASES = [
    # ---------------------------------------------------------------- data info / check
    ("info-missing", ["data", "info", "{d}/nope.h5"], "nope.h5: file not found"),
    ("info-folder", ["data", "info", "{d}/folder"], "is a folder"),
    ("info-empty", ["data", "info", "{d}/empty.h5"], "not an HDF5 file"),
    ("info-text", ["data", "info", "{d}/text.txt"], "not an HDF5 file"),
    ("info-truncated", ["data", "info", "{d}/truncated.h5"], "truncated.h5.*(truncated|corrupt|not an HDF5)"),
    ("info-plain-h5", ["data", "info", "{d}/plain.h5"], "not a GNOCCHI dataset"),
    ("info-schema", ["data", "info", "{d}/schema.h5"], "schema_version"),
    ("info-npz", ["data", "info", "{d}/arrays.npz"], "not an HDF5 file"),
    ("info-no-file", ["data", "info"], "required: file"),
    ("check-missing", ["data", "check", "{d}/nope.h5"], "file not found"),
    ("check-text", ["data", "check", "{d}/text.txt"], "not an HDF5 file"),
    ("check-folder", ["data", "check", "{d}/folder"], "is a folder"),
    # ---------------------------------------------------------------- data import
    ("import-missing", IMP + ["{d}/nope.mat", "--out", "{d}/o.h5"], "nope.mat: file not found"),
    ("import-folder", IMP + ["{d}/folder", "--out", "{d}/o.h5"], "folder"),
    ("import-guess", IMP + ["{d}/text.txt", "--out", "{d}/o.h5"], "cannot tell the format"),
    ("import-mat-text", IMP + ["{d}/text.txt", "--format", "mat", "--spikes", "x", "--out", "{d}/o.h5"],
     "not a readable MATLAB file"),
    ("import-npz-text", IMP + ["{d}/text.txt", "--format", "npz", "--spikes", "x", "--out", "{d}/o.h5"],
     "not a NumPy .npz file"),
    ("import-npz-pickle", IMP + ["{d}/object.npz", "--spikes", "spikes", "--out", "{d}/o.h5"], "without pickle"),
    ("import-no-spikes", IMP + ["{d}/arrays.npz", "--out", "{d}/o.h5"], "needs --spikes KEY"),
    ("import-bad-key", IMP + ["{d}/arrays.npz", "--spikes", "spks", "--out", "{d}/o.h5"],
     "field 'spks': not in the file.*spikes"),
    ("import-not-struct", IMP + ["{d}/arrays.npz", "--spikes", "spikes.x", "--out", "{d}/o.h5"], "not a struct"),
    ("import-no-interval", IMP + ["{d}/arrays.npz", "--spikes", "spikes", "--out", "{d}/o.h5"],
     "sample interval is unknown"),
    ("import-continuous-uncut", IMP + ["{d}/continuous.npz", "--spikes", "counts", "--time", "time",
                                       "--out", "{d}/o.h5"], "needs trials to be cut"),
    ("import-no-kinematics", IMP + ["{d}/continuous.npz", "--spikes", "counts", "--time", "time", "--segment",
                                    "speed-onset", "--out", "{d}/o.h5"], "cannot find movement onsets"),
    ("import-still-hand", IMP + ["{d}/continuous.npz", "--spikes", "counts", "--time", "time", "--behavior",
                                 "hand_pos=pos:cm", "--segment", "speed-onset", "--out", "{d}/o.h5"],
     "no window around an onset|no movement"),
    ("import-rebin", IMP + ["{d}/continuous.npz", "--spikes", "counts", "--time", "time", "--bin-ms", "15",
                            "--onsets", "time", "--out", "{d}/o.h5"], "whole multiple"),
    ("import-behavior-spec", IMP + ["{d}/arrays.npz", "--spikes", "spikes", "--bin-ms", "5", "--behavior", "pos",
                                    "--out", "{d}/o.h5"], "NAME=KEY"),
    ("import-behavior-key", IMP + ["{d}/arrays.npz", "--spikes", "spikes", "--bin-ms", "5", "--behavior",
                                   "hand_pos=nope:mm", "--out", "{d}/o.h5"], "field 'nope'"),
    ("import-behavior-shape", IMP + ["{d}/arrays.npz", "--spikes", "spikes", "--bin-ms", "5", "--behavior",
                                     "hand_pos=short:mm", "--out", "{d}/o.h5"], "one entry per trial|short"),
    ("import-behavior-bins", IMP + ["{d}/arrays.npz", "--spikes", "spikes", "--bin-ms", "5", "--behavior",
                                    "hand_pos=ragged:mm", "--out", "{d}/o.h5"], "does not match"),
    ("import-condition-length", IMP + ["{d}/arrays.npz", "--spikes", "spikes", "--bin-ms", "5", "--condition",
                                       "short", "--out", "{d}/o.h5"], "one label per trial"),
    ("import-split-names", IMP + ["{d}/arrays.npz", "--spikes", "spikes", "--bin-ms", "5", "--split", "label",
                                  "--out", "{d}/o.h5"], "unknown split names"),
    ("import-window", IMP + ["{d}/arrays.npz", "--spikes", "spikes", "--bin-ms", "5", "--window", "0", "500",
                             "--out", "{d}/o.h5"], "no trial holds the window"),
    ("import-units-axis", IMP + ["{d}/continuous.npz", "--spikes", "counts", "--units-axis", "2", "--time", "time",
                                 "--onsets", "time", "--out", "{d}/o.h5"], "units axis"),
    ("import-bin-text", IMP + ["{d}/arrays.npz", "--spikes", "spikes", "--bin-ms", "abc", "--out", "{d}/o.h5"],
     "invalid float value"),
    ("import-bin-negative", IMP + ["{d}/arrays.npz", "--spikes", "spikes", "--bin-ms", "-5", "--out", "{d}/o.h5"],
     "bin_ms|bin width"),
    ("import-fraction", IMP + ["{d}/arrays.npz", "--spikes", "spikes", "--bin-ms", "5", "--valid-fraction", "1.5",
                               "--out", "{d}/o.h5"], "valid_fraction"),
    ("import-out-is-input", IMP + ["{d}/arrays.npz", "--spikes", "spikes", "--bin-ms", "5", "--out",
                                   "{d}/arrays.npz"], "is an input of this command"),
    ("import-out-folder", IMP + ["{d}/arrays.npz", "--spikes", "spikes", "--bin-ms", "5", "--out", "{d}/folder"],
     "is a folder"),
    ("import-out-exists", IMP + ["{d}/arrays.npz", "--spikes", "spikes", "--bin-ms", "5", "--out",
                                 "{d}/out_exists.h5"], "exists; pass --force"),
    ("import-out-under-file", IMP + ["{d}/arrays.npz", "--spikes", "spikes", "--bin-ms", "5", "--out",
                                     "{d}/text.txt/o.h5"], "is a file, not a folder"),
    ("import-out-unwritable", IMP + ["{d}/arrays.npz", "--spikes", "spikes", "--bin-ms", "5", "--out",
                                     "/proc/gnocchi/o.h5"], "cannot write there"),
    ("import-nwb-plain", IMP + ["{d}/plain.h5", "--format", "nwb", "--out", "{d}/o.h5"], "not NWB"),
    ("import-nlb-plain", IMP + ["{d}/plain.h5", "--format", "nlb", "--out", "{d}/o.h5"], "not an NLB tensor file"),
    ("import-lfads-plain", IMP + ["{d}/plain.h5", "--format", "lfads", "--out", "{d}/o.h5"], "plain.h5"),
    ("import-lfads-truncated", IMP + ["{d}/truncated.h5", "--format", "lfads", "--out", "{d}/o.h5"],
     "truncated.h5"),
    ("import-format", IMP + ["{d}/arrays.npz", "--format", "csv", "--out", "{d}/o.h5"], "invalid choice"),
    # ---------------------------------------------------------------- data synth / export-lfads / simulate
    ("synth-trials", ["data", "synth", "--trials", "0", "--out", "{d}/o.h5"], "n_trials"),
    ("synth-neurons", ["data", "synth", "--neurons", "0", "--out", "{d}/o.h5"], "n_neurons"),
    ("synth-grid", ["data", "synth", "--grid", "1", "--out", "{d}/o.h5"], "grid"),
    ("synth-bin", ["data", "synth", "--bin-ms", "0", "--out", "{d}/o.h5"], "bin_ms"),
    ("synth-bin-nan", ["data", "synth", "--bin-ms", "nan", "--out", "{d}/o.h5"], "bin_ms"),
    ("synth-heldout-neurons", ["data", "synth", "--neurons", "5", "--heldout-neurons", "5", "--out", "{d}/o.h5"],
     "n_heldout_neurons"),
    ("synth-heldout-targets", ["data", "synth", "--heldout-targets", "99", "--out", "{d}/o.h5"], "heldout_targets"),
    ("synth-out-folder", ["data", "synth", "--out", "{d}/folder"], "is a folder"),
    ("synth-out-exists", ["data", "synth", "--out", "{d}/out_exists.h5"], "exists; pass --force"),
    ("export-missing", ["data", "export-lfads", "{d}/nope.h5", "--out", "{d}/o.h5"], "file not found"),
    ("export-out-is-input", ["data", "export-lfads", "{d}/data.h5", "--out", "{d}/data.h5"], "is an input"),
    ("export-out-folder", ["data", "export-lfads", "{d}/data.h5", "--out", "{d}/folder"], "is a folder"),
    ("export-out-exists", ["data", "export-lfads", "{d}/data.h5", "--out", "{d}/out_exists.h5"], "exists"),
    ("export-not-dataset", ["data", "export-lfads", "{d}/plain.h5", "--out", "{d}/o.h5"], "not a GNOCCHI dataset"),
    ("simulate-out-folder", ["data", "simulate", "--out", "{d}/folder", "--policy", "{d}/garbage.pt"], "is a folder"),
    ("simulate-out-exists", ["data", "simulate", "--out", "{d}/out_exists.h5", "--policy", "{d}/garbage.pt"],
     "exists"),
    ("simulate-garbage-policy", ["data", "simulate", "--out", "{d}/o.h5", "--policy", "{d}/garbage.pt"],
     "garbage.pt"),
    ("simulate-out-is-policy", ["data", "simulate", "--out", "{d}/garbage.pt", "--policy", "{d}/garbage.pt"],
     "is an input"),
    # ---------------------------------------------------------------- train
    ("train-data-missing", ["train", "gnocchi", "--data", "{d}/nope.h5", "--out", "{d}/m"], "file not found"),
    ("train-data-text", ["train", "gnocchi", "--data", "{d}/text.txt", "--out", "{d}/m"], "not an HDF5 file"),
    ("train-out-is-data", TRAIN + ["{d}/data.h5"], "is an input of this command"),
    ("train-out-is-file", TRAIN + ["{d}/text.txt"], "is a file; --out names a folder"),
    ("train-over-model", TRAIN + ["{d}/gnocchi"], "holds a trained model"),
    ("train-resume-nothing", TRAIN + ["{d}/interrupted", "--resume"], "nothing to resume"),
    ("train-config-missing", TRAIN + ["{d}/m", "--config", "{d}/nope.json"], "nope.json"),
    ("train-config-broken", TRAIN + ["{d}/m", "--config", "{d}/broken.json"], "not valid JSON"),
    ("train-config-list", TRAIN + ["{d}/m", "--config", "{d}/list.json"], "expected a JSON object"),
    ("train-config-train-string", TRAIN + ["{d}/m", "--config", "{d}/fast.json"], "field 'train' must be an object"),
    ("train-config-unknown", TRAIN + ["{d}/m", "--config", "{d}/unknown.json"], "colour"),
    ("train-config-unknown-train", TRAIN + ["{d}/m", "--config", "{d}/unknown_train.json"], "speed"),
    ("train-config-batch0", TRAIN + ["{d}/m", "--config", "{d}/batch0.json"], "batch_size"),
    ("train-config-string", TRAIN + ["{d}/m", "--config", "{d}/string.json"], "code_dim"),
    ("train-config-lr", TRAIN + ["{d}/m", "--config", "{d}/lr.json"], "lr"),
    ("train-config-space", TRAIN + ["{d}/m", "--config", "{d}/space.json"], "space"),
    ("train-epochs0", TRAIN + ["{d}/m", "--epochs", "0"], "epochs"),
    ("train-epochs-text", TRAIN + ["{d}/m", "--epochs", "ten"], "invalid int value"),
    ("train-minutes0", TRAIN + ["{d}/m", "--max-minutes", "0"], "max_minutes|max-minutes"),
    ("train-minutes-negative", TRAIN + ["{d}/m", "--max-minutes", "-1"], "max_minutes|max-minutes"),
    ("train-cuda", TRAIN + ["{d}/m", "--device", "cuda"], "CUDA is not available"),
    ("train-device", TRAIN + ["{d}/m", "--device", "quantum"], "device"),
    ("train-no-valid", ["train", "gnocchi", "--data", "{d}/novalid.h5", "--out", "{d}/m", "--epochs", "1"],
     "valid"),
    ("lfads-data-missing", ["train", "lfads", "--data", "{d}/nope.h5", "--out", "{d}/m"], "file not found"),
    ("lfads-out-is-data", LF + ["{d}/data.h5"], "is an input of this command"),
    ("lfads-over-model", LF + ["{d}/lfads"], "holds a trained model"),
    ("lfads-config-list", LF + ["{d}/m", "--config", "{d}/list.json"], "expected a JSON object"),
    ("lfads-config-unknown", LF + ["{d}/m", "--config", "{d}/unknown.json"], "colour"),
    ("lfads-config-batch0", LF + ["{d}/m", "--config", "{d}/batch0.json"], "batch_size"),
    ("lfads-epochs0", LF + ["{d}/m", "--epochs", "0"], "epochs"),
    ("lfads-plain-h5", ["train", "lfads", "--data", "{d}/plain.h5", "--out", "{d}/m"], "not a GNOCCHI dataset"),
    # ---------------------------------------------------------------- evaluate
    ("evaluate-data-missing", ["evaluate", "--data", "{d}/nope.h5", "--model", "{d}/gnocchi", "--out", "{d}/r"],
     "file not found"),
    ("evaluate-model-missing", ["evaluate", "--data", "{d}/data.h5", "--model", "{d}/nope", "--out", "{d}/r"],
     "nope"),
    ("evaluate-model-folder", ["evaluate", "--data", "{d}/data.h5", "--model", "{d}/folder", "--out", "{d}/r"],
     "folder"),
    ("evaluate-out-is-data", EVAL + ["--out", "{d}/data.h5"], "is an input of this command"),
    ("evaluate-out-is-model", EVAL + ["--out", "{d}/gnocchi"], "is an input of this command"),
    ("evaluate-out-is-file", EVAL + ["--out", "{d}/text.txt"], "is a file"),
    ("evaluate-names", EVAL + ["--name", "a", "--name", "b", "--out", "{d}/r"], "give one name per model"),
    ("evaluate-duplicate-names", EVAL + ["--model", "{d}/lfads", "--name", "x", "--name", "x", "--out", "{d}/r"],
     "unique"),
    ("evaluate-samples0", EVAL + ["--samples", "0", "--out", "{d}/r"], "samples"),
    ("evaluate-shape", ["evaluate", "--data", "{d}/other.h5", "--model", "{d}/gnocchi", "--out", "{d}/r"],
     "trained on .* neurons"),
    ("evaluate-bare", ["evaluate", "--data", "{d}/bare.h5", "--model", "{d}/gnocchi", "--out", "{d}/r"],
     "cannot be evaluated|train.*test"),
    # ---------------------------------------------------------------- generate
    ("generate-model-missing", ["generate", "--model", "{d}/nope", "--prior", "2", "--out", "{d}/o.h5"], "nope"),
    ("generate-model-not-folder", ["generate", "--model", "{d}/text.txt", "--prior", "2", "--out", "{d}/o.h5"],
     "text.txt"),
    ("generate-prior0", GEN + ["--prior", "0", "--out", "{d}/o.h5"], "--prior 0"),
    ("generate-prior-negative", GEN + ["--prior", "-3", "--out", "{d}/o.h5"], "--prior -3"),
    ("generate-codes-missing", GEN + ["--codes", "{d}/nope.npy", "--out", "{d}/o.h5"], "nope.npy"),
    ("generate-codes-nan", GEN + ["--codes", "{d}/nan_codes.npy", "--out", "{d}/o.h5", "--data", "{d}/data.h5"],
     "finite"),
    ("generate-codes-object", GEN + ["--codes", "{d}/object.npy", "--out", "{d}/o.h5"], "not a .npy array"),
    ("generate-codes-text", GEN + ["--codes", "{d}/text.txt", "--out", "{d}/o.h5"], "not a .npy array"),
    ("generate-codes-1d", GEN + ["--codes", "{d}/codes_1d.npy", "--out", "{d}/o.h5"], "2-D"),
    ("generate-codes-wide", GEN + ["--codes", "{d}/wide_codes.npy", "--out", "{d}/o.h5", "--data", "{d}/data.h5"],
     "code"),
    ("generate-navigate-no-data", GEN + ["--navigate", "target_x", "--out", "{d}/o.h5"], "needs --data"),
    ("generate-navigate-axis", GEN + ["--navigate", "elbow", "--data", "{d}/data.h5", "--out", "{d}/o.h5"],
     "unknown axis"),
    ("generate-navigate-bare", GEN + ["--navigate", "target_x", "--data", "{d}/bare.h5", "--out", "{d}/o.h5"],
     "target_x|missing"),
    ("generate-out-is-data", GEN + ["--prior", "2", "--data", "{d}/data.h5", "--out", "{d}/data.h5"],
     "is an input of this command"),
    ("generate-out-is-codes", GEN + ["--codes", "{d}/codes.npy", "--out", "{d}/codes.npy"], "is an input"),
    ("generate-out-is-lfads", GEN + ["--prior", "2", "--out", "{d}/o.h5", "--lfads", "{d}/o.h5"], "same file"),
    ("generate-out-folder", GEN + ["--prior", "2", "--out", "{d}/folder"], "is a folder"),
    ("generate-out-exists", GEN + ["--prior", "2", "--out", "{d}/out_exists.h5"], "exists; pass --force"),
    ("generate-lfads-exists", GEN + ["--prior", "2", "--out", "{d}/o.h5", "--lfads", "{d}/out_exists.h5"],
     "exists; pass --force"),
    ("generate-steps0", GEN + ["--prior", "2", "--steps", "0", "--out", "{d}/o.h5", "--data", "{d}/data.h5"],
     "steps"),
    ("generate-seed-negative", GEN + ["--prior", "2", "--seed", "-1", "--out", "{d}/o.h5"], "seed"),
    ("generate-seed-huge", GEN + ["--prior", "2", "--seed", "100000000000000000000", "--out", "{d}/o.h5"], "seed"),
    ("generate-points", GEN + ["--navigate", "target_x", "--data", "{d}/data.h5", "--points", "1", "--out",
                               "{d}/o.h5"], "--points 1"),
    ("generate-two-sources", GEN + ["--prior", "2", "--codes", "{d}/codes.npy", "--out", "{d}/o.h5"],
     "not allowed with"),
    # ---------------------------------------------------------------- bench
    ("bench-sample-model", ["bench", "sample", "--model", "{d}/nope", "--repeats", "1"], "nope"),
    ("bench-sample-steps0", ["bench", "sample", "--model", "{d}/gnocchi", "--steps", "0", "--repeats", "1"],
     "steps"),
    ("bench-quality-data", ["bench", "quality", "--model", "{d}/gnocchi", "--data", "{d}/nope.h5"], "not found"),
    ("bench-cobps-data", ["bench", "cobps", "--data", "{d}/nope.h5"], "not found"),
    ("bench-cobps-out-is-data", ["bench", "cobps", "--data", "{d}/data.h5", "--out", "{d}/data.h5"], "is an input"),
    ("bench-train-data", ["bench", "train", "lfads", "--data", "{d}/nope.h5"], "not found"),
    ("bench-unknown", ["bench", "fly"], "invalid choice"),
    # ---------------------------------------------------------------- explore
    ("explore-missing", ["explore", "{d}/nope.h5"], "file not found"),
    ("explore-text", ["explore", "{d}/text.txt"], "not an HDF5 file"),
    ("explore-no-valid", ["explore", "{d}/novalid.h5", "--models", "{d}/folder"], "cannot be explored.*valid"),
    ("explore-minutes", ["explore", "{d}/other.h5", "--models", "{d}/folder", "--max-minutes", "0"],
     "max-minutes"),
    ("explore-models-file", ["explore", "{d}/data.h5", "--models", "{d}/text.txt"], "text.txt"),
    ("explore-port", ["explore", "{d}/data.h5", "--port", "http"], "invalid int value"),
    # ---------------------------------------------------------------- the command itself
    ("unknown-command", ["fly"], "invalid choice"),
    ("unknown-option", ["data", "synth", "--out", "{d}/o.h5", "--colour", "red"], "unrecognized arguments"),
]


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("argv, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_touches_nothing(d, capsys, argv, message):
    import re

    before = _digest(d)
    try:
        code = main([a.replace("{d}", str(d)) for a in argv])
    except SystemExit as exit:  # argparse's usage errors
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err and ": error: " in err, err
    assert re.search(message, err), err
    assert _digest(d) == before  # no input changed, nothing written beside them
