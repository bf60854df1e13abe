"""Bad input at the API boundary: a corpus of wrong values, files and folders, each of which must raise a
GnocchiError that is also a ValueError, with a message naming the field (and the file, when there is one),
and leave every file it read byte-identical.

The models are the shipped ones (assets/models/gnocchi, assets/models/lfads): loaded once, and copied into
a temporary folder for each case that damages one of their files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from gnocchi_core import DataError, GnocchiError, TrialData, load_dataset, load_model
from gnocchi_core.analysis.decoding import BehaviourDecoder
from gnocchi_core.data.lfads_h5 import export_lfads, import_lfads
from gnocchi_core.errors import ArgumentError, ConfigError, ModelFileError
from gnocchi_core.models.gnocchi import GnocchiConfig
from gnocchi_core.models.lfads import LfadsConfig
from gnocchi_core.models.training import TrainConfig
from gnocchi_core.workflows import load_decoder

from conftest import make_trialdata

torch.set_num_threads(1)

MODELS = Path(__file__).resolve().parents[1] / "assets" / "models"
NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def models():
    return {kind: load_model(MODELS / kind, device="cpu") for kind in ("gnocchi", "lfads")}


class Env:
    """What a case may use: a fresh temporary folder and the loaded models."""

    def __init__(self, tmp: Path, models: dict):
        self.tmp, self.models = tmp, models
        self.gnocchi, self.lfads = models["gnocchi"], models["lfads"]


CASES = []
#: how a message names what is wrong: a field or argument, or (for a wrong whole input) what was expected
NAMED = re.compile(r"(field|argument) '[^']+'|expected a JSON object|not an HDF5 file|truncated or corrupt|not found|"
                   r"not a safe, readable checkpoint|not a checkpoint|not valid JSON|not a text file|"
                   r"not a trained model folder|weights do not match the model.s config \(.*size mismatch for")


def case(name: str, error: type, pattern: str, prepare):
    """``prepare(env) -> (call, files)``: ``call()`` must raise ``error`` matching ``pattern``; ``files``
    (read by the call) must be unchanged afterwards, and the message must name the first of them."""
    CASES.append(pytest.param(prepare, error, pattern, id=name))


def memory(name: str, error: type, pattern: str, call):
    """A case without files: ``call(env)``."""
    case(name, error, pattern, lambda env: (lambda: call(env), []))


def _digest(paths: list[Path]) -> dict[str, str]:
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file()))]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


@pytest.mark.parametrize("prepare, error, pattern", CASES)
def test_bad_input_is_a_clear_error(prepare, error, pattern, tmp_path, models):
    call, files = prepare(Env(tmp_path, models))
    before = _digest(files)
    with pytest.raises(error) as caught:
        call()
    err = caught.value
    assert isinstance(err, GnocchiError) and isinstance(err, ValueError), type(err).__mro__
    text = str(err)
    assert re.search(pattern, text), f"{pattern!r} not in {text!r}"
    assert "\n" not in text
    assert NAMED.search(text), f"message names no field: {text}"
    if files:
        assert str(files[0]) in text, f"message does not name {files[0]}: {text}"
    assert _digest(files) == before, "an input file was modified"


# ---------------------------------------------------------------------- TrialData(...)
SPIKES = np.ones((3, 4, 2), dtype=np.int64)


def trials(**overrides):
    return TrialData(**({"spikes": SPIKES, "bin_ms": 5.0, "t0_ms": 0.0, "trial_info": None} | overrides))


def _td(name, pattern, **overrides):
    memory(f"trialdata-{name}", DataError, pattern, lambda env: trials(**overrides))


_td("t0-nan", r"field 't0_ms'.*found nan", t0_ms=NAN)
_td("t0-inf", r"field 't0_ms'.*found inf", t0_ms=INF)
_td("t0-string", r"field 't0_ms'.*found '0'", t0_ms="0")
_td("t0-none", r"field 't0_ms'", t0_ms=None)
_td("bin-string", r"field 'bin_ms'.*found '5'", bin_ms="5")
_td("bin-nan", r"field 'bin_ms'.*found nan", bin_ms=NAN)
_td("bin-inf", r"field 'bin_ms'", bin_ms=INF)
_td("bin-negative", r"field 'bin_ms'.*> 0.*-5", bin_ms=-5)
_td("bin-bool", r"field 'bin_ms'.*True", bin_ms=True)
_td("bin-complex", r"field 'bin_ms'", bin_ms=5 + 1j)
_td("bin-array", r"field 'bin_ms'.*array", bin_ms=np.array([5.0, 5.0]))
_td("spikes-complex", r"field 'spikes'.*complex", spikes=SPIKES + 1j)
_td("spikes-strings", r"field 'spikes'.*numeric", spikes=SPIKES.astype(str))
_td("spikes-bool", r"field 'spikes'.*bool", spikes=SPIKES.astype(bool))
_td("spikes-ragged", r"field 'spikes'.*cannot be read as an array", spikes=[[[1, 2]], [[1]]])
_td("spikes-2d", r"field 'spikes'.*3-D", spikes=np.ones((3, 4)))
_td("spikes-inf", r"field 'spikes'.*NaN or inf", spikes=np.full((3, 4, 2), INF))
_td("spikes-fractional", r"field 'spikes'.*whole numbers", spikes=np.full((3, 4, 2), 0.5))
_td("spikes-negative", r"field 'spikes'.*non-negative", spikes=-SPIKES)
_td("spikes-no-neurons", r"field 'spikes'.*no bins or no neurons", spikes=np.ones((3, 4, 0)))
_td("rates-bool", r"field 'rates'.*bool", rates=np.ones((3, 4, 2), bool))
_td("rates-complex", r"field 'rates'.*complex", rates=np.ones((3, 4, 2), complex))
_td("rates-nan", r"field 'rates'.*NaN", rates=np.full((3, 4, 2), NAN))
_td("rates-inf", r"field 'rates'.*inf", rates=np.full((3, 4, 2), INF))
_td("rates-negative", r"field 'rates'.*non-negative", rates=-np.ones((3, 4, 2)))
_td("rates-shape", r"field 'rates'.*\(3, 4, 2\)", rates=np.ones((3, 4, 3)))
_td("behaviour-complex", r"field 'behavior/hand_pos'.*complex", behavior={"hand_pos": np.ones((3, 4, 2), complex)})
_td("behaviour-strings", r"field 'behavior/hand_pos'.*numeric", behavior={"hand_pos": np.full((3, 4, 2), "x")})
_td("behaviour-inf", r"field 'behavior/hand_pos'.*infinite", behavior={"hand_pos": np.full((3, 4, 2), -INF)})
_td("behaviour-bins", r"field 'behavior/hand_pos'.*\(3, 4, dims\)", behavior={"hand_pos": np.ones((3, 5, 2))})
_td("behaviour-list", r"field 'behavior'.*dict", behavior=[np.ones((3, 4, 2))])
_td("behaviour-units-number", r"field 'behavior_units/hand_pos'", behavior={"hand_pos": np.ones((3, 4, 2))},
    behavior_units={"hand_pos": 3})
_td("heldout-length", r"field 'heldout_neurons'.*\(2,\)", heldout_neurons=[True, False, True])
_td("heldout-strings", r"field 'heldout_neurons'.*booleans", heldout_neurons=np.array(["False", "True"]))
_td("heldout-not-01", r"field 'heldout_neurons'.*booleans", heldout_neurons=[0, 2])
_td("neuron-ids-fractional", r"field 'neuron_ids'.*whole numbers", neuron_ids=[1.5, 2.0])
_td("neuron-ids-length", r"field 'neuron_ids'", neuron_ids=[1, 2, 3])
_td("condition-strings", r"field 'trial_info/condition_id'.*'a'", trial_info={"condition_id": ["a", "b", "c"]})
_td("condition-nan", r"field 'trial_info/condition_id'.*whole numbers", trial_info={"condition_id": [1.0, NAN, 2.0]})
_td("heldout-condition-strings", r"field 'trial_info/heldout_condition'",
    trial_info={"heldout_condition": ["no", "no", "yes"]})
_td("start-strings", r"field 'trial_info/start_x'", trial_info={"start_x": ["1.5", "2", "3"]})
_td("trial-info-rows", r"field 'trial_info'.*3 rows", trial_info={"split": ["train", "test"]})
_td("trial-info-split", r"field 'trial_info/split'", trial_info={"split": ["train", "val", "test"]})
_td("latents-inf", r"field 'latents'.*infinite", latents=np.full((3, 4, 1), INF))
_td("align-event-number", r"field 'align_event'", align_event=5)
_td("provenance-dict", r"field 'provenance'", provenance={"source": "x"})


# ---------------------------------------------------------------------- load_dataset(file)
def _dataset_file(env) -> Path:
    path = env.tmp / "data.h5"
    make_trialdata(n_trials=6, n_bins=5, n_neurons=3).save(path)
    return path


def _h5(edit):
    def damage(path):
        with h5py.File(path, "a") as f:
            edit(f)
    return damage


def _replace(name, values):
    def edit(f):
        del f[name]
        f.create_dataset(name, data=values)
    return edit


def _set_attr(name, value, where="/"):
    def edit(f):
        f[where].attrs[name] = value
    return edit


def _truncate(path):
    path.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])


def _load(name, pattern, damage):
    def prepare(env):
        path = _dataset_file(env)
        damage(path)
        return (lambda: load_dataset(path)), [path]
    case(f"load-dataset-{name}", DataError, pattern, prepare)


_load("not-hdf5", "not an HDF5 file", lambda p: p.write_text("spikes,bins\n1,2\n"))
_load("empty", "not an HDF5 file", lambda p: p.write_bytes(b""))
_load("truncated", "truncated or corrupt", _truncate)
_load("wrong-format", r"field 'format'.*'gnocchi-trialdata'", _h5(_set_attr("format", "nwb")))
_load("format-array", r"field 'format'", _h5(_set_attr("format", np.array([1, 2]))))
_load("schema-string", r"field 'schema_version'", _h5(_set_attr("schema_version", "one")))
_load("missing-spikes", r"field 'spikes'.*missing", _h5(lambda f: f.__delitem__("spikes")))
_load("missing-bin-ms", r"field 'bin_ms'.*missing", _h5(lambda f: f.attrs.__delitem__("bin_ms")))
_load("bin-ms-string", r"field 'bin_ms'.*'ten'", _h5(_set_attr("bin_ms", "ten")))
_load("t0-nan", r"field 't0_ms'.*nan", _h5(_set_attr("t0_ms", NAN)))
_load("spikes-strings", r"field 'spikes'.*numeric", _h5(_replace("spikes", np.full((6, 5, 3), "1").astype("S1"))))
_load("spikes-group", r"field 'spikes'.*group", _h5(lambda f: (f.__delitem__("spikes"), f.create_group("spikes"))))
_load("behaviour-dataset", r"field 'behavior'.*group", _h5(_replace("behavior", np.ones(3))))
_load("column-2d", r"field 'trial_info/start_x'.*one value per trial", _h5(_replace("trial_info/start_x", np.ones((6, 2)))))
_load("column-length", r"field 'trial_info/start_x'.*\(6,\)", _h5(_replace("trial_info/start_x", np.ones(4))))
_load("columns-attr-text", r"field 'trial_info/columns'", _h5(_set_attr("columns", 5, where="trial_info")))
_load("rates-nan", r"field 'rates'.*NaN", _h5(_replace("rates", np.full((6, 5, 3), NAN))))
_load("heldout-fractions", r"field 'heldout_neurons'.*booleans", _h5(_replace("heldout_neurons", [0.5, 0.0, 1.0])))
_load("condition-strings", r"field 'trial_info/condition_id'",
      _h5(_replace("trial_info/condition_id", np.array([b"a"] * 6))))


def _missing_file(env):
    path = env.tmp / "absent.h5"
    return (lambda: load_dataset(path)), []


case("load-dataset-missing-file", DataError, r"absent\.h5: file not found", _missing_file)

# ---------------------------------------------------------------------- load_model(folder)
class _Payload:
    """Pickles to a call that would create a folder, the way a malicious checkpoint runs code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _copy(env, kind: str) -> Path:
    folder = env.tmp / kind
    shutil.copytree(MODELS / kind, folder)
    return folder


