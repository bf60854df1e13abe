"""LFADS: the hand-written BPTT kernels, coordinated dropout, training (resume), the generation
interface, lfads-torch's output file, checkpoints, the CLI; and the co-bps metric and the NLB
smoothing baseline it is compared with."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch

from gnocchi_core import load_model
from gnocchi_core.analysis.baselines import smooth_spikes, smoothing_baseline
from gnocchi_core.analysis.metrics import bits_per_spike
from gnocchi_core.data.lfads_h5 import export_lfads
from gnocchi_core.data.synthetic import SynthConfig, synthesize
from gnocchi_core.errors import GnocchiError
from gnocchi_core.models.lfads import LfadsConfig, LfadsModel, LfadsNet, kernels, write_lfads_output
from gnocchi_core.models.lfads.model import OUTPUT_NAMES
from gnocchi_core.models.training import TrainConfig, Trainer

TINY = LfadsConfig(ic_enc_dim=32, ci_enc_dim=16, con_dim=16, co_dim=2, ic_dim=16, gen_dim=32, fac_dim=8,
                   dropout_rate=0.1, kl_increase_steps=100, l2_increase_steps=100, posterior_samples=10,
                   prior_components=3,
                   train=TrainConfig(epochs=80, batch_size=32, lr=1e-2, weight_decay=0.0, warmup_steps=20,
                                     grad_clip=200.0, ema_decay=0.95, patience=1000, checkpoint_every=10))


@pytest.fixture(scope="module")
def data():
    return synthesize(SynthConfig(n_trials=300, n_neurons=24, n_heldout_neurons=4, grid=3, seed=1))


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("lfads")
    torch.set_num_threads(1)
    model = LfadsModel(TINY, device="cpu").fit(data, out, progress=False)
    return model, out


# ---------------------------------------------------------------------- metrics and the baseline
def test_bits_per_spike_matches_a_hand_computed_case():
    spikes = np.array([[[0.0], [2.0]]])  # one neuron, mean count 1
    rates = np.array([[[0.5], [1.5]]])
    # LL_model − LL_null = (−0.5 + 2 ln 1.5 − 1.5 − ln 2) − (−1 − 1 − ln 2) = 2 ln 1.5, over 2 spikes
    assert bits_per_spike(rates, spikes) == pytest.approx(math.log2(1.5), rel=1e-12)
    assert bits_per_spike(np.ones_like(spikes), spikes) == pytest.approx(0.0, abs=1e-12)  # the null model itself
    # NaN spikes are ignored; zero rates are read as 1e-9 (nlb_tools), never log(0)
    with_nan = np.array([[[0.0], [2.0], [np.nan]]])
    assert bits_per_spike(np.array([[[0.5], [1.5], [9.0]]]), with_nan) == pytest.approx(math.log2(1.5))
    assert np.isfinite(bits_per_spike(np.array([[[0.0], [1.0]]]), np.array([[[0.0], [1.0]]])))
    with pytest.raises(ValueError, match="non-negative"):
        bits_per_spike(-rates, spikes)


def test_smoothing_follows_nlb_tools():
    spikes = np.zeros((1, 40, 1))
    spikes[0, 20, 0] = 1
    smoothed = smooth_spikes(spikes, bin_ms=5, kernel_sd_ms=20)  # 24-point window, sd 4 bins
    assert smoothed.sum() == pytest.approx(1.0) and smoothed[0, :, 0].argmax() in (19, 20)
    rng = np.random.default_rng(0)
    counts = rng.poisson(0.5, (3, 90, 4))  # as nlb_tools: np.convolve(x, window, 'same') per neuron
    window = np.exp(-0.5 * ((np.arange(72) - 35.5) / 12) ** 2)
    expected = np.apply_along_axis(lambda x: np.convolve(x, window / window.sum(), "same"), 1, counts)
    np.testing.assert_allclose(smooth_spikes(counts, bin_ms=5, kernel_sd_ms=60), expected, atol=1e-12)
    heldin = rng.poisson(0.3, (12, 30, 5))
    heldout = rng.poisson(np.exp(0.5 * heldin[..., :2].mean(-1, keepdims=True)) * 0.2, (12, 30, 2))
    train_rates, eval_rates = smoothing_baseline(heldin[:8], heldout[:8], heldin[8:], bin_ms=5)
    assert train_rates.shape == (8, 30, 2) and eval_rates.shape == (4, 30, 2) and (eval_rates > 0).all()


# ---------------------------------------------------------------------- kernels against autograd
def _chain(n_in, hidden, batch, reverse, scale=1.0):
    g = lambda *s, k=1.0: (torch.randn(*s, dtype=torch.float64) * k).requires_grad_()  # noqa: E731
    return g(3 * hidden, n_in), g(3 * hidden), g(batch, hidden, k=scale), g(3 * hidden, hidden), reverse


@pytest.mark.parametrize("clip", [float("inf"), 0.7])
def test_gru_kernel_gradients_match_autograd(clip):
    torch.manual_seed(0)
    x = torch.randn(7, 3, 5, dtype=torch.float64, requires_grad=True)
    chains = [_chain(5, 4, 3, False), _chain(5, 4, 3, True, scale=3.0), _chain(5, 2, 3, True)]
    leaves = [x] + [t for c in chains for t in c[:4]]
    fast, slow = kernels.grus(x, chains, clip), kernels.grus_reference(x, chains, clip)
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    weights = [torch.randn_like(s) for s in fast]
    g_fast = torch.autograd.grad(fast, leaves, weights)
    g_slow = torch.autograd.grad(slow, leaves, weights)
    for a, b in zip(g_fast, g_slow):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("clip, sample", [(5.0, True), (0.4, True), (5.0, False)])
def test_decoder_kernel_gradients_match_autograd(clip, sample):
    torch.manual_seed(1)
    steps, batch, n_con, n_gen, n_co, n_fac = 6, 3, 5, 6, 2, 3
    g = lambda *s: torch.randn(*s, dtype=torch.float64, requires_grad=True)  # noqa: E731
    mask = lambda *s: (torch.rand(*s, dtype=torch.float64) > 0.3).double() / 0.7  # noqa: E731
    inputs = [g(steps, batch, 3 * n_con), g(batch, n_gen), g(batch, n_con), g(batch, n_fac)]
    noise = [torch.randn(steps, batch, n_co, dtype=torch.float64), mask(steps, batch, n_fac),
             mask(steps, batch, n_gen)] if sample else [None, None, None]
    weights = [g(3 * n_con, n_fac), g(3 * n_con, n_con), g(2 * n_co, n_con), g(2 * n_co), g(3 * n_gen, n_co),
               g(3 * n_gen), g(3 * n_gen, n_gen), g(n_fac, n_gen)]
    args = inputs + noise + weights + [clip]
    leaves = inputs + weights
    for used in ([0, 1, 2, 3, 4], [2, 3, 4]):  # every output, or only those the losses read
        fast, slow = kernels.decoder(*args), kernels.decoder_reference(*args)
        for a, b in zip(fast, slow):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
        out_grads = [torch.randn_like(fast[i]) for i in used]
        g_fast = torch.autograd.grad([fast[i] for i in used], leaves, out_grads)
        g_slow = torch.autograd.grad([slow[i] for i in used], leaves, out_grads)
        for a, b in zip(g_fast, g_slow):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------- coordinated dropout
def test_coordinated_dropout_passes_gradient_only_through_dropped_entries(data):
    torch.manual_seed(0)
    net = LfadsNet(replace(TINY, cd_rate=0.3, dropout_rate=0.0), data.n_neurons, data.n_bins,
                   data.heldout_neurons).train()
    counts = torch.from_numpy(data.spikes[:8].astype(np.float32))
    captured = {}
    original_forward, original_cd = net.forward, net.coordinated_dropout

    def forward(encod, sample, n_bins=None):
        out = original_forward(encod, sample, n_bins)
        out["log_rates"].retain_grad()
        captured.update(encod=encod, log_rates=out["log_rates"])
        return out

    def coordinated_dropout(batch):
        encod, grad_mask = original_cd(batch)
        captured["grad_mask"] = grad_mask
        return encod, grad_mask

    net.forward, net.coordinated_dropout = forward, coordinated_dropout
    net.losses([counts])["recon"].backward()
    grad, mask, encod = captured["log_rates"].grad, captured["grad_mask"], captured["encod"]
    heldin = torch.from_numpy(~data.heldout_neurons)
    dropped = mask[:, :, heldin] == 1
    assert dropped.float().mean() == pytest.approx(0.3, abs=0.02)
    # the encoder saw exactly the kept entries, scaled so the expected input is unchanged
    assert (encod[dropped] == 0).all()
    torch.testing.assert_close(encod[~dropped], counts[:, :, heldin][~dropped] / 0.7)
    # gradient flows through the reconstruction of dropped entries only ...
    assert (grad[:, :, heldin][~dropped] == 0).all(), "kept inputs must not pass gradient"
    assert (grad[:, :, heldin][dropped] != 0).all()
    assert (grad[:, :, ~heldin] != 0).all(), "held-out neurons are never inputs: always trained"
    # ... and evaluation uses no dropout at all
    net.eval()
    encod, mask = original_cd(counts)
    assert torch.equal(encod, counts[:, :, heldin]) and bool((mask == 1).all())


def test_ramps_count_steps_and_are_checkpointed(data):
    net = LfadsNet(replace(TINY, kl_start_step=2, kl_increase_steps=3), data.n_neurons, data.n_bins,
                   data.heldout_neurons)
    assert "step" in net.state_dict() and int(net.step) == 0
    counts = torch.from_numpy(data.spikes[:4].astype(np.float32))
    for _ in range(3):
        net.losses([counts])
    assert int(net.step) == 3
    net.eval()
    net.losses([counts])
    assert int(net.step) == 3  # validation does not advance the schedule


# ---------------------------------------------------------------------- training and quality
def test_tiny_lfads_beats_the_smoothing_baseline_on_heldout_neurons(trained, data):
    model, _ = trained
    heldout = data.heldout_neurons
    train, test = data.split("train"), data.split("test")
    rates = model.infer(test)["output_params"]
    lfads = bits_per_spike(rates[:, :, heldout], test.spikes[:, :, heldout])
    _, smoothed = smoothing_baseline(train.spikes[:, :, ~heldout], train.spikes[:, :, heldout],
                                     test.spikes[:, :, ~heldout], bin_ms=data.bin_ms)
    smoothing = bits_per_spike(smoothed, test.spikes[:, :, heldout])
    assert lfads > smoothing + 0.03, (lfads, smoothing)  # measured: 0.107 vs 0.038 (true rates: 0.199)
    first, best = model.history[0], min(model.history, key=lambda r: r["valid_loss"])
    assert best["valid_loss"] < 0.8 * first["valid_loss"]


def test_resume_after_a_kill_continues_the_same_schedule(data, tmp_path, monkeypatch):
    config = replace(TINY, train=replace(TINY.train, epochs=6, checkpoint_every=1))
    straight = LfadsModel(config, device="cpu").fit(data, tmp_path / "straight", progress=False)

    original_validate = Trainer.validate

    def killed_in_epoch_four(self, valid):
        if self.epoch == 3:
            raise KeyboardInterrupt
        return original_validate(self, valid)

    monkeypatch.setattr(Trainer, "validate", killed_in_epoch_four)
    with pytest.raises(KeyboardInterrupt):
        LfadsModel(config, device="cpu").fit(data, tmp_path / "killed", progress=False)
    monkeypatch.setattr(Trainer, "validate", original_validate)
    resumed = LfadsModel(config, device="cpu").fit(data, tmp_path / "killed", resume=True, progress=False)

    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in straight.history]
    for name, value in straight.net.state_dict().items():
        torch.testing.assert_close(resumed.net.state_dict()[name], value, rtol=0, atol=0)
    with pytest.raises(GnocchiError, match="cannot resume"):
        LfadsModel(replace(config, ic_dim=5), device="cpu").fit(data, tmp_path / "killed", resume=True,
                                                              progress=False)


# ---------------------------------------------------------------------- the generation interface
def test_encode_and_generate_shapes_and_units(trained, data):
    model, _ = trained
    test = data.split("test")
    codes = model.encode(test)
    assert codes.shape == (test.n_trials, TINY.ic_dim) and codes.dtype == np.float32
    out = model.generate(codes[:5], seed=0, spikes=True)
    assert out.rates.shape == (5, data.n_bins, data.n_neurons) and out.spikes.shape == out.rates.shape
    assert (out.rates > 0).all() and out.spikes.dtype == np.int32
    # spikes/s, not counts per bin: the data's order of magnitude
    assert 0.3 * data.mean_rate_hz() < out.rates.mean() < 3 * data.mean_rate_hz()
    np.testing.assert_array_equal(model.generate(codes[:5], seed=1).rates, out.rates)  # rates: deterministic
    assert model.generate(codes[:2], n_bins=data.n_bins + 10).rates.shape[1] == data.n_bins + 10
    np.testing.assert_allclose(model.generate(codes[:2], steps=5).rates, out.rates[:2], rtol=1e-5)  # no sampler
    inputs = np.random.default_rng(0).normal(size=(2, data.n_bins, TINY.co_dim)).astype(np.float32)
    driven = model.generate(codes[:2], noise=inputs).rates
    assert driven.shape == (2, data.n_bins, data.n_neurons) and not np.allclose(driven, out.rates[:2])
    with pytest.raises(GnocchiError, match="inferred inputs"):
        model.generate(codes[:2], noise=inputs[:, :, :1])
    with pytest.raises(GnocchiError, match=f"{TINY.ic_dim} dimensions"):
        model.generate(np.zeros((2, 3)))
    assert model.encode(data.spikes[0]).shape == (1, TINY.ic_dim)
    # the encoder reads held-in neurons only
    scrambled = data.spikes[:3].copy()
    scrambled[:, :, data.heldout_neurons] = 7
    np.testing.assert_array_equal(model.encode(scrambled), model.encode(data.spikes[:3]))
    # encoding skips the controller-input encoder: the same IC means as the full encoder pass
    with torch.no_grad():
        full = model.net.encoder(model.net.heldin(torch.as_tensor(test.spikes[:4], dtype=torch.float32)))[0]
    np.testing.assert_allclose(model.encode(test.spikes[:4]), full.numpy(), rtol=1e-6, atol=1e-7)
    recon = model.reconstruct(test, samples=5)
    assert recon.shape == test.spikes.shape and 0.3 * data.mean_rate_hz() < recon.mean() < 3 * data.mean_rate_hz()


def test_prior_samples(trained):
    model, _ = trained
    gaussian = model.sample_prior(400, seed=0)
    assert gaussian.shape == (400, TINY.ic_dim)
    # centred on the learned prior mean, with the prior's fixed variance
    prior_mean = model.net.ic_prior.mean.detach().numpy()
    np.testing.assert_allclose(gaussian.mean(0), prior_mean, atol=4 * math.sqrt(TINY.ic_prior_variance / 400))
    assert abs(gaussian.std(0).mean() - math.sqrt(TINY.ic_prior_variance)) < 0.02
    np.testing.assert_array_equal(gaussian, model.sample_prior(400, seed=0))
    mixture = model.sample_prior(20, seed=0, kind="mixture")
    np.testing.assert_array_equal(mixture, model.sample_prior(20, seed=0, kind="mixture"))
    assert model.generate(mixture[:3]).rates.shape[0] == 3
    with pytest.raises(ValueError, match="gaussian"):
        model.sample_prior(2, kind="uniform")


# ---------------------------------------------------------------------- checkpoints and files
def test_save_load_gives_identical_outputs(trained, data):
    model, out = trained
    loaded = load_model(out, device="cpu")
    assert isinstance(loaded, LfadsModel) and loaded.kind == "lfads"
    test = data.split("test")
    np.testing.assert_array_equal(loaded.encode(test), model.encode(test))
    codes = model.sample_prior(3, seed=1)
    np.testing.assert_array_equal(loaded.generate(codes).rates, model.generate(codes).rates)
    np.testing.assert_array_equal(loaded.infer(test, samples=3)["output_params"],
                                  model.infer(test, samples=3)["output_params"])
    np.testing.assert_array_equal(loaded.sample_prior(4, seed=0, kind="mixture"),
                                  model.sample_prior(4, seed=0, kind="mixture"))
    assert json.loads((out / "config.json").read_text())["kind"] == "lfads"
    state = torch.load(out / "model.pt", weights_only=True)  # tensors only
    assert set(state) == {"net", "mixture"}


def test_output_file_has_lfads_torch_keys_and_shapes(trained, data, tmp_path):
    model, _ = trained
    path = tmp_path / "lfads_output_synth.h5"
    write_lfads_output(model, data, path, samples=4)
    c = TINY
    order = np.r_[np.flatnonzero(~data.heldout_neurons), np.flatnonzero(data.heldout_neurons)]
    with h5py.File(path, "r") as f:
        for split in ("train", "valid", "test"):
            n = int((data.trial_info["split"] == split).sum())
            t = data.n_bins
            expected = {"output_params": (n, t, data.n_neurons), "factors": (n, t, c.fac_dim),
                        "ic_mean": (n, c.ic_dim), "ic_std": (n, c.ic_dim), "co_means": (n, t, c.co_dim),
                        "co_stds": (n, t, c.co_dim), "gen_states": (n, t, c.gen_dim), "gen_init": (n, c.gen_dim),
                        "gen_inputs": (n, t, c.co_dim), "con_states": (n, t, c.con_dim)}
            assert set(expected) == set(OUTPUT_NAMES)
            for name, shape in expected.items():
                assert f[f"{split}_{name}"].shape == shape, (split, name)
            # the input part, as lfads-torch copies it: recon order = held-in first, held-out last
            inds = f[f"{split}_inds"][()]
            np.testing.assert_array_equal(f[f"{split}_recon_data"][()], data.spikes[inds][:, :, order])
            rates = f[f"{split}_output_params"][()]
            assert (rates > 0).all() and abs(np.log(rates.mean() / f[f"{split}_recon_data"][()].mean())) < 1.0
        np.testing.assert_allclose(f["test_ic_mean"][()], model.encode(data.split("test")), rtol=1e-5, atol=1e-6)


def test_a_model_without_controller_trains_and_writes_empty_inputs(data, tmp_path):
    config = replace(TINY, co_dim=0, train=replace(TINY.train, epochs=2))
    model = LfadsModel(config, device="cpu").fit(data, tmp_path, progress=False)
    out = model.infer(data.split("test"), samples=2)
    assert out["co_means"].shape[-1] == 0 and out["con_states"].shape[-1] == 0
    assert model.generate(model.encode(data.split("test"))[:2]).rates.shape == (2, data.n_bins, data.n_neurons)


def test_train_command_reads_lfads_torch_input_and_writes_output(data, tmp_path):
    lfads_input = tmp_path / "synth_lfads.h5"
    export_lfads(data, lfads_input)
    config = tmp_path / "tiny.json"
    tiny = {k: getattr(TINY, k) for k in ("ic_enc_dim", "ci_enc_dim", "con_dim", "co_dim", "ic_dim", "gen_dim",
                                          "fac_dim", "posterior_samples", "prior_components")}
    config.write_text(json.dumps(tiny | {"train": {"batch_size": 32}}))
    cli = [sys.executable, "-m", "gnocchi_core.cli"]
    result = subprocess.run(cli + ["train", "lfads", "--data", str(lfads_input), "--out", str(tmp_path / "model"),
                                   "--epochs", "2", "--config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "done: 2 epochs" in result.stdout and "bits/spike" in result.stdout
    output = tmp_path / "model" / "lfads_output_synth_lfads.h5"
    with h5py.File(output, "r") as f:
        assert f["valid_output_params"].shape == f["valid_recon_data"].shape
    assert isinstance(load_model(tmp_path / "model"), LfadsModel)
    resume = cli + ["train", "lfads", "--data", str(lfads_input), "--out", str(tmp_path / "model"),
                    "--config", str(config), "--resume", "--epochs"]
    result = subprocess.run(resume + ["2"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "done: 2 epochs" in result.stdout
    longer = subprocess.run(resume + ["3"], capture_output=True, text=True)  # a resume may change the epoch count
    assert longer.returncode == 0 and "done: 3 epochs" in longer.stdout, longer.stderr
    changed = subprocess.run(resume + ["3", "--seed", "5"], capture_output=True, text=True)
    assert changed.returncode == 2 and "cannot resume" in changed.stderr and "train.seed: 0 → 5" in changed.stderr
