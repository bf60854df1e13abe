"""Benchmarks that print figures (not timed tests): sampling latency, few-step fidelity, quality."""

from __future__ import annotations

import time

import numpy as np
import torch

from .analysis.metrics import behaviour_axes, code_snr, condition_average, r2_per_neuron
from .data import load_dataset
from .errors import GnocchiError
from .models import load_model

BEHAVIOUR = ("start_x", "start_y", "target_x", "target_y")


def _codes(model, data_path: str | None, n: int) -> np.ndarray:
    if data_path is None:
        return model.sample_prior(n, seed=0)
    data = load_dataset(data_path)
    test = data.split("test")
    codes = model.encode(test if test.n_trials else data)
    return np.resize(codes, (n, codes.shape[1]))


def bench_sampling(model_dir: str, *, data_path: str | None = None, steps=(10, 25, 50, 1000),
                   batches=(1, 8, 32), repeats: int = 20, device: str = "auto") -> dict:
    """Print and return latency p50/p95 (ms) per (batch, steps) and R² of few-step vs 1000-step samples."""
    model = load_model(model_dir, device=device)
    codes = _codes(model, data_path, max(batches))
    where = f"{model.device} ({torch.get_num_threads()} threads)" if model.device.type == "cpu" else str(model.device)
    print(f"model {model_dir}: {model.n_bins} bins × {model.n_neurons} neurons, code {codes.shape[1]}-d, on {where}")
    print(f"{'trials':>6} {'steps':>6} {'p50 ms':>9} {'p95 ms':>9}")
    latency = {}
    for batch in batches:
        for n_steps in steps:
            n_repeats = repeats if n_steps <= 100 else max(3, repeats // 10)
            model.generate(codes[:batch], steps=n_steps, seed=0)  # warm-up
            times = []
            for r in range(n_repeats):
                start = time.perf_counter()
                model.generate(codes[:batch], steps=n_steps, seed=r)
                times.append((time.perf_counter() - start) * 1000)
            p50, p95 = np.percentile(times, [50, 95])
            latency[(batch, n_steps)] = (p50, p95)
            print(f"{batch:>6} {n_steps:>6} {p50:>9.1f} {p95:>9.1f}")

    reference_steps = model.net.schedule.steps
    reference = model.generate(codes, steps=reference_steps, seed=0).rates
    print(f"\nfidelity against {reference_steps}-step DDIM, same {len(codes)} codes and noise "
          f"(R² pooled over trials, bins, neurons; mean per-neuron R²):")
    fidelity = {}
    for n_steps in sorted(set(steps) | {5, 10, 25}):
        if n_steps >= reference_steps:
            continue
        rates = model.generate(codes, steps=n_steps, seed=0).rates
        pooled = float(r2_per_neuron(reference.reshape(-1, 1), rates.reshape(-1, 1))[0])
        fidelity[n_steps] = pooled
        print(f"  {n_steps:>4} steps ({reference_steps // n_steps:>4}x fewer denoiser calls): "
              f"R² {pooled:.4f}, per-neuron {np.mean(r2_per_neuron(reference, rates)):.4f}")
    return {"latency_ms": latency, "fidelity_r2": fidelity}


def bench_quality(model_dir: str, data_path: str, *, steps: int | None = None, samples: int = 10,
                  device: str = "auto") -> dict:
    """Print and return code SNR per behavioural variable and R² of generated vs true rates.

    Axes are fitted on the training trials' codes; SNR and R² are measured on the held-in
    test trials (conditions the model trained on, trials it never saw).
    """
    model = load_model(model_dir, device=device)
    data = load_dataset(data_path)
    info = data.trial_info
    if info[list(BEHAVIOUR)].isna().any().any():
        raise GnocchiError(f"{data_path}: quality needs start and target labels on every trial")
    train = data.subset(trials=(info["split"] == "train").to_numpy())
    test = data.subset(trials=((info["split"] == "test") & ~info["heldout_condition"]).to_numpy())
    axes, _ = behaviour_axes(model.encode(train), train.trial_info[list(BEHAVIOUR)].to_numpy())
    codes = model.encode(test)
    conditions = test.trial_info["condition_id"].to_numpy()
    result = {f"code_snr_{name}": code_snr(codes, axes[:, k], conditions) for k, name in enumerate(BEHAVIOUR)
              if name.startswith("target")}
    print(f"model {model_dir} on {test.n_trials} held-in test trials of {data_path}")
    for key, value in result.items():
        print(f"  {key:<32} {value:8.2f}")
    if data.rates is not None:
        single = model.generate(codes, steps=steps, seed=0).rates
        result["r2_generated"] = float(np.mean(r2_per_neuron(test.rates, single)))
        # A generated trial is one noisy draw, like a recorded trial: average draws per condition.
        draws = np.mean([model.generate(codes, steps=steps, seed=s).rates for s in range(samples)], axis=0)
        truth_avg, _ = condition_average(test.rates, conditions)
        result["r2_generated_condition_avg"] = float(np.mean(r2_per_neuron(
            truth_avg, condition_average(draws, conditions)[0])))
        smoothed = model.preprocessing.smoothed_rates(test.spikes)
        result["r2_smoothed_data"] = float(np.mean(r2_per_neuron(test.rates, smoothed)))
        result["r2_smoothed_data_condition_avg"] = float(np.mean(r2_per_neuron(
            truth_avg, condition_average(smoothed, conditions)[0])))
        print(f"  R² against the true rates (mean over neurons); generated: one draw per test trial, "
              f"condition averages over {samples} draws per trial; smoothed data: the recorded test trials")
        for key in ("r2_generated", "r2_generated_condition_avg", "r2_smoothed_data", "r2_smoothed_data_condition_avg"):
            print(f"  {key:<32} {result[key]:8.3f}")
    return result
