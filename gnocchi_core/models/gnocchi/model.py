"""GNOCCHI: InfoDiffusion for trials of neural activity (McCart et al.).

An encoder maps a trial x0 (bins × neurons of smoothed, sqrt'd, standardised rates) to a code
c ∈ R^L; a denoiser conditioned on c turns Gaussian noise into a trial. Training minimises

    ‖ε̂ − ε‖²  +  λ_rec·‖x̂0 − x0‖²  +  λ_mmd·MMD(codes, N(0, I))

with x̂0 rebuilt from the predicted noise at the same step. Because x̂0 − x0 = (ε̂ − ε)/√SNR,
the reconstruction term weights the high-noise steps, where the denoiser can only know the
trial through its code: it is what makes the code informative. The MMD term pulls the
aggregate code distribution to N(0, I), so prior samples and straight-line walks in code
space stay where the denoiser was trained.

The network's output is read as v (``prediction="v"``, see diffusion.py): ε̂ and x̂0 both
follow from it without dividing by √ᾱ. A plain ε-network failed here: at the noisiest steps
its x̂0 amplified a small ε error a hundredfold and samples diverged. With λ_rec = 1 the score
and reconstruction terms add up to the v-loss, weighting every noise level equally.

Choices (the paper's full hyper-parameters are not public; each is a config field):
- L = 8: the synthetic and MotorNet reaches have 4 behavioural degrees of freedom (start x/y,
  target x/y) plus trial-to-trial variability; 8 leaves room without diluting the SNR.
- cosine schedule, 1000 steps (Nichol & Dhariwal): gentler at low noise than linear, which
  matters for smooth rates; few-step DDIM stays faithful on it.
- a 64-channel two-level U-Net (~0.7 M parameters with the encoder): trials are only ~70
  bins, and CPU sampling has to be interactive (8 trials in < 100 ms at the default step count).
- σ = 40 ms smoothing + sqrt + standardisation: stabilises Poisson variance so the Gaussian
  diffusion sees near-homoscedastic data; inverted when generating (rates in spikes/s). At
  ~20 spikes/s and 10 ms bins, 20 ms smoothing left single trials so noisy that they
  correlated worse with the true rates (R² −3.5 on the synthetic data) than 40 ms (−1.4).
- λ_rec = 1 (see above); λ_mmd = 1 with bandwidths 0.25–4: strong enough to keep codes near
  N(0, I), weak enough not to wash out structure.
- 25 DDIM steps by default: on the synthetic data their samples match 1000-step samples from
  the same codes and noise with R² 0.99 (10 steps: 0.95), at 40× fewer denoiser calls.
- predicted x0 clipped to 1.2× the training range while sampling, which keeps few-step DDIM
  from overshooting.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...atomic import atomic_path
from ...data.preprocessing import Preprocessing
from ...data.trialdata import TrialData
from ...errors import GnocchiError
from ..base import CONFIG_FILE, Generated, ModelFolder, WEIGHTS_FILE, poisson_spikes, read_config, trial_counts
from ..priors import CodeMixture
from ..training import LAST, Trainer, TrainConfig, record_run, load_checkpoint, load_weights, resolve_device
from .diffusion import NoiseSchedule, ddim_sample, ddpm_sample
from .losses import mmd
from .networks import Denoiser, Encoder

FORMAT_VERSION = 1
BATCH = 256  # trials per forward pass when encoding / generating


@dataclass
class GnocchiConfig:
    code_dim: int = 8
    channels: int = 64
    cond_dim: int = 128
    encoder_channels: int = 64
    dropout: float = 0.0
    diffusion_steps: int = 1000
    schedule: str = "cosine"
    sample_steps: int = 25
    prediction: str = "v"
    lambda_rec: float = 1.0
    lambda_mmd: float = 1.0
    mmd_bandwidths: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    x0_clip_margin: float = 1.2
    sigma_ms: float = 40.0
    sqrt: bool = True
    prior_components: int = 10
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, params: dict) -> "GnocchiConfig":
        params = dict(params)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(params) - known
        if unknown:
            raise GnocchiError(f"unknown GNOCCHI config fields {sorted(unknown)}")
        params["train"] = TrainConfig(**params.get("train", {}))
        params["mmd_bandwidths"] = tuple(params.get("mmd_bandwidths", cls.mmd_bandwidths))
        return cls(**params)


class GnocchiNet(nn.Module):
    """Encoder + denoiser + schedule, with the training losses. Tensors are (batch, neurons, bins)."""

    def __init__(self, config: GnocchiConfig, n_neurons: int, n_bins: int):
        super().__init__()
        self.config = config
        self.encoder = Encoder(n_neurons, n_bins, config.code_dim, config.encoder_channels)
        self.denoiser = Denoiser(n_neurons, config.code_dim, config.channels, config.cond_dim, config.dropout)
        self.schedule = NoiseSchedule(config.diffusion_steps, config.schedule)

    def losses(self, batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        x0 = batch[0]
        code = self.encoder(x0)
        step = torch.randint(0, self.schedule.steps, (len(x0),), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = self.schedule.add_noise(x0, noise, step)
        eps, x0_hat = self.schedule.eps_and_x0(x_t, self.denoiser(x_t, step, code), step, cfg.prediction)
        score = F.mse_loss(eps, noise)
        rec = F.mse_loss(x0_hat, x0)
        prior = mmd(code, torch.randn_like(code), cfg.mmd_bandwidths)
        loss = score + cfg.lambda_rec * rec + cfg.lambda_mmd * prior
        return {"loss": loss, "score": score, "rec": rec, "mmd": prior}


class GnocchiModel(ModelFolder):
    """Fit on a TrialData, then `encode` trials to codes and `generate` trials from codes."""

    kind = "gnocchi"

    def __init__(self, config: GnocchiConfig | None = None, device: str = "auto"):
        self.config = config or GnocchiConfig()
        self.device = resolve_device(device)
        self.net: GnocchiNet | None = None
        self.preprocessing: Preprocessing | None = None
        self.mixture: CodeMixture | None = None
        self.clip_x0: float | None = None
        self.data_info: dict = {}
        self.history: list[dict] = []

    # ------------------------------------------------------------------ shape
    @property
    def code_dim(self) -> int:
        return self.config.code_dim

    # ------------------------------------------------------------------ training
    def fit(self, data: TrialData, out_dir: str | os.PathLike, *, resume: bool = False,
            progress: bool = True, on_epoch_end=None) -> "GnocchiModel":
        """Train on the 'train' trials (held-out conditions excluded), validate on 'valid'.

        ``on_epoch_end``: called with each epoch's history record (e.g. to report progress)."""
        cfg = self.config
        out_dir = Path(out_dir)
        train = data.subset(trials=data.heldin_conditions("train"))
        valid = data.subset(trials=(data.trial_info["split"] == "valid").to_numpy()) \
            if (data.trial_info["split"] == "valid").any() else None
        if valid is None:
            raise GnocchiError("the dataset has no 'valid' trials to validate on")
        torch.manual_seed(cfg.train.seed)
        self.preprocessing = Preprocessing(sigma_ms=cfg.sigma_ms, sqrt=cfg.sqrt).fit(train.spikes, data.bin_ms)
        self.data_info = {"n_neurons": data.n_neurons, "n_bins": data.n_bins, "bin_ms": data.bin_ms,
                          "t0_ms": data.t0_ms, "neuron_ids": data.neuron_ids.tolist(),
                          "heldout_neurons": data.heldout_neurons.tolist(), "source": data.provenance.source}
        x_train = self._to_model_space(train.spikes)
        x_valid = self._to_model_space(valid.spikes)
        self.clip_x0 = float(cfg.x0_clip_margin * x_train.abs().max())
        self.net = GnocchiNet(cfg, data.n_neurons, data.n_bins)

        record_run(out_dir, {"config": self._config_dict(), "data": self.data_info,
                             "preprocessing": self.preprocessing.to_dict()}, resume)
        trainer = Trainer(self.net, cfg.train, out_dir, self.device, progress=progress)
        if resume:
            trainer.restore(out_dir / LAST)
        self.history = trainer.fit([x_train], [x_valid], on_epoch_end=on_epoch_end)
        self.net = trainer.best_module()
        self.mixture = CodeMixture.fit(self.encode(train), cfg.prior_components, cfg.train.seed)
        self.save(out_dir)
        return self

    # ------------------------------------------------------------------ the interface
    @torch.no_grad()
    def encode(self, trials: TrialData | np.ndarray) -> np.ndarray:
        """Codes (n, code_dim) of trials given as a TrialData or counts (n, bins, neurons)."""
        self._require_trained()
        x = self._to_model_space(trial_counts(trials, self.n_bins, self.n_neurons))
        self.net.eval()
        return torch.cat([self.net.encoder(chunk.to(self.device)).cpu() for chunk in x.split(BATCH)]).numpy()

    @torch.no_grad()
    def generate(self, codes: np.ndarray, *, steps: int | None = None, noise: np.ndarray | None = None,
                 seed: int | None = None, spikes: bool = False, sampler: str = "ddim",
                 eta: float = 0.0) -> Generated:
        """Trials for each code: rates (n, bins, neurons) in spikes/s, optionally Poisson spikes.

        ``noise`` (n, neurons, bins) or ``seed`` fixes the initial noise: with DDIM at η = 0 the
        sample is then a deterministic, smooth function of the code. ``sampler='ddpm'`` runs the
        full ancestral chain (all diffusion steps; slow, for reference).
        """
        self._require_trained()
        codes = np.atleast_2d(np.asarray(codes, dtype=np.float32))
        if codes.shape[1] != self.config.code_dim:
            raise GnocchiError(f"codes must have {self.config.code_dim} dimensions, found shape {codes.shape}")
        n = len(codes)
        generator = torch.Generator().manual_seed(seed if seed is not None else int(np.random.SeedSequence().entropy % 2**63))
        shape = (n, self.n_neurons, self.n_bins)
        if noise is None:
            noise_t = torch.randn(shape, generator=generator)
        else:
            noise_t = torch.as_tensor(np.asarray(noise, dtype=np.float32))
            if tuple(noise_t.shape) != shape:
                raise GnocchiError(f"noise must have shape {shape} (trials, neurons, bins), found {tuple(noise_t.shape)}")
        self.net.eval()
        outputs = []
        for chunk_codes, chunk_noise in zip(torch.from_numpy(codes).split(BATCH), noise_t.split(BATCH)):
            code = chunk_codes.to(self.device)

            def denoise(x, step, code=code):
                return self.net.denoiser(x, step, code)

            start = chunk_noise.to(self.device)
            common = dict(prediction=self.config.prediction, clip_x0=self.clip_x0, generator=generator)
            if sampler == "ddim":
                x0 = ddim_sample(denoise, self.net.schedule, start, steps or self.config.sample_steps,
                                 eta=eta, **common)
            elif sampler == "ddpm":
                x0 = ddpm_sample(denoise, self.net.schedule, start, **common)
            else:
                raise ValueError(f"unknown sampler '{sampler}': choose 'ddim' or 'ddpm'")
            outputs.append(x0.cpu())
        x0 = torch.cat(outputs).transpose(1, 2).numpy()
        rates = self.preprocessing.inverse_transform(x0).astype(np.float32)
        return Generated(rates=rates, codes=codes,
                         spikes=poisson_spikes(rates, self.bin_ms, seed) if spikes else None)

    def sample_prior(self, n: int, *, seed: int | None = None, kind: str = "gaussian") -> np.ndarray:
        """Codes for unconditional generation: the N(0, I) prior, or 'mixture' fitted to training codes."""
        self._require_trained()
        if kind == "gaussian":
            return np.random.default_rng(seed).standard_normal((n, self.config.code_dim)).astype(np.float32)
        if kind == "mixture":
            return self.mixture.sample(n, seed).astype(np.float32)
        raise ValueError(f"unknown prior '{kind}': choose 'gaussian' or 'mixture'")

    # ------------------------------------------------------------------ persistence
    def save(self, model_dir: str | os.PathLike) -> None:
        """``config.json`` + ``model.pt`` (tensors only), each written atomically."""
        self._require_trained()
        model_dir = Path(model_dir)
        with atomic_path(model_dir / WEIGHTS_FILE) as tmp:
            torch.save({"net": self.net.state_dict(), "mixture": self.mixture.to_tensors()}, tmp)
        summary = {k: v for k, v in self.history[-1].items()} if self.history else {}
        config = {"kind": self.kind, "format_version": FORMAT_VERSION, "config": self._config_dict(),
                  "preprocessing": self.preprocessing.to_dict(), "data": self.data_info,
                  "clip_x0": self.clip_x0, "epochs_trained": len(self.history), "last_epoch": summary}
        with atomic_path(model_dir / CONFIG_FILE) as tmp:
            tmp.write_text(json.dumps(config, indent=1))

    @classmethod
    def load(cls, model_dir: str | os.PathLike, device: str = "auto") -> "GnocchiModel":
        saved = read_config(model_dir)
        if saved.get("kind") != cls.kind or saved.get("format_version") != FORMAT_VERSION:
            raise GnocchiError(f"{model_dir}: not a GNOCCHI model of format {FORMAT_VERSION} "
                               f"(kind {saved.get('kind')!r}, format {saved.get('format_version')!r})")
        model = cls(GnocchiConfig.from_dict(saved["config"]), device=device)
        model.preprocessing = Preprocessing.from_dict(saved["preprocessing"])
        model.data_info = saved["data"]
        model.clip_x0 = saved["clip_x0"]
        model.net = GnocchiNet(model.config, model.n_neurons, model.n_bins).to(model.device)
        weights = load_checkpoint(Path(model_dir) / WEIGHTS_FILE, model.device)
        load_weights(model.net, weights["net"], Path(model_dir) / WEIGHTS_FILE)
        model.mixture = CodeMixture.from_tensors(weights["mixture"])
        model.net.eval()
        return model

    # ------------------------------------------------------------------ helpers
    def _to_model_space(self, counts: np.ndarray) -> torch.Tensor:
        """Counts (n, bins, neurons) → float32 tensor (n, neurons, bins) the networks read."""
        return torch.from_numpy(self.preprocessing.transform(counts).astype(np.float32)).transpose(1, 2).contiguous()