def _json(name: str, edit):
    """Damage ``name`` (a JSON file of the folder) with ``edit(obj) -> obj``."""
    def damage(folder):
        path = folder / name
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))
        return path
    return damage


def _without(*keys):
    def edit(obj):
        node = obj
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]
        return obj
    return edit


def _setting(value, *keys):
    def edit(obj):
        node = obj
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
        return obj
    return edit


def _raw(name: str, content: bytes):
    def damage(folder):
        (folder / name).write_bytes(content)
        return folder / name
    return damage


def _weights(edit):
    def damage(folder):
        path = folder / "model.pt"
        torch.save(edit(torch.load(path, weights_only=True)), path)
        return path
    return damage


def _folder(name, kind, error, pattern, damage, call=lambda folder: load_model(folder, device="cpu")):
    """A copy of the shipped ``kind`` model with one file damaged (``damage(folder) -> that file``)."""
    def prepare(env):
        folder = _copy(env, kind)
        damaged = damage(folder)
        return (lambda: call(folder)), [damaged, folder]
    case(f"load-model-{kind}-{name}", error, pattern, prepare)


def _truncated_weights(folder):
    path = folder / "model.pt"
    path.write_bytes(path.read_bytes()[:100_000])
    return path


def _deleted(name):
    def damage(folder):
        (folder / name).unlink()
        return folder
    return damage


