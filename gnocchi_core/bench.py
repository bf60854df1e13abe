"""Benchmarks that print figures (not timed tests): sampling latency, few-step fidelity, quality."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from .analysis.metrics import behaviour_axes, code_snr, condition_average, mean_r2, r2_per_neuron
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
                   batches=(1, 8, 32), repeats: int = 20, device: str = "auto", fidelity_samples: int = 8) -> dict:
    """Print and return latency p50/p95 (ms) per (batch, steps), and `sampler_fidelity`."""
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

    fidelity = sampler_fidelity(model, codes, sorted(set(steps) | {5, 10, 25}), samples=fidelity_samples)
    return {"latency_ms": latency, "fidelity_r2": fidelity}


def sampler_fidelity(model, codes: np.ndarray, steps, samples: int = 8, seed: int = 0) -> dict:
    """Print and return how faithful few-step DDIM is to the full ancestral (DDPM) chain.

    Like with like: for the same codes, the conditional mean over ``samples`` draws of each sampler;
    per-neuron R² over codes × bins, mean over neurons (`metrics.mean_r2`). Two independent sets of
    DDPM draws give the noise floor (``"ddpm_repeat"``): what a sampler indistinguishable from DDPM
    scores with this many draws."""
    total = model.net.schedule.steps

    def mean_of(seed0: int, **kwargs) -> np.ndarray:
        return np.mean([model.generate(codes, seed=seed0 + s, **kwargs).rates for s in range(samples)], axis=0)

    started = time.perf_counter()
    reference = mean_of(seed, sampler="ddpm")
    seconds = time.perf_counter() - started
    fidelity = {"ddpm_repeat": mean_r2(reference, mean_of(seed + samples, sampler="ddpm"))}
    print(f"\nfidelity against the {total}-step ancestral (DDPM) chain: conditional means of {samples} draws for "
          f"the same {len(codes)} codes, per-neuron R² (mean over neurons); DDPM took {seconds:.1f} s")
    print(f"  another {samples} DDPM draws (the noise floor): R² {fidelity['ddpm_repeat']:.4f}")
    for n_steps in steps:
        if n_steps >= total:
            continue
        fidelity[n_steps] = mean_r2(reference, mean_of(seed + 2 * samples, steps=n_steps))
        print(f"  {n_steps:>4}-step DDIM ({total // n_steps:>4}x fewer denoiser calls): R² {fidelity[n_steps]:.4f}")
    return fidelity


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
    test = data.subset(trials=data.heldin_conditions("test"))
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


# ---------------------------------------------------------------------- LFADS: training speed and co-bps
#: MC_Maze_Small as NLB tensors, in the shared data folder beside the repository.
DEFAULT_NLB_FILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "mc_maze_small" / "mc_maze_small_full.h5"
#: Measured on this machine on the same split (NLB train trials → eval trials), for comparison.
REFERENCE_COBPS = {"lfads-torch (its nlb_mc_maze_small config)": 0.131, "NLB smoothing baseline": 0.116}
REFERENCE_LFADS_TORCH_S_PER_EPOCH = 1.56


def eval_trials_as_valid(data):
    """NLB's 'val' phase, as lfads-torch runs it: the eval trials (split 'test' after `import_nlb`)
    become the validation trials, the ones early stopping watches and co-bps is measured on."""
    info = data.trial_info.copy()
    info.loc[info["split"] == "test", "split"] = "valid"
    return dataclasses.replace(data, trial_info=info)


def load_heldout_split(path: str | os.PathLike) -> tuple:
    """(dataset, split to evaluate co-bps on, description) for an NLB tensor file or a GNOCCHI dataset.

    NLB tensors: all train trials train (``valid_fraction=0``) and the eval trials, with their
    held-out neurons, validate and are evaluated. A GNOCCHI dataset keeps its splits: train on
    'train', validate on 'valid', evaluate on 'test' (or 'valid' if it has no test trials).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise GnocchiError(f"{path}: file not found (pass --data)")
    with h5py.File(path, "r") as f:
        nlb = "train_spikes_heldin" in f
    if nlb:
        from .data.nlb import import_nlb

        data = eval_trials_as_valid(import_nlb(path, valid_fraction=0.0))
        return data, "valid", "NLB 'val' phase: train on the train trials, validate and evaluate on the eval trials"
    data = load_dataset(path)
    has_test = bool((data.trial_info["split"] == "test").any())
    return data, "test" if has_test else "valid", "dataset splits: train → valid (early stopping) → " + \
        ("test (co-bps)" if has_test else "valid (co-bps)")


