"""GNOCCHI: schedule and samplers, losses, training (resume), the generation interface, checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from gnocchi_core import GnocchiError, load_model
from gnocchi_core.data.synthetic import SynthConfig, synthesize
from gnocchi_core.models.gnocchi import GnocchiConfig, GnocchiModel
from gnocchi_core.models.gnocchi.diffusion import NoiseSchedule, ddim_sample, ddpm_sample, timesteps
from gnocchi_core.models.gnocchi.losses import mmd
from gnocchi_core.models.training import TrainConfig, Trainer, learning_rate

TINY = GnocchiConfig(code_dim=4, channels=16, cond_dim=32, encoder_channels=16, sample_steps=5,
                     prior_components=3, latent_dim=6, ae_channels=16, ae_epochs=15, code_dropout=0.2, train=TrainConfig(epochs=40, batch_size=32, warmup_steps=20,
                                                           patience=1000, checkpoint_every=5))


@pytest.fixture(scope="module")
def data():
    return synthesize(SynthConfig(n_trials=150, n_neurons=24, n_heldout_neurons=4, grid=3, seed=1))


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("gnocchi")
    torch.set_num_threads(1)
    model = GnocchiModel(TINY, device="cpu").fit(data, out, progress=False)
    return model, out


# ---------------------------------------------------------------------- diffusion, apart from any network
def _oracle(schedule, x0, prediction):
    """A 'network' that knows the clean sample: whatever the sampler does, x0 must come back."""
    def model(x, i):
        a = schedule.at(i, x)
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        return eps if prediction == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * x0
    return model


# One ε-step from pure noise divides by √ᾱ ≈ 0 (the reason GNOCCHI predicts v), so ε starts at 7.
@pytest.mark.parametrize("prediction, steps", [("v", 1), ("v", 7), ("v", 50), ("epsilon", 7), ("epsilon", 50)])
def test_ddim_recovers_the_clean_sample_with_an_oracle(prediction, steps):
    schedule = NoiseSchedule(1000, "cosine")
    x0 = torch.randn(3, 5, 11) * 0.5
    out = ddim_sample(_oracle(schedule, x0, prediction), schedule, torch.randn(3, 5, 11), steps, prediction)
    torch.testing.assert_close(out, x0, atol=1e-3, rtol=1e-3)


def test_ddpm_recovers_the_clean_sample_with_an_oracle():
    schedule = NoiseSchedule(100, "linear")
    x0 = torch.randn(2, 4, 9) * 0.5
    out = ddpm_sample(_oracle(schedule, x0, "v"), schedule, torch.randn(2, 4, 9), "v",
                      generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x0, atol=1e-3, rtol=1e-3)


def test_schedule_and_timesteps():
    for kind in ("cosine", "linear"):
        a = NoiseSchedule(1000, kind).alpha_bar
        assert a[0] > 0.99 and a[-1] < 0.01 and bool((a[1:] < a[:-1]).all())
    assert timesteps(NoiseSchedule(1000), 10) == [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]
    with pytest.raises(ValueError, match="1..1000"):
        timesteps(NoiseSchedule(1000), 0)
    with pytest.raises(ValueError, match="cosine"):
        NoiseSchedule(10, "quadratic")


def test_mmd_is_zero_for_one_sample_and_grows_with_shift():
    x = torch.randn(256, 4, generator=torch.Generator().manual_seed(0))
    y = torch.randn(256, 4, generator=torch.Generator().manual_seed(1))
    bands = (0.5, 1.0, 2.0)
    assert float(mmd(x, x, bands)) == pytest.approx(0.0, abs=1e-6)
    assert float(mmd(x, y, bands)) < float(mmd(x, y + 0.5, bands)) < float(mmd(x, y + 2.0, bands))


def test_learning_rate_warms_up_then_decays():
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, min_lr_fraction=0.1)
    lrs = [learning_rate(s, 110, cfg) for s in range(110)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(b <= a for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] == pytest.approx(1e-4, rel=0.01)


# ---------------------------------------------------------------------- training
def test_training_lowers_each_loss(trained):
    model, _ = trained
    first, last = model.history[0], model.history[-1]
    for term in ("score", "rec", "mmd"):
        assert last[f"train_{term}"] < 0.8 * first[f"train_{term}"], term
    assert min(r["valid_loss"] for r in model.history) < first["valid_loss"]


def test_resume_after_a_kill_continues_the_same_schedule(data, tmp_path, monkeypatch):
    config = replace(TINY, train=replace(TINY.train, epochs=6, checkpoint_every=1))
    straight = GnocchiModel(config, device="cpu").fit(data, tmp_path / "straight", progress=False)

    original_validate = Trainer.validate

    def killed_in_epoch_four(self, valid):
        if self.epoch == 3:
            raise KeyboardInterrupt
        return original_validate(self, valid)

    monkeypatch.setattr(Trainer, "validate", killed_in_epoch_four)
    with pytest.raises(KeyboardInterrupt):
        GnocchiModel(config, device="cpu").fit(data, tmp_path / "killed", progress=False)
    monkeypatch.setattr(Trainer, "validate", original_validate)
    resumed = GnocchiModel(config, device="cpu").fit(data, tmp_path / "killed", resume=True, progress=False)

    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in straight.history]
    for name, value in straight.net.state_dict().items():
        torch.testing.assert_close(resumed.net.state_dict()[name], value, rtol=0, atol=0)


def test_resume_refuses_a_different_config(data, trained, tmp_path):
    model, out = trained
    with pytest.raises(GnocchiError, match="cannot resume"):
        GnocchiModel(replace(TINY, code_dim=5), device="cpu").fit(data, out, resume=True, progress=False)
    with pytest.raises(GnocchiError, match="nothing to resume"):
        GnocchiModel(TINY, device="cpu").fit(data, tmp_path / "empty", resume=True, progress=False)


# ---------------------------------------------------------------------- the generation interface
def test_encode_and_generate_shapes_and_units(trained, data):
    model, _ = trained
    codes = model.encode(data.split("test"))
    assert codes.shape == (data.split("test").n_trials, 4) and codes.dtype == np.float32
    out = model.generate(codes[:6], seed=0, spikes=True)
    assert out.rates.shape == (6, data.n_bins, data.n_neurons) and out.spikes.shape == out.rates.shape
    assert (out.rates >= 0).all() and out.spikes.dtype == np.int32
    # spikes/s, not counts per bin: the same order of magnitude as the data's mean rate
    assert 0.3 * data.mean_rate_hz() < out.rates.mean() < 3 * data.mean_rate_hz()
    assert model.encode(data.spikes[0]).shape == (1, 4)  # a single trial works too


def test_ddim_with_fixed_noise_is_deterministic_and_continuous_in_the_code(trained):
    model, _ = trained
    code = model.sample_prior(1, seed=3)
    a, b = model.generate(code, seed=7).rates, model.generate(code, seed=7).rates
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, model.generate(code, seed=8).rates)
    direction = np.ones_like(code) / 2
    changes = [np.abs(model.generate(code + d * direction, seed=7).rates - a).mean() for d in (1e-3, 1e-2, 1e-1)]
    assert 0 < changes[0] < changes[1] < changes[2]
    assert changes[0] < 0.2 * changes[1]  # shrinks with the step: no jumps


def test_explicit_noise_equals_seeded_noise(trained):
    model, _ = trained
    code = model.sample_prior(2, seed=0)
    noise = torch.randn((2, model.config.latent_dim, model.n_bins), generator=torch.Generator().manual_seed(5)).numpy()
    np.testing.assert_array_equal(model.generate(code, noise=noise).rates, model.generate(code, seed=5).rates)
    with pytest.raises(GnocchiError, match="noise must have shape"):
        model.generate(code, noise=noise[:, :3])


def test_prior_samples(trained):
    model, _ = trained
    gaussian = model.sample_prior(500, seed=0)
    assert gaussian.shape == (500, 4) and abs(gaussian.std() - 1) < 0.1
    mixture = model.sample_prior(50, seed=0, kind="mixture")
    np.testing.assert_array_equal(mixture, model.sample_prior(50, seed=0, kind="mixture"))
    assert model.generate(mixture[:3], seed=0).rates.shape[0] == 3
    with pytest.raises(ValueError, match="gaussian"):
        model.sample_prior(2, kind="uniform")


def test_bad_inputs_are_clear_errors(trained):
    model, _ = trained
    with pytest.raises(GnocchiError, match="4 dimensions"):
        model.generate(np.zeros((2, 3)))
    with pytest.raises(GnocchiError, match="24 neurons"):
        model.encode(np.zeros((2, model.n_bins, 7)))


# ---------------------------------------------------------------------- checkpoints
def test_save_load_gives_identical_samples(trained):
    model, out = trained
    loaded = load_model(out, device="cpu")
    assert isinstance(loaded, GnocchiModel)
    code = model.sample_prior(3, seed=1)
    np.testing.assert_array_equal(loaded.generate(code, seed=2).rates, model.generate(code, seed=2).rates)
    np.testing.assert_array_equal(loaded.sample_prior(4, seed=0, kind="mixture"),
                                  model.sample_prior(4, seed=0, kind="mixture"))


def test_incompatible_checkpoint_is_a_clear_error(trained, tmp_path):
    _, out = trained
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.pt").write_bytes((out / "model.pt").read_bytes())
    config = json.loads((out / "config.json").read_text())
    config["config"]["channels"] = 32
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(GnocchiError, match="weights do not match the model's config"):
        load_model(bad)
    config["kind"] = "vae"
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(GnocchiError, match="unknown model kind 'vae'"):
        load_model(bad)
    with pytest.raises(GnocchiError, match="not a trained model folder"):
        load_model(tmp_path)


class _Payload:
    """Pickles to a call that would create a file, the way a malicious checkpoint runs code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_malicious_pickle_is_not_executed(trained, tmp_path):
    _, out = trained
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "config.json").write_text((out / "config.json").read_text())
    marker = tmp_path / "pwned"
    torch.save({"net": _Payload(str(marker))}, evil / "model.pt")
    with pytest.raises(GnocchiError, match="not a safe, readable checkpoint"):
        load_model(evil)
    assert not marker.exists()