_folder("config-list", "gnocchi", ModelFileError, r"not a model's config.*list", _json("config.json", lambda c: [c]))
_folder("config-not-json", "lfads", ModelFileError, "not valid JSON", _raw("config.json", b'{"kind": "lfads",'))
_folder("config-binary", "gnocchi", ModelFileError, "not a text file", _raw("config.json", b"\xff\xfe\x00\x81"))
_folder("config-no-config", "gnocchi", ModelFileError, r"field 'config'.*missing", _json("config.json", _without("config")))
_folder("config-no-data", "lfads", ModelFileError, r"field 'data'.*missing", _json("config.json", _without("data")))
_folder("config-no-kind", "lfads", ModelFileError, r"field 'kind'.*missing", _json("config.json", _without("kind")))
_folder("config-no-preprocessing", "gnocchi", ModelFileError, r"field 'preprocessing'.*missing",
        _json("config.json", _without("preprocessing")))
_folder("config-unknown-kind", "gnocchi", ModelFileError, r"field 'kind'.*unknown model kind 'vae'",
        _json("config.json", _setting("vae", "kind")))
_folder("config-kind-list", "gnocchi", ModelFileError, r"field 'kind'", _json("config.json", _setting(["gnocchi"], "kind")))
_folder("config-future-format", "lfads", ModelFileError, r"field 'format_version'.*99",
        _json("config.json", _setting(99, "format_version")))