def _machine_load() -> str:
    load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    busy = "busy" if load > 0.5 else "idle"
    return f"load average {load:.2f} on {cores} cores ({busy} before the run)"


def bench_train_lfads(data_path: str | os.PathLike | None = None, *, epochs: int = 25, warmup: int = 5,
                      threads: int | None = None, device: str = "cpu") -> dict:
    """Seconds per training epoch of LFADS at lfads-torch's mc_maze_small sizes (the defaults).

    75 training trials at batch 64 are two optimisation steps per epoch (64 + 11; the last
    batch is kept, as lfads-torch's loader keeps it); each epoch also validates on the 25 eval
    trials and writes checkpoints, as in real training. The first `warmup` epochs (TorchScript
    specialises the loops during the first calls) are not counted.
    """
    import tempfile

    from .models.lfads import LfadsConfig, LfadsModel

    if threads is not None:
        torch.set_num_threads(threads)
    data, _, description = load_heldout_split(data_path or DEFAULT_NLB_FILE)
    config = LfadsConfig()
    config.train = dataclasses.replace(config.train, epochs=warmup + epochs, patience=10**9)
    n_train = int((data.trial_info["split"] == "train").sum())
    steps = -(-n_train // config.train.batch_size)
    print(f"LFADS training speed on {data_path or DEFAULT_NLB_FILE}")
    print(f"  {description}; {n_train} train trials × {data.n_bins} bins, batch {config.train.batch_size} "
          f"→ {steps} steps per epoch; {torch.get_num_threads()} threads; {_machine_load()}")
    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        LfadsModel(config, device=device).fit(data, out, progress=False,
                                              on_epoch_end=lambda record: stamps.append(time.perf_counter()))
    times = np.diff([start] + stamps)[warmup:]
    median = float(np.median(times))
    print(f"  median {median:.3f} s/epoch over {len(times)} epochs (min {times.min():.3f}, max {times.max():.3f}); "
          f"lfads-torch: {REFERENCE_LFADS_TORCH_S_PER_EPOCH} s/epoch; {_machine_load().split(' (')[0]} after")
    return {"median_s_per_epoch": median, "epoch_s": times.tolist(), "steps_per_epoch": steps,
            "threads": torch.get_num_threads()}


def bench_cobps(data_path: str | os.PathLike, *, epochs: int | None = None, seed: int = 0,
                out_dir: str | os.PathLike | None = None, device: str = "cpu", progress: bool = True) -> dict:
    """Train LFADS with the default config and print co-bps on held-out neurons, with the NLB
    smoothing baseline on the same trials (both scored by `bits_per_spike`)."""
    import tempfile

    from .analysis.baselines import smoothing_baseline
    from .analysis.metrics import bits_per_spike
    from .models.lfads import LfadsConfig, LfadsModel

    data, eval_split, description = load_heldout_split(data_path)
    heldout = data.heldout_neurons
    if not heldout.any():
        raise GnocchiError(f"{data_path}: no held-out neurons to score co-bps on")
    config = LfadsConfig()
    config.train = dataclasses.replace(config.train, seed=seed, **({} if epochs is None else {"epochs": epochs}))
    train, evaluated = data.split("train"), data.split(eval_split)
    print(f"co-bps on {evaluated.n_trials} {eval_split} trials × {int(heldout.sum())} held-out neurons of {data_path}")
    print(f"  {description}")
    with tempfile.TemporaryDirectory() as tmp:
        model = LfadsModel(config, device=device).fit(data, out_dir or tmp, progress=progress)
    rates = model.infer(evaluated, seed=seed)["output_params"]
    result = {"lfads": bits_per_spike(rates[:, :, heldout], evaluated.spikes[:, :, heldout])}
    _, smoothed = smoothing_baseline(train.spikes[:, :, ~heldout], train.spikes[:, :, heldout],
                                     evaluated.spikes[:, :, ~heldout], bin_ms=data.bin_ms)
    result["smoothing"] = bits_per_spike(smoothed, evaluated.spikes[:, :, heldout])
    best = min(model.history, key=lambda r: r["valid_loss"])
    print(f"  LFADS (defaults, {len(model.history)} epochs, best at {best['epoch']}, "
          f"{config.posterior_samples} posterior samples)  co-bps {result['lfads']:.4f}")
    print(f"  smoothing baseline (60 ms, Poisson GLM α 0.1)           co-bps {result['smoothing']:.4f}")
    for name, value in REFERENCE_COBPS.items():
        print(f"  reference: {name:<42} co-bps {value:.3f}")
    return result
