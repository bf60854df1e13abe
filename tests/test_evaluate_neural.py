"""`gnocchi evaluate` on a recording with condition labels but no hand kinematics (the neural
evaluation, `analysis.neural`): what applies is measured for both model kinds, every reach metric is
n/a with the reason, the figures that apply are drawn; the condition code SNR and accuracy as pure
functions; and the error when the trials have neither conditions nor kinematics."""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from gnocchi_core.analysis.decoding import BehaviourDecoder
from gnocchi_core.analysis.evaluation import REACH_METRICS
from gnocchi_core.analysis.figures import write_figures
from gnocchi_core.analysis.metrics import Undefined, code_snr, condition_accuracy, condition_discriminant
from gnocchi_core.analysis.neural import evaluate_neural
from gnocchi_core.data.readiness import evaluation_kind, missing_reach
from gnocchi_core.data.synthetic import SynthConfig, synthesize
from gnocchi_core.errors import GnocchiError
from gnocchi_core.models import load_model
from gnocchi_core.models.gnocchi import GnocchiConfig, GnocchiModel
from gnocchi_core.models.lfads import LfadsConfig, LfadsModel
from gnocchi_core.models.training import TrainConfig
from gnocchi_core.workflows import evaluate_folders

torch.set_num_threads(1)

SHIPPED = Path(__file__).resolve().parents[1] / "assets" / "models" / "report" / "report.json"
FIGURES = {"codes_pca.png", "code_snr.png", "r2_neurons.png"}
NEURAL = ("code_snr_condition", "condition_accuracy", "condition_accuracy_chance", "r2_generated",
          "r2_generated_single", "r2_truth_ceiling")


def without_kinematics(data, *, conditions: bool = True, truth: bool = True):
    """``data`` with no behaviour and no start/target labels; condition labels and splits kept unless
    ``conditions`` is False; its ground-truth rates dropped unless ``truth``."""
    info = data.trial_info.copy()
    info[["start_x", "start_y", "target_x", "target_y", "reach_angle"]] = np.nan
    if not conditions:
        info["condition_id"] = -1
        info["heldout_condition"] = False
    return dataclasses.replace(data, trial_info=info, behavior={}, behavior_units={},
                               rates=data.rates if truth else None, latents=None)


@pytest.fixture(scope="module")
def neural(tmp_path_factory):
    """A 120-trial, 30-unit recording without kinematics, a tiny GNOCCHI and a tiny LFADS trained on it,
    and `evaluate_folders`' reports with and without ground-truth rates."""
    root = tmp_path_factory.mktemp("neural")
    data = without_kinematics(synthesize(SynthConfig(n_trials=120, n_neurons=30, n_heldout_neurons=5, grid=3, seed=2)))
    assert evaluation_kind(data) == "neural"
    data.save(root / "data.h5")
    without_kinematics(data, truth=False).save(root / "recorded.h5")
    gnocchi = GnocchiConfig(code_dim=4, channels=16, cond_dim=32, encoder_channels=16, sample_steps=3, latent_dim=4,
                            ae_channels=16, ae_epochs=3,
                            train=TrainConfig(epochs=4, batch_size=32, warmup_steps=5, patience=1000))
    GnocchiModel(gnocchi, device="cpu").fit(data, root / "gnocchi", progress=False)
    lfads = LfadsConfig(ic_enc_dim=16, ci_enc_dim=8, con_dim=8, co_dim=2, ic_dim=8, gen_dim=16, fac_dim=4,
                        posterior_samples=2, prior_components=2,
                        train=replace(LfadsConfig().train, epochs=4, batch_size=32, patience=1000))
    LfadsModel(lfads, device="cpu").fit(data, root / "lfads", progress=False)
    folders = [str(root / "gnocchi"), str(root / "lfads")]
    reports = {name: evaluate_folders(str(root / f"{name}.h5"), folders, str(root / name), samples=2, progress=False)
               for name in ("data", "recorded")}
    return root, data, reports


def test_neural_metrics_are_numbers_for_both_model_kinds(neural):
    root, data, reports = neural
    report = json.loads((root / "data" / "report.json").read_text(),
                        parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))  # strict JSON
    assert report == reports["data"] and report["evaluation"] == "neural"
    assert set(report["models"]) == {"gnocchi", "lfads"}
    assert report["dataset"]["missing_reach"] == missing_reach(data) and report["dataset"]["ground_truth_rates"]
    for name, metrics in report["models"].items():
        for key in NEURAL:
            assert metrics[key]["mean"] is not None and np.isfinite(metrics[key]["mean"]), (name, key, metrics[key])
        assert metrics["code_snr_condition"]["mean"] >= 0
        assert 0 <= metrics["condition_accuracy"]["mean"] <= 1
        conditions = data.trial_info.loc[data.heldin_conditions("test"), "condition_id"]
        assert metrics["condition_accuracy_chance"]["mean"] == pytest.approx(
            conditions.value_counts().max() / len(conditions), abs=1e-6)
    assert report["models"]["lfads"]["cobps"]["mean"] is not None  # held-out neurons, an encoder that skips them
    assert "held out" in report["models"]["gnocchi"]["cobps"]["why"]


def test_every_reach_metric_is_null_with_the_missing_kinematics(neural):
    _, data, reports = neural
    reason = missing_reach(data)
    assert reason.startswith("no behaviour 'hand_pos'")
    for metrics in reports["data"]["models"].values():
        for key in REACH_METRICS:
            assert metrics[key]["mean"] is None and metrics[key]["why"] == reason, key
        for key in ("code_snr_target_x", "code_snr_axis_target_y"):  # no start/target labels either
            assert metrics[key]["mean"] is None and "target_x" in metrics[key]["why"]