_folder("config-negative-lr", "gnocchi", ConfigError, r"config field 'train\.lr'.*> 0.*-0\.1",
        _json("config.json", _setting(-0.1, "config", "train", "lr")))
_folder("config-unknown-field", "lfads", ConfigError, r"config field 'ic_size': unknown field",
        _json("config.json", _setting(3, "config", "ic_size")))
_folder("config-code-dim-string", "gnocchi", ConfigError, r"config field 'code_dim'.*'16'",
        _json("config.json", _setting("16", "config", "code_dim")))
_folder("data-bins-string", "lfads", ModelFileError, r"field 'data\.n_bins'.*'70'",
        _json("config.json", _setting("70", "data", "n_bins")))
_folder("data-no-bin-ms", "gnocchi", ModelFileError, r"field 'data\.bin_ms'.*missing",
        _json("config.json", _without("data", "bin_ms")))
_folder("data-no-heldout", "lfads", ModelFileError, r"field 'data\.heldout_neurons'.*missing",
        _json("config.json", _without("data", "heldout_neurons")))
_folder("data-heldout-length", "lfads", ModelFileError, r"field 'data\.heldout_neurons'.*120",
        _json("config.json", _setting([False] * 3, "data", "heldout_neurons")))
_folder("preprocessing-mean-length", "gnocchi", ModelFileError, r"field 'preprocessing\.mean'.*120",
        _json("config.json", _setting([0.0], "preprocessing", "mean")))
_folder("preprocessing-std-zero", "gnocchi", ModelFileError, r"field 'preprocessing\.std'.*> 0",
        _json("config.json", _setting([0.0] * 120, "preprocessing", "std")))
_folder("preprocessing-missing-key", "gnocchi", ModelFileError, r"field 'preprocessing'.*fields",
        _json("config.json", _without("preprocessing", "sqrt")))
_folder("clip-string", "gnocchi", ModelFileError, r"field 'clip_x0'.*'big'", _json("config.json", _setting("big", "clip_x0")))
_folder("channels-changed", "gnocchi", ModelFileError, r"model\.pt.*weights do not match",
        lambda f: (_json("config.json", _setting(32, "config", "channels"))(f), f / "model.pt")[1])
_folder("weights-missing", "gnocchi", ModelFileError, r"checkpoint not found", _deleted("model.pt"))
_folder("weights-truncated", "lfads", ModelFileError, r"not a safe, readable checkpoint", _truncated_weights)
_folder("weights-empty", "gnocchi", ModelFileError, r"not a safe, readable checkpoint", _raw("model.pt", b""))
_folder("weights-list", "lfads", ModelFileError, r"not a checkpoint.*list", _weights(lambda w: [w["net"]]))
_folder("weights-no-net", "lfads", ModelFileError, r"field 'net'", _weights(lambda w: {"mixture": w["mixture"]}))
_folder("weights-no-mixture", "gnocchi", ModelFileError, r"field 'mixture'", _weights(lambda w: {k: v for k, v in w.items()
                                                                                             if k != "mixture"}))
_folder("mixture-wrong-size", "lfads", ModelFileError, r"field 'mixture\.means'.*100-D",
        _weights(lambda w: w | {"mixture": w["mixture"] | {"means": w["mixture"]["means"][:, :3]}}))
_folder("mixture-nan", "gnocchi", ModelFileError, r"field 'mixture\.cholesky'",
        _weights(lambda w: w | {"mixture": w["mixture"] | {"cholesky": w["mixture"]["cholesky"] * NAN}}))
_folder("no-folder-config", "gnocchi", ModelFileError, r"not a trained model folder", _deleted("config.json"))


