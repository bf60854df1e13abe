"""Benchmarks that print figures (not timed tests): sampling latency, few-step fidelity, quality."""

from __future__ import annotations

import dataclasses
import json
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
#: How to make that file where it is missing (nlb_tools' own tensors, from the DANDI train session).
NLB_RECIPE = ("pip install nlb_tools dandi && dandi download DANDI:000140 && python -c \"import h5py; "
              "from nlb_tools.nwb_interface import NWBDataset; "
              "from nlb_tools.make_tensors import make_train_input_tensors as tr, make_eval_input_tensors as ev; "
              "d = NWBDataset('000140/sub-Jenkins/sub-Jenkins_ses-small_desc-train_behavior+ecephys.nwb'); d.resample(5); "
              "t = {**tr(d, 'mc_maze_small', 'train', save_file=False, include_behavior=True, include_forward_pred=True), "
              "**ev(d, 'mc_maze_small', 'val', save_file=False)}; f = h5py.File('mc_maze_small_full.h5', 'w'); "
              "[f.create_dataset(k, data=v) for k, v in t.items()]\"")
#: Epochs at the start of a run that speed figures leave out (TorchScript specialises its loops then).
WARMUP_EPOCHS = 5


def load_heldout_split(path: str | os.PathLike, *, valid_fraction: float = 0.2, seed: int = 0) -> tuple:
    """(dataset with train / valid / test trials, description) for scoring co-bps without selection on it.

    Validation, early stopping and checkpoint selection see only ``valid`` trials, drawn from the
    trials with known labels; co-bps is scored once, on the ``test`` trials' held-out neurons.
    - NLB tensor file (``mc_maze_small_full.h5``): the train trials split train / valid
      (``valid_fraction``, stratified by derived condition, seeded); the eval trials are test.
    - DANDI NWB train session (``sub-*_desc-train_*.nwb``): binned as nlb_tools makes the MC_Maze
      tensors (5 ms, −250..450 ms around movement onset); its 'train' trials split train / valid,
      its 'val' trials are test. (The DANDI test session hides its held-out neurons: it cannot be scored.)
    - GNOCCHI dataset: its own splits; it needs valid and test trials.
    """
    from .data.labels import stratified_split

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise GnocchiError(f"{path}: file not found (pass --data; to make MC_Maze_Small's NLB tensor file: "
                           f"{NLB_RECIPE})")
    if not h5py.is_hdf5(path):
        raise GnocchiError(f"{path}: not an HDF5 file: expected NLB tensors, a DANDI NWB train session or a "
                           "GNOCCHI dataset")
    with h5py.File(path, "r") as f:
        kind = "nlb" if "train_spikes_heldin" in f else "nwb" if "units" in f and "intervals" in f else "dataset"
    if kind == "nlb":
        from .data.nlb import import_nlb

        data = import_nlb(path, valid_fraction=valid_fraction, seed=seed)
        return data, (f"NLB tensors: the {_count(data, 'train', 'valid')} train trials split train/valid "
                      f"({valid_fraction:g}, seed {seed}) for early stopping and checkpoint selection; "
                      f"the {_count(data, 'test')} eval trials scored once, at the end")
    if kind == "nwb":
        from .data.nwb import import_nwb

        data = import_nwb(path, bin_ms=5.0, window_ms=(-250.0, 450.0))
        if not data.heldout_neurons.any():
            raise GnocchiError(f"{path}: no held-out neurons (a DANDI test session keeps them for NLB's server): "
                               "pass the train session, sub-*_desc-train_behavior+ecephys.nwb")
        split = data.trial_info["split"].to_numpy()
        if not (split == "valid").any():
            raise GnocchiError(f"{path}: no NLB 'val' trials to score (trials table column 'split')")
        labelled = split == "train"
        info = data.trial_info.copy()
        new = np.where(labelled, "train", "test").astype(object)
        new[labelled] = stratified_split(info["condition_id"].to_numpy()[labelled], valid_fraction, 0.0, seed)
        info["split"] = new
        data = dataclasses.replace(data, trial_info=info)
        return data, (f"DANDI NWB train session, 5 ms bins −250..450 ms around movement onset: its "
                      f"{_count(data, 'train', 'valid')} 'train' trials split train/valid ({valid_fraction:g}, "
                      f"seed {seed}); its {_count(data, 'test')} 'val' trials scored once, at the end")
    data = load_dataset(path)
    for needed in ("train", "valid", "test"):
        if not _count(data, needed):
            raise GnocchiError(f"{path}: no '{needed}' trials: co-bps needs train, valid (selection) and test "
                               "(scoring) trials")
    return data, "dataset splits: train → valid (early stopping, checkpoint) → test (scored once)"


def _count(data, *splits: str) -> int:
    return int(data.trial_info["split"].isin(splits).sum())


def _machine_load() -> str:
    load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    busy = "busy" if load > 0.5 else "idle"
    return f"load average {load:.2f} on {cores} cores ({busy} before the run)"