def test_train_and_bench_commands(data, tmp_path):
    data.save(tmp_path / "data.h5")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"code_dim": 4, "channels": 16, "cond_dim": 32, "encoder_channels": 16,
                                  "latent_dim": 6, "ae_channels": 16, "ae_epochs": 3,
                                  "prior_components": 3, "train": {"batch_size": 32}}))
    cli = [sys.executable, "-m", "gnocchi_core.cli"]
    result = subprocess.run(cli + ["train", "gnocchi", "--data", str(tmp_path / "data.h5"), "--out",
                                   str(tmp_path / "model"), "--epochs", "3", "--config", str(config)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "done: 3 epochs" in result.stdout and (tmp_path / "model" / "config.json").is_file()
    result = subprocess.run(cli + ["bench", "sample", "--model", str(tmp_path / "model"), "--steps", "5", "10",
                                   "--batch", "1", "2", "--repeats", "2", "--fidelity-samples", "1"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "p50 ms" in result.stdout and "fidelity against the 1000-step ancestral (DDPM) chain" in result.stdout
    result = subprocess.run(cli + ["bench", "quality", "--model", str(tmp_path / "model"), "--data",
                                   str(tmp_path / "data.h5")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "code_snr_target_x" in result.stdout and "r2_generated" in result.stdout


# ---------------------------------------------------------------------- latent space, guidance, formats
def test_latent_space_generates_smooth_positive_rates_decoded_by_the_autoencoder(trained, data):
    model, out = trained
    assert model.config.space == "latent" and (out / "autoencoder" / "best.pt").is_file()
    rates = model.generate(model.encode(data.split("test")), seed=0).rates
    assert rates.min() > 0  # exp of the readout: never a negative rate
    # smooth: rates change less from bin to bin than Poisson-noisy smoothed spikes of the data would
    assert np.abs(np.diff(rates, axis=1)).mean() < 0.5 * np.abs(np.diff(data.spikes * 1000 / data.bin_ms, axis=1)).mean()
    # the autoencoder learned the counts: its reconstruction beats a per-neuron constant rate
    counts = torch.from_numpy(data.spikes.astype(np.float32)).transpose(1, 2)
    with torch.no_grad():
        log_mean = model.autoencoder.log_counts(model.autoencoder.encode(counts))
    nll = torch.nn.functional.poisson_nll_loss(log_mean, counts, log_input=True).item()
    constant = counts.mean(dim=(0, 2), keepdim=True).clamp(min=1e-6).log().expand_as(counts)
    assert nll < torch.nn.functional.poisson_nll_loss(constant, counts, log_input=True).item()


def test_guidance_one_is_plain_conditional_sampling_and_other_scales_differ(trained):
    model, _ = trained
    code = model.sample_prior(3, seed=0)
    plain = model.generate(code, seed=1).rates
    np.testing.assert_array_equal(model.generate(code, seed=1, guidance=1.0).rates, plain)
    guided = model.generate(code, seed=1, guidance=3.0).rates
    assert guided.shape == plain.shape and np.isfinite(guided).all() and not np.allclose(guided, plain)
    # guidance 0 is the unconditional model: the code no longer matters
    a = model.generate(code[:1], seed=1, guidance=0.0).rates
    b = model.generate(code[1:2], seed=1, guidance=0.0).rates
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_rates_space_model_saves_loads_and_old_format_folders_still_load(data, tmp_path):
    config = replace(TINY, space="rates", code_dropout=0.0, positional=0, train=replace(TINY.train, epochs=3))
    model = GnocchiModel(config, device="cpu").fit(data, tmp_path / "rates", progress=False)
    assert model.autoencoder is None and not (tmp_path / "rates" / "autoencoder").exists()
    code = model.sample_prior(2, seed=0)
    expected = model.generate(code, seed=4).rates
    np.testing.assert_array_equal(load_model(tmp_path / "rates").generate(code, seed=4).rates, expected)
    # a folder written before latent space and guidance existed (format 1): no 'space', no null code
    old = tmp_path / "old"
    old.mkdir()
    saved = json.loads((tmp_path / "rates" / "config.json").read_text())
    saved["format_version"] = 1
    for key in ("space", "positional", "latent_dim", "ae_channels", "ae_coordinated_dropout", "ae_smoothness", "ae_epochs",
                "code_dropout", "guidance"):
        del saved["config"][key]
    (old / "config.json").write_text(json.dumps(saved))
    weights = torch.load(tmp_path / "rates" / "model.pt", weights_only=True)
    del weights["net"]["denoiser.null_code"]
    torch.save(weights, old / "model.pt")
    np.testing.assert_array_equal(load_model(old).generate(code, seed=4).rates, expected)


def test_an_unknown_space_is_refused():
    with pytest.raises(GnocchiError, match="'space' must be one of"):
        GnocchiConfig.from_dict({"space": "pixels"})


def test_sampler_fidelity_against_the_ancestral_chain(trained):
    from gnocchi_core.bench import sampler_fidelity

    model, _ = trained
    codes = model.sample_prior(6, seed=0)
    fidelity = sampler_fidelity(model, codes, [5, 50], samples=2)
    assert set(fidelity) == {"ddpm_repeat", 5, 50}
    assert all(np.isfinite(v) and v <= 1.0 for v in fidelity.values())
    assert fidelity["ddpm_repeat"] < 1.0  # two independent sets of ancestral draws never coincide