def _malicious(env):
    folder = _copy(env, "lfads")
    marker = env.tmp / "pwned"
    torch.save({"net": _Payload(str(marker))}, folder / "model.pt")

    def call():
        try:
            load_model(folder, device="cpu")
        finally:
            assert not marker.exists(), "the pickle ran code"
    return call, [folder / "model.pt", folder]


case("load-model-malicious-pickle", ModelFileError, r"not a safe, readable checkpoint", _malicious)

# decoder.json: workflows.load_decoder reads it
_folder("decoder-empty", "gnocchi", ModelFileError, r"decoder\.json: field 'weights'.*missing",
        _raw("decoder.json", b"{}"), call=lambda f: load_decoder(f, None))
_folder("decoder-no-intercept", "lfads", ModelFileError, r"field 'intercept'.*missing",
        _json("decoder.json", _without("intercept")), call=lambda f: load_decoder(f, None))
_folder("decoder-not-json", "gnocchi", ModelFileError, r"decoder\.json: not valid JSON",
        _raw("decoder.json", b"weights: 1"), call=lambda f: load_decoder(f, None))
_folder("decoder-list", "gnocchi", ModelFileError, r"decoder\.json.*JSON object", _raw("decoder.json", b"[]"),
        call=lambda f: load_decoder(f, None))
_folder("decoder-weights-strings", "lfads", ModelFileError, r"field 'weights'.*numbers",
        _json("decoder.json", _setting([["a", "b"]], "weights")), call=lambda f: load_decoder(f, None))

# ---------------------------------------------------------------------- BehaviourDecoder.from_dict
_DECODER = json.loads((MODELS / "gnocchi" / "decoder.json").read_text())
for _name, _params, _pattern in [
    ("empty", {}, r"field 'weights'.*missing"),
    ("list", [], r"JSON object"),
    ("no-alpha", {k: v for k, v in _DECODER.items() if k != "alpha"}, r"field 'alpha'.*missing"),
    ("negative-alpha", _DECODER | {"alpha": -1}, r"field 'alpha'.*≥ 0"),
    ("outputs-length", _DECODER | {"outputs": ["hand_pos_x"]}, r"field 'outputs'.*4 names"),
    ("intercept-length", _DECODER | {"intercept": [0.0]}, r"field 'intercept'.*4 finite"),
    ("weights-nan", _DECODER | {"weights": [[NAN] * 4] * 120}, r"field 'weights'.*finite"),
    ("source", _DECODER | {"source": "magic"}, r"field 'source'.*'magic'"),
    ("fit-r2-string", _DECODER | {"fit_r2": "good"}, r"field 'fit_r2'"),
]:
    memory(f"decoder-from-dict-{_name}", ModelFileError, _pattern, lambda env, p=_params: BehaviourDecoder.from_dict(p))

# ---------------------------------------------------------------------- GnocchiConfig / LfadsConfig / TrainConfig
for _name, _params, _pattern in [
    ("unknown-train-field", {"train": {"fastness": 1}}, r"config field 'train\.fastness': unknown field"),
    ("train-string", {"train": "fast"}, r"config field 'train': expected an object.*'fast'"),
    ("list", [{"code_dim": 4}], r"not a config: expected a JSON object"),
    ("code-dim-string", {"code_dim": "16"}, r"config field 'code_dim': expected an integer ≥ 1, found '16'"),
    ("code-dim-fraction", {"code_dim": 2.5}, r"config field 'code_dim'.*2\.5"),
    ("code-dim-bool", {"code_dim": True}, r"config field 'code_dim'.*True"),
    ("batch-size-zero", {"train": {"batch_size": 0}}, r"config field 'train\.batch_size': expected an integer ≥ 1, found 0"),
    ("epochs-zero", {"train": {"epochs": 0}}, r"config field 'train\.epochs': expected an integer ≥ 1, found 0"),
    ("lr-negative", {"train": {"lr": -1e-3}}, r"config field 'train\.lr': expected a number > 0"),
    ("lr-nan", {"train": {"lr": NAN}}, r"config field 'train\.lr'.*nan"),
    ("seed-negative", {"train": {"seed": -1}}, r"config field 'train\.seed'.*0\.\.4294967295"),
    ("checkpoint-every-zero", {"train": {"checkpoint_every": 0}}, r"config field 'train\.checkpoint_every'"),
    ("ema-one", {"train": {"ema_decay": 1.0}}, r"config field 'train\.ema_decay'.*\[0, 1\)"),
    ("min-lr-fraction", {"train": {"min_lr_fraction": 2}}, r"config field 'train\.min_lr_fraction'.*\[0, 1\]"),
    ("dropout-one", {"dropout": 1.0}, r"config field 'dropout'.*\[0, 1\)"),
    ("space", {"space": "pixels"}, r"config field 'space' must be one of \('latent', 'rates'\)"),
    ("schedule", {"schedule": "quadratic"}, r"config field 'schedule' must be one of"),
    ("positional-odd", {"positional": 3}, r"config field 'positional'.*even"),
    ("cond-dim-odd", {"cond_dim": 33}, r"config field 'cond_dim'.*even"),
    ("bandwidths-empty", {"mmd_bandwidths": []}, r"config field 'mmd_bandwidths'.*non-empty"),
    ("bandwidths-negative", {"mmd_bandwidths": [1.0, -1.0]}, r"config field 'mmd_bandwidths'.*> 0"),
    ("sample-steps-too-many", {"sample_steps": 2000}, r"config field 'sample_steps'.*1\.\.diffusion_steps \(1000\)"),
    ("sample-steps-zero", {"sample_steps": 0}, r"config field 'sample_steps'.*≥ 1"),
    ("ae-epochs-zero", {"ae_epochs": 0}, r"config field 'ae_epochs'.*latent"),
    ("sqrt-string", {"sqrt": "yes"}, r"config field 'sqrt': expected true or false"),
    ("guidance-negative", {"guidance": -1}, r"config field 'guidance'.*≥ 0"),
    ("unknown-field", {"code_dimm": 4}, r"config field 'code_dimm': unknown field; did you mean 'code_dim'"),
]:
    memory(f"gnocchi-config-{_name}", ConfigError, _pattern, lambda env, p=_params: GnocchiConfig.from_dict(p))

