"""Training that always leaves a model: a wall-clock budget, Ctrl-C, resuming with another epoch
count, and the temporary files a kill leaves behind.

Time is a fake clock (``time.monotonic``) that each validation moves on by a minute, so "an epoch
takes a minute" whatever the machine: which epoch a budget ends in is exact.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from gnocchi_core import GnocchiError, load_model
from gnocchi_core.data.synthetic import SynthConfig, synthesize
from gnocchi_core.models.gnocchi import GnocchiConfig, GnocchiModel
from gnocchi_core.models.lfads import LfadsConfig, LfadsModel
from gnocchi_core.models.training import TrainConfig, Trainer

torch.set_num_threads(1)

TRAIN = TrainConfig(epochs=1000, batch_size=32, warmup_steps=5, patience=1000, checkpoint_every=2)
GNOCCHI = GnocchiConfig(code_dim=4, channels=8, cond_dim=16, encoder_channels=8, sample_steps=3, prior_components=2,
                        latent_dim=4, ae_channels=8, ae_epochs=1000, diffusion_steps=100, train=TRAIN)
LFADS = LfadsConfig(ic_enc_dim=8, ci_enc_dim=8, con_dim=8, co_dim=2, ic_dim=4, gen_dim=8, fac_dim=4,
                    posterior_samples=2, prior_components=2, train=replace(TRAIN, lr=1e-2, weight_decay=0.0))


@pytest.fixture(scope="module")
def data():
    return synthesize(SynthConfig(n_trials=60, n_neurons=12, n_heldout_neurons=2, grid=2, seed=3))


def _fake_clock(patch: pytest.MonkeyPatch) -> list[float]:
    """A fake ``time.monotonic``; every validation (one per epoch) takes a minute of it."""
    now = [1000.0]
    patch.setattr(time, "monotonic", lambda: now[0])
    validate = Trainer.validate

    def a_minute_later(self, valid):
        now[0] += 60.0
        return validate(self, valid)

    patch.setattr(Trainer, "validate", a_minute_later)
    return now


@pytest.fixture
def clock(monkeypatch):
    return _fake_clock(monkeypatch)


@pytest.fixture(scope="module")
def budgeted(data, tmp_path_factory):
    """A latent-space GNOCCHI folder stopped by a 0.02-minute budget: one epoch of each stage."""
    out = tmp_path_factory.mktemp("budgeted")
    with pytest.MonkeyPatch.context() as patch:
        _fake_clock(patch)
        model = GnocchiModel(GNOCCHI, device="cpu").fit(data, out, progress=False, max_minutes=0.02)
    return model, out


def _saved(out) -> dict:
    return json.loads((out / "config.json").read_text())


def _last(out) -> dict:
    return torch.load(out / "last.pt", weights_only=True)


def test_a_time_budget_stops_both_gnocchi_stages_and_leaves_a_loadable_model(budgeted, data):
    model, out = budgeted
    saved = _saved(out)
    assert saved["stopped"] == model.stopped == "time budget of 0.02 min"
    assert saved["epochs_trained"] == 1 and len(model.history) == 1
    assert saved["autoencoder_training"] == {"epochs_trained": 1, "stopped": "time budget of 0.02 min"}
    assert _last(out)["epoch"] == 1 and _last(out / "autoencoder")["epoch"] == 1  # a resume continues from here
    loaded = load_model(out, device="cpu")
    rates = loaded.generate(loaded.encode(data)[:3], seed=0).rates
    assert rates.shape == (3, data.n_bins, data.n_neurons) and np.isfinite(rates).all()


def test_the_autoencoder_gets_its_share_of_the_budget_and_the_diffusion_the_rest(data, tmp_path, clock):
    config = replace(GNOCCHI, ae_epochs=300, train=replace(TRAIN, epochs=900))  # share 1/4 of 8 min
    model = GnocchiModel(config, device="cpu").fit(data, tmp_path, progress=False, max_minutes=8)
    assert model.autoencoder_training == {"epochs_trained": 2, "stopped": "time budget of 8 min"}
    assert len(model.history) == 6 and model.stopped == "time budget of 8 min"


def test_a_time_budget_stops_lfads(data, tmp_path, clock):
    model = LfadsModel(LFADS, device="cpu").fit(data, tmp_path, progress=False, max_minutes=3)
    assert len(model.history) == 3 and _saved(tmp_path)["stopped"] == "time budget of 3 min"
    assert _last(tmp_path)["epoch"] == 3
    loaded = load_model(tmp_path, device="cpu")
    assert np.isfinite(loaded.generate(loaded.sample_prior(2, seed=0), seed=0).rates).all()
    with pytest.raises(GnocchiError, match="max_minutes must be positive"):
        LfadsModel(LFADS, device="cpu").fit(data, tmp_path / "none", progress=False, max_minutes=0)


def test_resume_with_another_epoch_count_continues_and_records_it(data, tmp_path):
    config = replace(LFADS, train=replace(LFADS.train, epochs=2))
    LfadsModel(config, device="cpu").fit(data, tmp_path, progress=False)
    longer = replace(LFADS, train=replace(LFADS.train, epochs=4))
    model = LfadsModel(longer, device="cpu").fit(data, tmp_path, resume=True, progress=False)
    assert [r["epoch"] for r in model.history] == [0, 1, 2, 3] and model.stopped == "epoch budget"
    assert json.loads((tmp_path / "run.json").read_text())["config"]["train"]["epochs"] == 4
    assert _saved(tmp_path)["epochs_trained"] == 4
    with pytest.raises(GnocchiError, match="cannot resume.*ic_dim"):  # the run itself must still match
        LfadsModel(replace(longer, ic_dim=5), device="cpu").fit(data, tmp_path, resume=True, progress=False)


def test_resume_after_a_time_budget_continues_the_diffusion_and_keeps_the_autoencoder(budgeted, data, tmp_path):
    _, stopped_out = budgeted
    out = tmp_path / "model"
    shutil.copytree(stopped_out, out)
    autoencoder = torch.load(out / "autoencoder" / "best.pt", weights_only=True)["ema"]
    model = GnocchiModel(replace(GNOCCHI, train=replace(TRAIN, epochs=3)), device="cpu").fit(
        data, out, resume=True, progress=False)
    assert len(model.history) == 3 and model.stopped == "epoch budget"
    assert model.autoencoder_training == {"epochs_trained": 1, "stopped": "time budget of 0.02 min"}
    for name, value in autoencoder.items():  # the diffusion learned these latents: no further training
        torch.testing.assert_close(torch.load(out / "autoencoder" / "best.pt", weights_only=True)["ema"][name], value)


def test_orphaned_temporary_files_are_removed_on_resume(data, tmp_path, capsys):
    config = replace(LFADS, train=replace(LFADS.train, epochs=1))
    LfadsModel(config, device="cpu").fit(data, tmp_path, progress=False)
    orphans = [tmp_path / ".last.pt.abc123.tmp", tmp_path / ".model.pt.x_9k2q7z.tmp",
               tmp_path / "stage" / ".best.pt.abc123.tmp"]
    kept = [tmp_path / "notes.tmp", tmp_path / ".hidden", tmp_path / "stage" / "deep" / ".last.pt.abc123.tmp"]
    for path in orphans + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a checkpoint")
    LfadsModel(replace(config, train=replace(config.train, epochs=2)), device="cpu").fit(
        data, tmp_path, resume=True, progress=False)
    assert not any(path.exists() for path in orphans) and all(path.exists() for path in kept)
    assert "removed 3 temporary files" in capsys.readouterr().out


def test_ctrl_c_leaves_a_loadable_model_and_propagates(data, tmp_path):
    def ctrl_c_in_epoch_three(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        LfadsModel(LFADS, device="cpu").fit(data, tmp_path, progress=False, on_epoch_end=ctrl_c_in_epoch_three)
    saved = _saved(tmp_path)
    assert saved["stopped"] == "interrupted" and saved["epochs_trained"] == 3
    assert _last(tmp_path)["epoch"] == 2  # the last checkpoint, untouched: a resume continues exactly
    loaded = load_model(tmp_path, device="cpu")
    assert np.isfinite(loaded.generate(loaded.sample_prior(2, seed=0), seed=0).rates).all()
    resumed = LfadsModel(replace(LFADS, train=replace(LFADS.train, epochs=4)), device="cpu").fit(
        data, tmp_path, resume=True, progress=False)
    assert len(resumed.history) == 4


def test_ctrl_c_in_the_gnocchi_diffusion_stage_leaves_a_loadable_model(data, tmp_path):
    calls = []

    def ctrl_c_in_the_second_diffusion_epoch(record):
        calls.append(record)
        if len(calls) == 4:  # two autoencoder epochs, then two of the diffusion
            raise KeyboardInterrupt

    config = replace(GNOCCHI, ae_epochs=2)
    with pytest.raises(KeyboardInterrupt):
        GnocchiModel(config, device="cpu").fit(data, tmp_path, progress=False,
                                               on_epoch_end=ctrl_c_in_the_second_diffusion_epoch)
    assert _saved(tmp_path)["stopped"] == "interrupted" and _saved(tmp_path)["epochs_trained"] == 2
    assert load_model(tmp_path, device="cpu").generate(np.zeros((1, 4), np.float32), seed=0).rates.shape[0] == 1
