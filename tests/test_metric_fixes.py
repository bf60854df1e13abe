"""The evaluation's metric fixes, each on a constructed case where the earlier definition gave the
wrong answer (the earlier definition is spelled out in each test so the failure mode stays visible)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gnocchi_core.analysis.evaluation import Recorder
from gnocchi_core.analysis.metrics import (Undefined, axis_cosine, behaviour_axes, code_snr, discriminant_direction,
                                           grid_deltas, leakage, mean_r2, navigation_codes, navigation_effect,
                                           random_axis_cosine, whitened_axis_cosine)
from gnocchi_core.analysis.report import aggregate, format_entry, markdown


def _two_trial_conditions(n_conditions=4000, signal_sd=2.0, noise_sd=1.0, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, signal_sd, n_conditions)
    conditions = np.repeat(np.arange(n_conditions), 2)
    codes = (means[conditions] + rng.normal(0, noise_sd, len(conditions)))[:, None]
    return codes, conditions


def test_code_snr_uses_unbiased_within_condition_variance():
    # two trials per condition, signal variance 4, noise variance 1: the condition means vary by
    # 4 + 1/2 and the within-condition variance is 1, so the SNR is 4.5. ddof 0 halves the
    # within-condition estimate and doubles the SNR → 9.
    codes, conditions = _two_trial_conditions()
    snr = code_snr(codes, np.array([1.0]), conditions)
    assert snr == pytest.approx(4.5, rel=0.05)
    projection = codes[:, 0]
    old = np.var([projection[conditions == c].mean() for c in np.unique(conditions)]) / np.mean(
        [projection[conditions == c].var() for c in np.unique(conditions)])
    assert old == pytest.approx(9.0, rel=0.05)


def test_code_snr_ignores_single_trial_conditions():
    codes, conditions = _two_trial_conditions(n_conditions=50)
    base = code_snr(codes, np.array([1.0]), conditions)
    # far-away conditions seen once carry no noise estimate: they must not inflate the signal term
    more = np.concatenate([codes, [[40.0], [-40.0]]])
    labels = np.concatenate([conditions, [10_000, 10_001]])
    assert code_snr(more, np.array([1.0]), labels) == pytest.approx(base)


def test_code_snr_undefined_with_one_condition():
    with pytest.raises(Undefined, match="condition"):
        code_snr(np.random.default_rng(0).normal(size=(6, 2)), np.array([1.0, 0.0]), np.zeros(6))


def test_discriminant_direction_reads_the_variable_from_the_quiet_dimension():
    # dim 0 carries target x with huge noise, dim 1 carries it with little: the behaviour axis
    # (how codes move per cm) weighs both equally, the discriminant direction picks dim 1
    rng = np.random.default_rng(1)
    target = np.repeat(np.linspace(-8, 8, 5), 40)
    codes = np.column_stack([target + rng.normal(0, 8, len(target)), target + rng.normal(0, 0.5, len(target))])
    axes, _ = behaviour_axes(codes, target[:, None])
    along_axis = code_snr(codes, axes[:, 0], target)
    along_discriminant = code_snr(codes, discriminant_direction(codes, target), target)
    assert along_discriminant > 5 * along_axis
    assert along_discriminant == pytest.approx(code_snr(codes, np.array([0.0, 1.0]), target), rel=0.2)


def test_navigation_stays_on_the_grid():
    references = np.array([-8.0, 0.0, 4.0, 8.0])
    deltas = grid_deltas(references, -8.0, 8.0, 9)
    commanded = references[None] + deltas
    assert commanded.min() == pytest.approx(-8.0) and commanded.max() == pytest.approx(8.0)
    assert np.allclose(commanded, np.linspace(-8, 8, 9)[:, None])
    # the old plan stepped every reference by ±span/2 = ±8 cm: a reference at 8 cm was sent to 16 cm
    old = references[None] + np.linspace(-8, 8, 9)[:, None]
    assert old.max() == 16.0
    codes = navigation_codes(np.zeros((4, 3)), np.array([1.0, 0, 0]), deltas)
    assert codes.shape == (9, 4, 3) and np.allclose(codes[..., 0], deltas)


def test_navigation_effect_with_per_reference_steps():
    references = np.array([-4.0, 4.0])
    deltas = grid_deltas(references, -8.0, 8.0, 5)
    variables = np.zeros((5, 2, 4))
    variables[..., 2] = references[None] + 0.5 * deltas  # moves half as far as commanded
    variables[..., 0] = 0.25 * np.abs(deltas)  # start x drifts 0.25 cm per commanded cm
    slope, unintended = navigation_effect(variables, deltas, intended=2)
    assert slope == pytest.approx(0.5)
    assert unintended == pytest.approx(0.25)
    # per achieved cm the same drift is twice as large: leakage is the headline for that reason
    assert leakage(unintended, slope) == pytest.approx(0.5)


def test_leakage_is_undefined_when_nothing_moves_or_it_moves_backwards():
    # the old leakage divided by |slope| and gave 0.2 / 0.001 = 200, or inf at 0, and a normal-looking
    # value for a traversal that moved the target the wrong way
    for slope in (0.001, 0.0, -0.8):
        with pytest.raises(Undefined, match="barely moves or moves the wrong way"):
            leakage(0.2, slope)


def test_whitened_orthogonality_ignores_how_codes_are_scaled_and_mixed():
    rng = np.random.default_rng(2)
    behaviour = rng.normal(size=(400, 2))
    codes = np.column_stack([behaviour, rng.normal(size=(400, 4))]) + 0.1 * rng.normal(size=(400, 6))
    mixing = rng.normal(size=(6, 6)) + 3 * np.eye(6)
    mixing[:, 0] *= 30  # one code dimension on a far larger scale
    cos, dim = whitened_axis_cosine(codes, behaviour, 0, 1)
    cos_mixed, dim_mixed = whitened_axis_cosine(codes @ mixing, behaviour, 0, 1)
    assert dim == dim_mixed == 6
    assert cos == pytest.approx(cos_mixed, abs=1e-6)
    raw = abs(axis_cosine(*behaviour_axes(codes, behaviour)[0].T))
    raw_mixed = abs(axis_cosine(*behaviour_axes(codes @ mixing, behaviour)[0].T))
    assert abs(raw - raw_mixed) > 0.2  # the raw cosine depends on the code space's scaling


def test_random_axis_cosine_matches_sampling():
    assert random_axis_cosine(2) == pytest.approx(2 / np.pi)
    rng = np.random.default_rng(3)
    for dim in (8, 100):
        a, b = rng.normal(size=(2, 20000, dim))
        sampled = np.mean(np.abs((a * b).sum(1)) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))
        assert random_axis_cosine(dim) == pytest.approx(sampled, rel=0.03)


def test_silent_neurons_are_left_out_of_r2_not_minus_infinity():
    truth = np.random.default_rng(4).uniform(1, 5, (6, 10, 3))
    truth[..., 1] = 0.0  # a silent neuron
    predicted = truth + 0.1
    assert mean_r2(truth, predicted) > 0.9  # the old mean over neurons was -inf
    with pytest.raises(Undefined):
        mean_r2(np.zeros((4, 5, 2)), np.ones((4, 5, 2)))


def test_undefined_metrics_are_null_with_a_reason_in_strict_json_and_markdown():
    record = Recorder()
    record("code_snr_target_x", lambda: code_snr(np.ones((4, 2)), np.array([1.0, 0.0]), np.zeros(4)))
    record("r2_generated", lambda: float("nan"))
    record("nav_slope_target_x", lambda: 0.8)
    assert record.metrics["code_snr_target_x"] is None and "condition" in record.why["code_snr_target_x"]
    assert record.metrics["r2_generated"] is None and record.metrics["nav_slope_target_x"] == 0.8

    class Ev:
        kind = "test"
        metrics, why = record.metrics, record.why

    entries = aggregate([Ev(), Ev()])
    text = json.dumps(entries, allow_nan=False)  # strict JSON: raises on NaN/inf
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert entries["code_snr_target_x"]["mean"] is None and entries["code_snr_target_x"]["why"]
    assert entries["nav_slope_target_x"] == {"mean": 0.8, "sd": 0.0, "seeds": [0.8, 0.8]}
    assert format_entry(entries["code_snr_target_x"]).startswith("n/a (")
    report = {"dataset": {"source": "x", "trials": 4, "neurons": 2, "heldin_targets": 1, "train_trials": 1,
                          "valid_trials": 1, "test_trials_heldin": 2, "test_trials_per_heldin_target_min": 2,
                          "heldout_targets": 0, "test_trials_heldout": 0},
              "seeds": [0, 1], "models": {"m": {"kind": "test", **entries}}}
    assert "n/a (" in markdown(report, [])


class _Generated:
    def __init__(self, rates):
        self.rates = rates


class _Diffusion:
    """A stochastic generator: truth + noise that depends on the seed."""

    deterministic_generate = False

    def __init__(self):
        self.calls = 0

    def generate(self, codes, seed=None):
        self.calls += 1
        noise = np.random.default_rng(seed).normal(0, 1.0, (len(codes), 5, 3))
        return _Generated(np.asarray(codes)[:, :1, None] + noise)


class _Posterior:
    """A deterministic generator whose single draws come from a sampled code."""

    deterministic_generate = True

    def __init__(self):
        self.calls, self.sampled = 0, False

    def encode(self, trials, sample=False, seed=None):
        self.sampled = sample
        return np.asarray(trials) + (np.random.default_rng(seed).normal(0, 1.0, np.shape(trials)) if sample else 0)

    def generate(self, codes, seed=None):
        self.calls += 1
        return _Generated(np.repeat(np.asarray(codes)[:, :1, None], 5, axis=1).repeat(3, axis=2))


def test_like_with_like_conditional_means_and_single_draws():
    from gnocchi_core.analysis.evaluation import conditional_mean, single_draw

    codes = np.linspace(-2, 2, 40)[:, None]
    diffusion = _Diffusion()
    mean = conditional_mean(diffusion, codes, samples=16, seed=0)
    assert diffusion.calls == 16  # the conditional mean of a sampler averages its draws
    single = single_draw(diffusion, None, codes, seed=0)
    truth = codes[:, :1, None] * np.ones((1, 5, 3))
    assert np.abs(mean - truth).mean() < 0.5 * np.abs(single - truth).mean()  # means are far less noisy
    posterior = _Posterior()
    assert np.allclose(conditional_mean(posterior, codes, samples=16, seed=0), truth) and posterior.calls == 1
    drawn = single_draw(posterior, codes, codes, seed=0)
    assert posterior.sampled and not np.allclose(drawn, truth)  # a single draw samples the code posterior