for _name, _params, _pattern in [
    ("unknown-train-field", {"train": {"fast": True}}, r"config field 'train\.fast': unknown field"),
    ("train-list", {"train": [1]}, r"config field 'train': expected an object"),
    ("list", [], r"not a config"),
    ("ci-enc-negative", {"ci_enc_dim": -1}, r"config field 'ci_enc_dim': expected an integer ≥ 0, found -1"),
    ("co-dim-fraction", {"co_dim": 2.5}, r"config field 'co_dim'.*2\.5"),
    ("ic-dim-zero", {"ic_dim": 0}, r"config field 'ic_dim': expected an integer ≥ 1, found 0"),
    ("cd-rate-one", {"cd_rate": 1.0}, r"config field 'cd_rate'.*\[0, 1\)"),
    ("batch-size-string", {"train": {"batch_size": "64"}}, r"config field 'train\.batch_size'.*'64'"),
    ("posterior-samples-negative", {"posterior_samples": -1}, r"config field 'posterior_samples'"),
    ("loss-scale-zero", {"loss_scale": 0}, r"config field 'loss_scale'.*> 0"),
    ("epochs-zero", {"train": {"epochs": 0}}, r"config field 'train\.epochs'.*≥ 1, found 0"),
]:
    memory(f"lfads-config-{_name}", ConfigError, _pattern, lambda env, p=_params: LfadsConfig.from_dict(p))

memory("config-file-named", ConfigError, r"^cfg\.json: config field 'train\.batch_size'",
       lambda env: GnocchiConfig.from_dict({"train": {"batch_size": 0}}, path="cfg.json"))
memory("train-config-direct", ConfigError, r"config field 'batch_size'.*found 0", lambda env: TrainConfig(batch_size=0))
memory("gnocchi-config-direct", ConfigError, r"config field 'code_dim'", lambda env: GnocchiConfig(code_dim=0))
memory("lfads-config-direct", ConfigError, r"config field 'fac_dim'", lambda env: LfadsConfig(fac_dim=-3))

# ---------------------------------------------------------------------- encode
def _counts(value=0, shape=(2, 70, 120), dtype=np.float64):
    return np.full(shape, value, dtype=dtype)


for _kind in ("gnocchi", "lfads"):
    for _name, _trials, _pattern in [
        ("nan", _counts(NAN), r"field 'trials'.*NaN or inf"),
        ("inf", _counts(INF), r"field 'trials'.*NaN or inf"),
        ("negative", _counts(-1), r"field 'trials'.*non-negative"),
        ("fractional", _counts(0.5), r"field 'trials'.*whole numbers"),
        ("wrong-bins", _counts(0, (2, 69, 120)), r"field 'trials'.*70 bins, 120 neurons.*\(2, 69, 120\)"),
        ("wrong-ndim", _counts(0, (1, 2, 70, 120)), r"field 'trials'.*\(1, 2, 70, 120\)"),
        ("strings", _counts("1", dtype=object).astype(str), r"field 'trials'.*numeric"),
        ("complex", _counts(1, dtype=complex), r"field 'trials'.*numeric"),
        ("no-trials", _counts(0, (0, 70, 120)), r"field 'trials'.*zero trials"),
    ]:
        memory(f"encode-{_kind}-{_name}", DataError, _pattern, lambda env, k=_kind, t=_trials: env.models[k].encode(t))