def _lfads_config(overrides: dict | None, **train):
    from .models.lfads import LfadsConfig

    overrides = dict(overrides or {})
    overrides["train"] = {**overrides.get("train", {}), **{k: v for k, v in train.items() if v is not None}}
    return LfadsConfig.from_dict(overrides)


def _epoch_seconds(stamps: list[float], start: float) -> np.ndarray:
    """Seconds per epoch from end-of-epoch time stamps, warm-up epochs left out (all kept if that leaves none)."""
    times = np.diff([start] + stamps)
    return times[WARMUP_EPOCHS:] if len(times) > WARMUP_EPOCHS else times


def bench_train_lfads(data_path: str | os.PathLike | None = None, *, epochs: int = 25,
                      threads: int | None = None, device: str = "cpu") -> dict:
    """Seconds per training epoch of LFADS at lfads-torch's mc_maze_small sizes (the defaults), on
    the co-bps split (`load_heldout_split`) with batch 64; each epoch also validates and writes
    checkpoints, as in real training. The first `WARMUP_EPOCHS` epochs are trained but not counted."""
    import tempfile

    from .models.lfads import LfadsModel

    if threads is not None:
        torch.set_num_threads(threads)
    data, description = load_heldout_split(data_path or DEFAULT_NLB_FILE)
    config = _lfads_config(None, epochs=WARMUP_EPOCHS + epochs, patience=10**9)
    n_train = _count(data, "train")
    steps = -(-n_train // config.train.batch_size)
    print(f"LFADS training speed on {data_path or DEFAULT_NLB_FILE}")
    print(f"  {description}; {n_train} train trials × {data.n_bins} bins, batch {config.train.batch_size} "
          f"→ {steps} steps per epoch; {torch.get_num_threads()} threads; {_machine_load()}")
    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        LfadsModel(config, device=device).fit(data, out, progress=False,
                                              on_epoch_end=lambda record: stamps.append(time.perf_counter()))
    times = _epoch_seconds(stamps, start)
    median = float(np.median(times))
    print(f"  median {median:.3f} s/epoch over {len(times)} epochs (min {times.min():.3f}, max {times.max():.3f}); "
          f"{_machine_load().split(' (')[0]} after")
    return {"median_s_per_epoch": median, "epoch_s": times.tolist(), "steps_per_epoch": steps,
            "threads": torch.get_num_threads()}


def bench_cobps(data_path: str | os.PathLike, *, epochs: int | None = None, seed: int = 0,
                config: dict | None = None, out_dir: str | os.PathLike | None = None, device: str = "cpu",
                progress: bool = True) -> dict:
    """Train LFADS (its defaults, or with ``config`` overrides) and score co-bps on the test trials'
    held-out neurons once, beside the NLB smoothing baseline fitted on the train trials (both with
    `bits_per_spike`). Selection uses only the valid trials (`load_heldout_split`). Returns co-bps,
    the baseline's, and the median seconds per epoch (validation and checkpoints included)."""
    import tempfile

    from .analysis.baselines import smoothing_baseline
    from .analysis.metrics import bits_per_spike
    from .models.lfads import LfadsModel

    data, description = load_heldout_split(data_path)
    heldout = data.heldout_neurons
    if not heldout.any():
        raise GnocchiError(f"{data_path}: no held-out neurons to score co-bps on")
    lfads_config = _lfads_config(config, seed=seed, epochs=epochs)
    train, test = data.split("train"), data.split("test")
    print(f"co-bps on {test.n_trials} test trials × {int(heldout.sum())} held-out neurons of {data_path}")
    print(f"  {description}")
    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        model = LfadsModel(lfads_config, device=device).fit(
            data, out_dir or tmp, progress=progress, on_epoch_end=lambda record: stamps.append(time.perf_counter()))
    rates = model.infer(test, seed=seed)["output_params"]
    lfads = bits_per_spike(rates[:, :, heldout], test.spikes[:, :, heldout])
    _, smoothed = smoothing_baseline(train.spikes[:, :, ~heldout], train.spikes[:, :, heldout],
                                     test.spikes[:, :, ~heldout], bin_ms=data.bin_ms)
    smoothing = bits_per_spike(smoothed, test.spikes[:, :, heldout])
    best = min(model.history, key=lambda r: r["valid_loss"])
    times = _epoch_seconds(stamps, start)
    result = {"lfads": lfads, "smoothing": smoothing, "s_per_epoch": float(np.median(times)),
              "epoch_s": times.tolist(), "epochs": len(model.history), "best_epoch": int(best["epoch"]),
              "stopped": model.stopped, "config": dataclasses.asdict(lfads_config)}
    print(f"  LFADS ({'defaults' if not config else 'defaults + ' + json.dumps(config)}, {len(model.history)} "
          f"epochs, best at {best['epoch']} on valid, {lfads_config.posterior_samples} posterior samples)  "
          f"co-bps {lfads:.4f}; median {result['s_per_epoch']:.3f} s/epoch")
    print(f"  smoothing baseline (60 ms, Poisson GLM α 0.1)  co-bps {smoothing:.4f}")
    return result
