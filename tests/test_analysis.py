"""The paper's analyses: each metric on a constructed case with a known answer, the behaviour
decoder, and the evaluate / generate commands end to end on tiny trained models."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gnocchi_core.analysis.decoding import BehaviourDecoder, reach_variables
from gnocchi_core.analysis.metrics import (axis_cosine, behaviour_axes, code_snr, heldout_target_error,
                                           navigation_codes, navigation_effect, principal_axes)
from gnocchi_core.data import load_dataset
from gnocchi_core.data.preprocessing import smoothed_rates
from gnocchi_core.data.lfads_h5 import import_lfads
from gnocchi_core.data.synthetic import SynthConfig, synthesize
from gnocchi_core.errors import GnocchiError
from gnocchi_core.models.gnocchi import GnocchiConfig, GnocchiModel
from gnocchi_core.models.lfads import LfadsConfig, LfadsModel
from gnocchi_core.models.training import TrainConfig

rng = np.random.default_rng(0)


# ---------------------------------------------------------------------- metrics on known answers
def test_behaviour_axes_recover_planted_axes():
    behaviour = rng.normal(size=(200, 4))
    planted = rng.normal(size=(6, 4))
    offset = rng.normal(size=6)
    axes, c0 = behaviour_axes(behaviour @ planted.T + offset, behaviour)
    np.testing.assert_allclose(axes, planted, atol=1e-10)
    np.testing.assert_allclose(c0, offset, atol=1e-10)


def test_axis_cosine():
    assert axis_cosine([1, 0, 0], [0, 2, 0]) == pytest.approx(0.0)
    assert axis_cosine([1, 1], [2, 2]) == pytest.approx(1.0)
    assert axis_cosine([1, 0], [-1, 1]) == pytest.approx(-1 / np.sqrt(2))


def test_code_snr_is_between_over_within_condition_variance():
    conditions = np.repeat([0, 1, 2], 4)
    within = np.tile([-1.0, 1.0, -1.0, 1.0], 3)  # variance 1 within each condition
    codes = np.column_stack([np.repeat([-3.0, 0.0, 3.0], 4) + within, rng.normal(size=12)])
    # unbiased variances: var(-3, 0, 3; ddof 1) = 9 over the within variance (ddof 1) 4/3
    assert code_snr(codes, np.array([1.0, 0.0]), conditions) == pytest.approx(9.0 / (4.0 / 3.0))


def test_navigation_of_a_perfectly_isolated_traversal():
    deltas = np.linspace(-4, 4, 5)
    reference = np.array([1.0, -2.0, 3.0, 0.5])  # start x/y, target x/y
    variables = np.repeat(reference[None, None], 5, axis=0).repeat(3, axis=1)
    variables[:, :, 2] += deltas[:, None]  # only target x moves, exactly as commanded
    assert navigation_effect(variables, deltas, intended=2) == pytest.approx((1.0, 0.0))
    leaky = variables.copy()
    leaky[:, :, 3] += 0.5 * deltas[:, None]  # target y follows at half the commanded rate
    slope, unintended = navigation_effect(leaky * [1, 1, 2, 1], deltas, intended=2)
    assert slope == pytest.approx(2.0) and unintended == pytest.approx(0.5)
    stepped = navigation_codes(np.zeros((3, 2)), np.array([1.0, 0.0]), deltas)
    assert stepped.shape == (5, 3, 2) and np.allclose(stepped[:, 0, 0], deltas)


def test_heldout_targets_from_codes_linear_in_the_target():
    targets = np.array([[x, y] for x in (-4.0, 0.0, 4.0) for y in (-4.0, 0.0, 4.0)]).repeat(5, axis=0)
    mixing = rng.normal(size=(2, 8))
    codes = targets @ mixing + 0.01 * rng.normal(size=(len(targets), 8))
    held = (targets == [0.0, 4.0]).all(axis=1)
    errors, predicted = heldout_target_error(codes[~held], targets[~held], codes[held], targets[held])
    assert errors.shape == (held.sum(),) and errors.max() < 0.05
    np.testing.assert_allclose(predicted, targets[held], atol=0.05)


def test_principal_axes_order_and_variance():
    codes = rng.normal(size=(500, 3)) * [5.0, 1.0, 0.1]
    axes, ratio, mean = principal_axes(codes, 2)
    assert abs(axes[0] @ [1, 0, 0]) > 0.99 and abs(axes[1] @ [0, 1, 0]) > 0.99
    assert ratio[0] == pytest.approx(25 / 26.01, abs=0.02) and mean.shape == (3,)


def test_reach_variables_read_start_and_end():
    centers = np.arange(-195, 500, 10.0)  # 70 bins, movement onset at 0
    path = np.zeros((1, 70, 2))
    path[0, centers < 0] = [1.0, -1.0]
    path[0, centers >= 0] = np.linspace([1.0, -1.0], [5.0, 3.0], int((centers >= 0).sum()))
    path[0, -10:] = [5.0, 3.0]
    np.testing.assert_allclose(reach_variables(path, centers), [[1.0, -1.0, 5.0, 3.0]])


# ---------------------------------------------------------------------- the behaviour decoder
@pytest.fixture(scope="module")
def data():
    return synthesize(SynthConfig(n_trials=240, n_neurons=40, n_heldout_neurons=6, grid=3, seed=2))


def test_decoder_decodes_held_out_trials_and_round_trips():
    """On the shipped MotorNet dataset, where the units drive the arm (it ships without ground
    truth, so the decoder reads smoothed spikes)."""
    motornet = load_dataset(Path(__file__).resolve().parents[1] / "assets" / "motornet_reach" / "motornet_reach.h5")
    train, test = motornet.split("train"), motornet.split("test")
    decoder = BehaviourDecoder.fit(train)
    assert decoder.source == "spikes" and motornet.rates is None
    assert decoder.outputs == ["hand_pos_x", "hand_pos_y", "hand_vel_x", "hand_vel_y"] and decoder.fit_r2 > 0.7
    decoded = decoder.predict_spikes(test.spikes, motornet.bin_ms)
    truth = np.concatenate([test.behavior["hand_pos"], test.behavior["hand_vel"]], axis=-1)
    r2 = 1 - ((decoded - truth) ** 2).sum((0, 1)) / ((truth - truth.mean((0, 1))) ** 2).sum((0, 1))
    assert (r2 > 0.55).all(), r2
    again = BehaviourDecoder.from_dict(json.loads(json.dumps(decoder.to_dict())))
    rates = decoder.predict(smoothed_rates(test.spikes, motornet.bin_ms, 40.0))
    np.testing.assert_array_equal(again.predict(smoothed_rates(test.spikes, motornet.bin_ms, 40.0)), rates)
    assert again.source == "spikes"
    with pytest.raises(GnocchiError, match="reads 120 neurons"):
        decoder.predict(np.ones((2, 3)))


# ---------------------------------------------------------------------- evaluate and generate, end to end
@pytest.fixture(scope="module")
def models(data, tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    path = root / "data.h5"
    data.save(path)
    gnocchi = GnocchiConfig(code_dim=4, channels=16, cond_dim=32, encoder_channels=16, sample_steps=5,
                            latent_dim=6, ae_channels=16, ae_epochs=15,
                            train=TrainConfig(epochs=30, batch_size=32, lr=3e-3, warmup_steps=10, patience=1000))
    GnocchiModel(gnocchi, device="cpu").fit(data, root / "gnocchi", progress=False)
    lfads = LfadsConfig(ic_enc_dim=16, ci_enc_dim=0, con_dim=0, co_dim=0, ic_dim=8, gen_dim=16, fac_dim=6,
                        posterior_samples=2, prior_components=2,
                        train=replace(LfadsConfig().train, epochs=10, batch_size=32, patience=1000))
    LfadsModel(lfads, device="cpu").fit(data, root / "lfads", progress=False)
    return root


def _gnocchi(*args):
    return subprocess.run([sys.executable, "-m", "gnocchi_core.cli", *map(str, args)], capture_output=True, text=True)


def test_evaluate_writes_the_report_for_both_models(models):
    out = models / "report"
    result = _gnocchi("evaluate", "--data", models / "data.h5", "--model", models / "gnocchi", "--model",
                      models / "lfads", "--out", out, "--samples", 2)
    assert result.returncode == 0, result.stderr
    text = (out / "report.json").read_text()
    report = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    required = {"code_snr_target_x", "code_snr_target_y", "code_snr_axis_target_x", "r2_generated",
                "r2_generated_single", "r2_truth_ceiling", "nav_slope_target_x", "nav_slope_target_y",
                "leakage_target_x", "leakage_target_y", "unintended_target_x", "axis_cos_whitened_target_x_target_y",
                "axis_cos_random_expected", "decoded_target_error_cm", "decoded_target_error_cm_single",
                "velocity_r2", "velocity_r2_single", "decoder_endpoint_error_cm",
                "heldout_target_error_cm", "heldout_target_error_frac_grid"}
    assert set(report["models"]) == {"gnocchi", "lfads"} and report["dataset"]["trials"] == 240
    for metrics in report["models"].values():
        assert required <= set(metrics)
        for key in required:
            entry = metrics[key]
            assert len(entry["seeds"]) == 1 and entry["sd"] is None and entry["why"]
            assert entry["mean"] is None or np.isfinite(entry["mean"])
        assert 0 <= metrics["axis_cos_whitened_target_x_target_y"]["mean"] <= 1
        assert metrics["code_snr_target_x"]["mean"] > 0
    table = (out / "report.md").read_text()
    assert "| metric | gnocchi | lfads |" in table and "held-out target error predicted from codes, cm" in table
    for figure in ("codes_pca", "code_snr", "r2_neurons", "navigation", "unintended_orthogonality",
                   "heldout_targets"):
        assert (out / f"{figure}.png").read_bytes().startswith(b"\x89PNG"), figure
        assert f"({figure}.png)" in table
    assert "code_snr_target_x" in result.stdout


def test_evaluate_refuses_a_model_of_another_dataset(models, tmp_path):
    other = synthesize(SynthConfig(n_trials=60, n_neurons=12, n_heldout_neurons=2, grid=3, seed=0))
    other.save(tmp_path / "other.h5")
    result = _gnocchi("evaluate", "--data", tmp_path / "other.h5", "--model", models / "gnocchi", "--out", tmp_path)
    assert result.returncode == 2 and "trained on 70 bins × 40 neurons" in result.stderr


def test_generate_along_an_axis_writes_a_dataset_and_an_lfads_file(models, data, tmp_path):
    out, lfads = tmp_path / "walk.h5", tmp_path / "walk_lfads.h5"
    result = _gnocchi("generate", "--model", models / "gnocchi", "--navigate", "target_x", "--data",
                      models / "data.h5", "--points", 5, "--references", 2, "--out", out, "--lfads", lfads)
    assert result.returncode == 0, result.stderr
    walk = load_dataset(out)
    assert walk.spikes.shape == (10, data.n_bins, data.n_neurons) and walk.rates.shape == walk.spikes.shape
    assert walk.behavior["hand_pos"].shape == (10, data.n_bins, 2)
    commanded = walk.trial_info["commanded_target_x_cm"].to_numpy()
    low, high = data.trial_info["target_x"].min(), data.trial_info["target_x"].max()
    np.testing.assert_allclose(np.unique(commanded), np.linspace(low, high, 5))  # across the grid, never off it
    reference = data.trial_info.set_index("trial_id").loc[walk.trial_info["reference_trial"], "target_x"].to_numpy()
    np.testing.assert_allclose(reference + walk.trial_info["delta_target_x_cm"].to_numpy(), commanded)
    assert walk.latents.shape[-1] == 4  # the code, per bin
    assert import_lfads(lfads).n_trials == 10
    codes = tmp_path / "codes.npy"
    np.save(codes, np.zeros((3, 4), dtype=np.float32))
    assert _gnocchi("generate", "--model", models / "lfads", "--codes", codes, "--data", models / "data.h5",
                    "--out", tmp_path / "bad.h5").returncode == 2  # LFADS codes have 8 dimensions
    bad = _gnocchi("generate", "--model", models / "gnocchi", "--navigate", "elbow", "--data", models / "data.h5",
                   "--out", tmp_path / "x.h5")
    assert bad.returncode == 2 and "unknown axis 'elbow'" in bad.stderr