memory("encode-lfads-seed", ArgumentError, r"argument 'seed'",
       lambda env: env.lfads.encode(_counts(0), sample=True, seed=-5))

# ---------------------------------------------------------------------- generate / sample_prior
def _codes(env, kind, n=2):
    return np.zeros((n, env.models[kind].code_dim), np.float32)


for _kind in ("gnocchi", "lfads"):
    for _name, _error, _pattern, _call in [
        ("codes-nan", DataError, r"field 'codes'.*finite", lambda m, c: m.generate(c * NAN)),
        ("codes-inf", DataError, r"field 'codes'.*finite", lambda m, c: m.generate(c + INF)),
        ("codes-size", DataError, r"field 'codes'.*dimensions", lambda m, c: m.generate(c[:, :3])),
        ("codes-3d", DataError, r"field 'codes'.*dimensions", lambda m, c: m.generate(c[None])),
        ("codes-empty", DataError, r"field 'codes'.*no codes", lambda m, c: m.generate(c[:0])),
        ("codes-strings", DataError, r"field 'codes'.*real numbers", lambda m, c: m.generate(c.astype(str))),
        ("steps-zero", ArgumentError, r"argument 'steps'.*found 0", lambda m, c: m.generate(c, steps=0)),
        ("steps-negative", ArgumentError, r"argument 'steps'.*found -3", lambda m, c: m.generate(c, steps=-3)),
        ("seed-negative", ArgumentError, r"argument 'seed'.*-1", lambda m, c: m.generate(c, seed=-1)),
        ("seed-huge", ArgumentError, r"argument 'seed'.*4294967296", lambda m, c: m.generate(c, seed=2**32)),
        ("seed-fraction", ArgumentError, r"argument 'seed'.*1\.5", lambda m, c: m.generate(c, seed=1.5)),
        ("seed-string", ArgumentError, r"argument 'seed'.*'7'", lambda m, c: m.generate(c, seed="7")),
        ("guidance-negative", ArgumentError, r"argument 'guidance'.*≥ 0", lambda m, c: m.generate(c, guidance=-1.0)),
        ("guidance-nan", ArgumentError, r"argument 'guidance'.*nan", lambda m, c: m.generate(c, guidance=NAN)),
        ("prior-zero", ArgumentError, r"argument 'n'.*≥ 1, found 0", lambda m, c: m.sample_prior(0)),
        ("prior-negative", ArgumentError, r"argument 'n'.*found -2", lambda m, c: m.sample_prior(-2, kind="mixture")),
        ("prior-fraction", ArgumentError, r"argument 'n'.*2\.5", lambda m, c: m.sample_prior(2.5)),
        ("prior-string", ArgumentError, r"argument 'n'.*'3'", lambda m, c: m.sample_prior("3")),
        ("prior-kind", ArgumentError, r"argument 'kind'.*'uniform'.*'gaussian'", lambda m, c: m.sample_prior(2, kind="uniform")),
        ("prior-seed", ArgumentError, r"argument 'seed'", lambda m, c: m.sample_prior(2, seed=-1)),
    ]:
        memory(f"generate-{_kind}-{_name}", _error, _pattern,
               lambda env, k=_kind, f=_call: f(env.models[k], _codes(env, k)))

memory("generate-gnocchi-steps-too-many", ArgumentError, r"argument 'steps'.*1\.\.1000",
       lambda env: env.gnocchi.generate(_codes(env, "gnocchi"), steps=1001))
memory("generate-gnocchi-sampler", ArgumentError, r"argument 'sampler'.*'euler'",
       lambda env: env.gnocchi.generate(_codes(env, "gnocchi"), sampler="euler"))
memory("generate-gnocchi-eta", ArgumentError, r"argument 'eta'", lambda env: env.gnocchi.generate(_codes(env, "gnocchi"),
                                                                                            eta=-1.0))
memory("generate-gnocchi-noise-nan", DataError, r"field 'noise'.*finite",
       lambda env: env.gnocchi.generate(_codes(env, "gnocchi"), noise=np.full((2, 16, 70), NAN)))
memory("generate-gnocchi-noise-shape", DataError, r"field 'noise'.*\(2, 16, 70\)",
       lambda env: env.gnocchi.generate(_codes(env, "gnocchi"), noise=np.zeros((2, 16, 7))))
memory("generate-lfads-n-bins", ArgumentError, r"argument 'n_bins'.*found 0",
       lambda env: env.lfads.generate(_codes(env, "lfads"), n_bins=0))