def test_reach_metrics_are_those_of_the_reach_evaluation():
    """The neural report has a row for every metric of the shipped reach report: measured, or n/a."""
    shipped = set(json.loads(SHIPPED.read_text())["models"]["gnocchi"]) - {"kind"}
    assert set(REACH_METRICS) <= shipped
    assert shipped - set(REACH_METRICS) <= {"code_snr_target_x", "code_snr_target_y", "code_snr_axis_target_x",
                                            "code_snr_axis_target_y", "r2_generated", "r2_generated_single",
                                            "r2_truth_ceiling"}


def test_markdown_and_figures(neural):
    root, _, _ = neural
    text = (root / "data" / "report.md").read_text()
    assert "| metric | gnocchi | lfads |" in text and "code SNR by condition" in text
    assert "n/a (no behaviour 'hand_pos'" in text and "navigation slope, target x" in text
    assert "held-in conditions" in text and "targets" not in text.split("\n")[2]  # the dataset summary line
    assert "No reaches to evaluate" in text and "coloured by condition" in text
    written = {p.name for p in (root / "data").glob("*.png")}
    assert written == FIGURES
    for name in FIGURES:
        assert (root / "data" / name).read_bytes().startswith(b"\x89PNG") and f"({name})" in text


def test_without_ground_truth_the_recorded_rates_are_compared(neural):
    _, _, reports = neural
    report = reports["recorded"]
    assert not report["dataset"]["ground_truth_rates"]
    for metrics in report["models"].values():
        for key in NEURAL:
            assert metrics[key]["mean"] is not None, key
    # the code metrics do not depend on which rates generation is compared with
    for key in ("code_snr_condition", "condition_accuracy"):
        assert [report["models"][n][key]["mean"] for n in ("gnocchi", "lfads")] == \
            [reports["data"]["models"][n][key]["mean"] for n in ("gnocchi", "lfads")]


def test_no_behaviour_decoder_is_fitted(neural, tmp_path, monkeypatch):
    root, _, _ = neural

    def refuse(*args, **kwargs):
        raise AssertionError("a behaviour decoder was fitted on data without kinematics")

    monkeypatch.setattr(BehaviourDecoder, "fit", refuse)
    report = evaluate_folders(str(root / "recorded.h5"), [str(root / "lfads")], str(tmp_path), samples=1,
                              progress=False)
    assert report["models"]["lfads"]["r2_generated"]["mean"] is not None


def test_figures_draw_without_warnings(neural, tmp_path):
    root, data, _ = neural
    evaluations = [evaluate_neural(name, load_model(root / name, device="cpu"), data, samples=2)
                   for name in ("gnocchi", "lfads")]
    assert all(np.isnan(ev.axes).all() and ev.pcs.shape == (data.n_trials, 3) for ev in evaluations)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paths = write_figures(evaluations, data, tmp_path)
    assert {p.name for p in paths} == FIGURES


def test_neither_conditions_nor_kinematics_is_a_clear_error(neural, tmp_path):
    root, data, _ = neural
    bare = without_kinematics(data, conditions=False)
    bare.save(tmp_path / "bare.h5")
    with pytest.raises(GnocchiError, match=r"neither reaches \(no behaviour 'hand_pos'.*nor condition labels "
                                           r"\(no condition labels"):
        evaluate_folders(str(tmp_path / "bare.h5"), [str(root / "gnocchi")], str(tmp_path / "out"), progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(GnocchiError, match="condition labels"):
        evaluate_neural("gnocchi", load_model(root / "gnocchi", device="cpu"), bare)


# ---------------------------------------------------------------------- the condition metrics, pure functions
def _clustered(n_conditions=6, per_condition=30, dim=5, spread=0.7, seed=0):
    rng = np.random.default_rng(seed)
    conditions = np.repeat(np.arange(n_conditions), per_condition)
    means = rng.normal(0, 1, (n_conditions, dim))
    return means[conditions] + rng.normal(0, spread, (len(conditions), dim)), conditions


def test_condition_code_snr_is_higher_for_codes_that_separate_conditions():
    codes, conditions = _clustered()
    train = np.arange(len(codes)) % 2 == 0
    shuffled = np.random.default_rng(1).permutation(codes)
    snr = code_snr(codes[~train], condition_discriminant(codes[train], conditions[train]), conditions[~train])
    snr_shuffled = code_snr(shuffled[~train], condition_discriminant(shuffled[train], conditions[train]),
                            conditions[~train])
    assert snr > 2 and snr_shuffled < 0.5 and snr > 10 * snr_shuffled
    # the first discriminant beats any single code dimension, on trials it was not fitted on
    assert snr > max(code_snr(codes[~train], np.eye(5)[k], conditions[~train]) for k in range(5))
    accuracy, chance = condition_accuracy(codes[train], conditions[train], codes[~train], conditions[~train])
    accuracy_shuffled, _ = condition_accuracy(shuffled[train], conditions[train], shuffled[~train], conditions[~train])
    assert chance == pytest.approx(1 / 6) and accuracy > 0.6 and accuracy_shuffled < 0.4


def test_condition_metrics_undefined_cases():
    codes, conditions = _clustered(n_conditions=3, per_condition=4)
    with pytest.raises(Undefined, match="condition"):
        condition_discriminant(codes, np.zeros(len(codes)))
    with pytest.raises(Undefined, match="within-condition"):
        condition_discriminant(codes[:3], conditions[[0, 4, 8]])
    with pytest.raises(Undefined, match="do not vary"):
        condition_accuracy(np.ones_like(codes), conditions, codes, conditions)
    assert condition_discriminant(codes[:, :1], conditions).shape == (1,)  # a one-dimensional code