memory("generate-lfads-inputs-shape", DataError, r"field 'noise'.*inferred inputs",
       lambda env: env.lfads.generate(_codes(env, "lfads"), noise=np.zeros((2, 70, 3))))

# ---------------------------------------------------------------------- import_lfads(file)
def _lfads_file(env) -> Path:
    path = env.tmp / "lfads.h5"
    export_lfads(make_trialdata(n_trials=9, n_bins=5, n_neurons=3), path)
    return path


def _meta(edit):
    def damage(f):
        f.attrs["gnocchi_meta"] = json.dumps(edit(json.loads(f.attrs["gnocchi_meta"])))
    return damage


def _lfads(name, pattern, damage, **kwargs):
    def prepare(env):
        path = _lfads_file(env)
        damage(path)
        return (lambda: import_lfads(path, **kwargs)), [path]
    case(f"import-lfads-{name}", DataError, pattern, prepare)


_lfads("meta-not-json", r"field 'gnocchi_meta'.*not valid JSON", _h5(_set_attr("gnocchi_meta", "{bin_ms: 5")))
_lfads("meta-list", r"field 'gnocchi_meta'.*JSON object", _h5(_set_attr("gnocchi_meta", "[1, 2]")))
_lfads("meta-number", r"field 'gnocchi_meta'.*JSON string", _h5(_set_attr("gnocchi_meta", 5)))
_lfads("meta-no-bin-ms", r"field 'gnocchi_meta/bin_ms'.*missing", _h5(_meta(_without("bin_ms"))))
_lfads("meta-bin-ms-string", r"field 'gnocchi_meta/bin_ms'.*'10'", _h5(_meta(_setting("10", "bin_ms"))))
_lfads("meta-neuron-order", r"field 'gnocchi_meta/recon_neuron_order'.*permutation",
       _h5(_meta(_setting([0, 0, 1], "recon_neuron_order"))))
_lfads("meta-behaviour-fields", r"field 'gnocchi_meta/behavior_fields'.*4 dims",
       _h5(_meta(_setting([["hand_pos", 2]], "behavior_fields"))))
_lfads("meta-provenance-key", r"field 'gnocchi_meta/provenance'.*unknown keys",
       _h5(_meta(_setting({"source": "x", "author": "me"}, "provenance"))))
_lfads("trial-info-length", r"field 'gnocchi_trial_info/split'.*9 values",
       _h5(lambda f: f.attrs.__setitem__("gnocchi_trial_info", json.dumps({"split": ["train"] * 4}))))
_lfads("missing-valid-recon", r"field 'valid_recon_data'.*missing", _h5(lambda f: f.__delitem__("valid_recon_data")))
_lfads("encod-2d", r"field 'train_encod_data'.*shape", _h5(_replace("train_encod_data", np.ones((3, 5)))))
_lfads("conversion-negative", r"field 'conversion_factor'.*positive", _h5(_replace("conversion_factor", -1.0)))
_lfads("truncated", r"truncated or corrupt", _truncate)
_lfads("not-hdf5", r"not an HDF5 file", lambda p: p.write_text("not hdf5"))
_lfads("foreign-bin-string", r"field 'bin_ms'", _h5(lambda f: [f.attrs.__delitem__(k) for k in ("gnocchi_meta",
                                                                                             "gnocchi_trial_info")]),
       bin_ms="ten")


# ---------------------------------------------------------------------- the corpus itself, and what still works
def test_the_corpus_is_large_and_distinct():
    ids = [p.id for p in CASES]
    assert len(ids) >= 80 and len(set(ids)) == len(ids), len(ids)


def test_good_values_still_pass(models, tmp_path):
    """What the checks must not refuse: integral floats for integers, held-out columns LFADS never reads, NaN
    behaviour (missing samples), 0/1 flags, the default (None) sampler settings."""
    assert GnocchiConfig.from_dict({"train": {"epochs": 5.0}, "mmd_bandwidths": [1, 2]}).train.epochs == 5
    assert LfadsConfig.from_dict({"ci_enc_dim": 0, "co_dim": 0}).use_controller is False
    lfads = models["lfads"]
    counts = np.zeros((2, 70, 120))
    counts[:, :, np.asarray(lfads.data_info["heldout_neurons"])] = np.nan
    assert lfads.encode(counts).shape == (2, 100)
    data = trials(heldout_neurons=[1, 0], behavior={"hand_pos": np.full((3, 4, 2), NAN)}, t0_ms=np.float32(-5))
    assert data.heldout_neurons.tolist() == [True, False] and data.t0_ms == -5.0
    gnocchi = models["gnocchi"]
    code = gnocchi.sample_prior(1, seed=np.int64(3))
    assert gnocchi.generate(code[0], steps=2, seed=0).rates.shape == (1, 70, 120)
