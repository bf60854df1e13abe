"""GNOCCHI: InfoDiffusion for trials of neural activity (McCart et al.).

An encoder maps a trial x0 to a code c ∈ R^L; a denoiser conditioned on c turns Gaussian noise
into a trial. Training minimises

    ‖ε̂ − ε‖²  +  λ_rec·‖x̂0 − x0‖²  +  λ_mmd·MMD(codes, N(0, I))

with x̂0 rebuilt from the network's output at the same step. Because x̂0 − x0 = (ε̂ − ε)/√SNR,
the reconstruction term weights the high-noise steps, where the denoiser can only know the
trial through its code: it is what makes the code informative. The MMD term pulls the
aggregate code distribution to N(0, I), so prior samples and straight-line walks in code
space stay where the denoiser was trained. Codes are learned without behaviour labels.

What x0 is (``space``):
- ``"latent"`` (default): the smooth latent trajectories (latent_dim × bins) of a Poisson
  autoencoder trained first on the same trials (autoencoder.py, as LDNS does). A generated x0
  is decoded to rates, so every sample is a smooth, positive rate and spikes are drawn from it;
  the diffusion never has to reproduce spike noise, and it runs over 16 channels instead of
  one per neuron.
- ``"rates"``: smoothed (σ = ``sigma_ms``), sqrt'd, standardised spike counts, as in the paper;
  samples then carry single-trial noise, which only averaging many samples removes.

Design choices (each a config field; what was measured for each, and how to rerun it, is in the
README's GNOCCHI section):
- the network's output is read as v (``prediction="v"``, see diffusion.py): ε̂ and x̂0 both
  follow from it without dividing by √ᾱ, so x̂0 stays well-conditioned at the noisiest steps.
- the denoiser sees sinusoidal bin-position channels (``positional``): the code enters through
  FiLM, the same for every bin, so without them the network cannot tell when in the trial it is
  when its input is pure noise.
- classifier-free guidance (``code_dropout``, ``guidance``): the code is replaced by a learned
  null code on a fraction of training steps, so sampling can push away from the unconditional
  model by a scale w (1 = none).
- L = 16: the reaches have 4 behavioural degrees of freedom (start x/y, target x/y) plus
  trial-to-trial variability.
- cosine schedule, 1000 steps (Nichol & Dhariwal); DDIM with ``sample_steps`` steps by default
  (`gnocchi bench sample` measures its fidelity to the 1000-step ancestral chain and its latency);
  predicted x0 clipped to 1.2× the training range while sampling, which keeps few-step DDIM from
  overshooting.
- a 64-channel two-level 1-D U-Net: trials are short (~70 bins) and sampling on a CPU has to be
  interactive.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data.preprocessing import Preprocessing
from ...data.trialdata import TrialData
from ...data.validation import FRACTION, NON_NEGATIVE, POSITIVE, as_number, at_least, describe
from ...errors import ArgumentError, ConfigError, ModelFileError
from ..base import CONFIG_FILE, Generated, ModelFolder, poisson_spikes, trial_counts
from ..training import LAST, TRAIN_RULES, TimeBudget, TrainConfig, load_weights
from ..validation import Even, check_choice, check_codes, check_count, check_guidance, check_noise, check_seed, \
    check_steps, check_config, from_dict
from .diffusion import PREDICTIONS, NoiseSchedule, ddim_sample, ddpm_sample
from .autoencoder import PoissonAutoencoder
from .losses import mmd
from .networks import Denoiser, Encoder

FORMAT_VERSION = 2
BATCH = 256  # trials per forward pass when encoding / generating
SPACES = ("latent", "rates")
SCHEDULES = ("cosine", "linear")
AUTOENCODER_DIR = "autoencoder"


@dataclass
class GnocchiConfig:
    code_dim: int = 16
    channels: int = 64
    positional: int = 16  # sinusoidal bin-position channels fed to the denoiser (see networks.Denoiser)
    cond_dim: int = 128
    encoder_channels: int = 64
    dropout: float = 0.1
    diffusion_steps: int = 1000
    schedule: str = "cosine"
    sample_steps: int = 10
    prediction: str = "v"
    lambda_rec: float = 20.0
    lambda_mmd: float = 0.1
    mmd_bandwidths: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    x0_clip_margin: float = 1.2
    sigma_ms: float = 40.0
    sqrt: bool = True
    prior_components: int = 10
    #: what the diffusion generates: "latent" (a Poisson autoencoder's smooth latents, decoded to
    #: rates) or "rates" (smoothed, sqrt'd, standardised spike counts, as in the paper)
    space: str = "latent"
    latent_dim: int = 16
    ae_channels: int = 64
    ae_coordinated_dropout: float = 0.3
    ae_smoothness: float = 0.1
    ae_epochs: int = 150
    #: classifier-free guidance: fraction of training steps whose code is replaced by a learned
    #: null code, and the default guidance scale w when sampling (1 = no guidance)
    code_dropout: float = 0.1
    guidance: float = 1.0
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        check_config(self, RULES)
        if self.sample_steps > self.diffusion_steps:
            raise ConfigError(field="sample_steps", expected=f"an integer in 1..diffusion_steps ({self.diffusion_steps})",
                              found=self.sample_steps)
        if self.space == "latent" and self.ae_epochs < 1:
            raise ConfigError(field="ae_epochs", expected="an integer ≥ 1 (space 'latent' trains an autoencoder first)",
                              found=self.ae_epochs)

    @classmethod
    def from_dict(cls, params: dict, path: str | os.PathLike | None = None) -> "GnocchiConfig":
        """A config from JSON-like overrides of the defaults; ``path``: the file they came from, for errors."""
        return from_dict(cls, params, RULES, path=path)


#: GnocchiConfig's ranges (types come from the annotations; see models/validation.py)
RULES = {
    "code_dim": at_least(1), "channels": at_least(1), "positional": Even(NON_NEGATIVE),  # sin/cos pairs; 0: none
    "cond_dim": Even(at_least(2)), "encoder_channels": at_least(1), "dropout": FRACTION,
    "diffusion_steps": at_least(2), "schedule": SCHEDULES, "sample_steps": at_least(1), "prediction": PREDICTIONS,
    "lambda_rec": NON_NEGATIVE, "lambda_mmd": NON_NEGATIVE, "mmd_bandwidths": POSITIVE, "x0_clip_margin": POSITIVE,
    "sigma_ms": NON_NEGATIVE, "sqrt": None, "prior_components": at_least(1), "space": SPACES,
    "latent_dim": at_least(1), "ae_channels": at_least(1), "ae_coordinated_dropout": FRACTION,
    "ae_smoothness": NON_NEGATIVE, "ae_epochs": NON_NEGATIVE, "code_dropout": FRACTION, "guidance": NON_NEGATIVE,
    "train": TRAIN_RULES,
}


def check_preprocessing(params, n_neurons: int, path: Path) -> Preprocessing:
    """The ``preprocessing`` object of a GNOCCHI model's config.json (see `Preprocessing.to_dict`)."""
    field = "preprocessing"
    expected = {"sigma_ms", "sqrt", "standardize", "bin_ms", "mean", "std"}
    if not isinstance(params, dict) or set(params) != expected:
        raise ModelFileError("is not a fitted preprocessing", path=path, field=field,
                             expected=f"an object with fields {sorted(expected)}",
                             found=describe(params) if not isinstance(params, dict) else f"fields {sorted(params)}")
    common = dict(error=ModelFileError, path=path)
    checked = {"sigma_ms": as_number(params["sigma_ms"], f"{field}.sigma_ms", NON_NEGATIVE, **common),
               "bin_ms": as_number(params["bin_ms"], f"{field}.bin_ms", POSITIVE, **common)}
    for key in ("sqrt", "standardize"):
        if not isinstance(params[key], bool):
            raise ModelFileError(field=f"{field}.{key}", path=path, expected="true or false", found=describe(params[key]))
        checked[key] = params[key]
    for key in ("mean", "std"):
        values = params[key]
        ok = isinstance(values, list) and len(values) == n_neurons and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and (key == "mean" or v > 0)
            for v in values)
        if not ok:
            raise ModelFileError("not the fitted preprocessing of this model", path=path, field=f"{field}.{key}",
                                 expected=f"a list of {n_neurons} finite numbers" + (" > 0" if key == "std" else ""),
                                 found=describe(values))
        checked[key] = values
    return Preprocessing.from_dict(checked)


class GnocchiNet(nn.Module):
    """Encoder + denoiser + schedule, with the training losses. Tensors are (batch, neurons, bins)."""

    def __init__(self, config: GnocchiConfig, n_channels: int, n_bins: int):
        super().__init__()
        self.config = config
        self.encoder = Encoder(n_channels, n_bins, config.code_dim, config.encoder_channels)
        self.denoiser = Denoiser(n_channels, config.code_dim, config.channels, config.cond_dim, config.dropout,
                                 config.positional)
        self.schedule = NoiseSchedule(config.diffusion_steps, config.schedule)

    def guided(self, code: torch.Tensor, guidance: float):
        """The denoiser as a function of (x, step) for this code, with classifier-free guidance
        out = out(∅) + w·(out(code) − out(∅)) when w ≠ 1 (one batched call for both)."""
        if guidance == 1.0:
            return lambda x, step: self.denoiser(x, step, code)

        def denoise(x, step):
            null = torch.zeros(len(x), dtype=torch.bool, device=x.device)
            out = self.denoiser(torch.cat([x, x]), torch.cat([step, step]), torch.cat([code, code]),
                                drop=torch.cat([null, ~null]))
            conditional, unconditional = out.chunk(2)
            return unconditional + guidance * (conditional - unconditional)
        return denoise

    def losses(self, batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        x0 = batch[0]
        code = self.encoder(x0)
        step = torch.randint(0, self.schedule.steps, (len(x0),), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = self.schedule.add_noise(x0, noise, step)
        drop = torch.rand(len(x0), device=x0.device) < cfg.code_dropout if cfg.code_dropout > 0 else None
        eps, x0_hat = self.schedule.eps_and_x0(x_t, self.denoiser(x_t, step, code, drop=drop), step, cfg.prediction)
        score = F.mse_loss(eps, noise)
        rec = F.mse_loss(x0_hat, x0)
        prior = mmd(code, torch.randn_like(code), cfg.mmd_bandwidths)
        loss = score + cfg.lambda_rec * rec + cfg.lambda_mmd * prior
        return {"loss": loss, "score": score, "rec": rec, "mmd": prior}


class GnocchiModel(ModelFolder):
    """Fit on a TrialData, then `encode` trials to codes and `generate` trials from codes."""

    kind = "gnocchi"
    label = "a GNOCCHI model"
    config_class = GnocchiConfig
    format_version = FORMAT_VERSION
    readable_formats = (1, FORMAT_VERSION)  # format 1: before latent space and guidance

    def __init__(self, config: GnocchiConfig | None = None, device: str = "auto"):
        super().__init__(config, device)
        self.preprocessing: Preprocessing | None = None
        self.clip_x0: float | None = None
        self.autoencoder: PoissonAutoencoder | None = None
        self.autoencoder_training: dict = {}  # the autoencoder stage's epochs trained and why it stopped

    # ------------------------------------------------------------------ shape
    @property
    def code_dim(self) -> int:
        return self.config.code_dim

    # ------------------------------------------------------------------ training
    def fit(self, data: TrialData, out_dir: str | os.PathLike, *, resume: bool = False,
            progress: bool = True, on_epoch_end=None, max_minutes: float | None = None) -> "GnocchiModel":
        """Train on the 'train' trials (held-out conditions excluded), validate on 'valid'.

        In latent space the autoencoder is trained first (``out_dir/autoencoder``), then the
        diffusion model on its latents. ``on_epoch_end``: called with each epoch's history record
        of either stage (e.g. to report progress; ``ae_epochs + train.epochs`` calls at most).
        ``max_minutes``: a wall-clock budget for the whole fit; training stops at the end of the
        epoch in which it runs out and the folder is finished as after any run (``self.stopped``
        says why training ended). The autoencoder may spend a share of it in proportion to its
        epochs (``ae_epochs`` against ``train.epochs``), at most half; the diffusion the rest. Each
        stage trains at least one epoch. Ctrl-C: see `ModelFolder._train_net` (during the
        autoencoder stage there is no model yet to finish; the interrupt just propagates).
        """
        cfg = self.config
        out_dir = Path(out_dir)
        budget = self._budget(max_minutes)
        train, valid = self._training_splits(data)
        self.preprocessing = Preprocessing(sigma_ms=cfg.sigma_ms, sqrt=cfg.sqrt).fit(train.spikes, data.bin_ms)
        self._record_run(out_dir, {"config": self._config_dict(), "data": self.data_info,
                                   "preprocessing": self.preprocessing.to_dict()}, resume)
        if cfg.space == "latent":
            share = min(0.5, cfg.ae_epochs / max(1, cfg.ae_epochs + cfg.train.epochs))
            self.autoencoder = self._fit_autoencoder(train, valid, out_dir, resume, progress, on_epoch_end,
                                                     None if budget is None else budget.part(share))
        x_train = self._to_model_space(train.spikes)
        x_valid = self._to_model_space(valid.spikes)
        self.clip_x0 = float(cfg.x0_clip_margin * x_train.abs().max())
        self.net = GnocchiNet(cfg, self._channels, data.n_bins)
        return self._train_net(train, [x_train], [x_valid], out_dir, resume, progress, on_epoch_end, budget)

    def _fit_autoencoder(self, train: TrialData, valid: TrialData, out_dir: Path, resume: bool,
                         progress: bool, on_epoch_end=None, budget: TimeBudget | None = None) -> PoissonAutoencoder:
        """The Poisson autoencoder on the training counts, early-stopped on the valid trials, in
        ``out_dir/autoencoder``. Once the diffusion has a checkpoint (``out_dir/last.pt``) a resume
        trains it no further: the diffusion has learned its latents."""
        cfg = self.config
        counts = [torch.from_numpy(d.spikes.astype(np.float32)).transpose(1, 2).contiguous() for d in (train, valid)]
        autoencoder = PoissonAutoencoder(train.n_neurons, cfg.latent_dim, cfg.ae_channels,
                                         coordinated_dropout=cfg.ae_coordinated_dropout, smoothness=cfg.ae_smoothness)
        autoencoder.set_input_scaling(counts[0])
        (out_dir / AUTOENCODER_DIR).mkdir(parents=True, exist_ok=True)
        trainer = self._trainer(autoencoder, dataclasses.replace(cfg.train, epochs=cfg.ae_epochs),
                                out_dir / AUTOENCODER_DIR, resume, progress)
        if not (resume and (out_dir / LAST).is_file()):
            trainer.fit([counts[0]], [counts[1]], on_epoch_end=on_epoch_end, budget=budget)
        self.autoencoder_training = {"epochs_trained": len(trainer.history), "stopped": trainer.stopped}
        autoencoder = trainer.best_module()
        autoencoder.set_latent_scaling(counts[0].to(self.device))
        return autoencoder.eval()

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
                 eta: float = 0.0, guidance: float | None = None) -> Generated:
        """Trials for each code: rates (n, bins, neurons) in spikes/s, optionally Poisson spikes.

        ``noise`` (n, neurons, bins) or ``seed`` fixes the initial noise: with DDIM at η = 0 the
        sample is then a deterministic, smooth function of the code. ``sampler='ddpm'`` runs the
        full ancestral chain (all diffusion steps; slow, for reference). ``guidance``: the
        classifier-free guidance scale (default: the config's; only a model trained with
        ``code_dropout`` > 0 has learned the unconditional denoiser it needs).
        """
        self._require_trained()
        codes = check_codes(codes, self.config.code_dim)
        steps = check_steps(steps, self.config.diffusion_steps)
        seed, guidance = check_seed(seed), check_guidance(guidance)
        sampler = check_choice(sampler, "sampler", ("ddim", "ddpm"), "sampler")
        eta = as_number(eta, "eta", NON_NEGATIVE, error=ArgumentError)
        n = len(codes)
        channels = self._channels
        generator = torch.Generator().manual_seed(seed if seed is not None else int(np.random.SeedSequence().entropy % 2**63))
        shape = (n, channels, self.n_bins)
        if noise is None:
            noise_t = torch.randn(shape, generator=generator)
        else:
            what = f"trials, {'latent channels' if channels != self.n_neurons else 'neurons'}, bins"
            noise_t = torch.from_numpy(check_noise(noise, shape, what))
        self.net.eval()
        outputs = []
        for chunk_codes, chunk_noise in zip(torch.from_numpy(codes).split(BATCH), noise_t.split(BATCH)):
            denoise = self.net.guided(chunk_codes.to(self.device), self.config.guidance if guidance is None else guidance)
            start = chunk_noise.to(self.device)
            common = dict(prediction=self.config.prediction, clip_x0=self.clip_x0, generator=generator)
            if sampler == "ddim":
                x0 = ddim_sample(denoise, self.net.schedule, start, self.config.sample_steps if steps is None else steps,
                                 eta=eta, **common)
            else:
                x0 = ddpm_sample(denoise, self.net.schedule, start, **common)
            outputs.append(self._to_rates(x0).cpu())
        rates = torch.cat(outputs).transpose(1, 2).numpy().astype(np.float32)
        return Generated(rates=rates, codes=codes,
                         spikes=poisson_spikes(rates, self.bin_ms, seed) if spikes else None)

    def sample_prior(self, n: int, *, seed: int | None = None, kind: str = "gaussian") -> np.ndarray:
        """Codes for unconditional generation: the N(0, I) prior, or 'mixture' fitted to training codes."""
        self._require_trained()
        n, seed = check_count(n), check_seed(seed)
        if check_choice(kind, "kind", ("gaussian", "mixture"), "prior") == "gaussian":
            return np.random.default_rng(seed).standard_normal((n, self.config.code_dim)).astype(np.float32)
        return self.mixture.sample(n, seed).astype(np.float32)

    # ------------------------------------------------------------------ persistence
    def _extra_weights(self) -> dict:
        return {"autoencoder": self.autoencoder.state_dict()} if self.autoencoder is not None else {}

    def _extra_config(self) -> dict:
        return {"preprocessing": self.preprocessing.to_dict(), "clip_x0": self.clip_x0,
                **({"autoencoder_training": self.autoencoder_training} if self.autoencoder_training else {})}

    @classmethod
    def _upgrade_config(cls, saved: dict) -> dict:
        return {"space": "rates", "positional": 0, **saved["config"]} if saved["format_version"] == 1 \
            else saved["config"]

    def _build(self, saved: dict, weights: dict, path: Path) -> None:
        cfg = self.config
        config_path = path.parent / CONFIG_FILE
        for key in ("preprocessing", "clip_x0"):
            if key not in saved:
                raise ModelFileError("required field is missing", path=config_path, field=key)
        self.preprocessing = check_preprocessing(saved["preprocessing"], self.n_neurons, config_path)
        self.clip_x0 = as_number(saved["clip_x0"], "clip_x0", POSITIVE, error=ModelFileError, path=config_path)
        if saved["format_version"] == 1:  # the null code of guidance did not exist yet
            weights["net"]["denoiser.null_code"] = torch.zeros(cfg.cond_dim)
        if cfg.space == "latent":
            self.autoencoder = PoissonAutoencoder(self.n_neurons, cfg.latent_dim, cfg.ae_channels).to(self.device)
            load_weights(self.autoencoder, weights.get("autoencoder", {}), path)
            self.autoencoder.eval()
        self.net = GnocchiNet(cfg, self._channels, self.n_bins).to(self.device)
        load_weights(self.net, weights["net"], path)

    # ------------------------------------------------------------------ helpers
    @property
    def _channels(self) -> int:
        """Channels of what the diffusion generates: latent channels or neurons."""
        return self.config.latent_dim if self.config.space == "latent" else self.n_neurons

    @torch.no_grad()
    def _to_model_space(self, counts: np.ndarray) -> torch.Tensor:
        """Counts (n, bins, neurons) → what the diffusion generates, a float32 tensor (n, channels, bins)
        on the CPU: the autoencoder's latents, or preprocessed rates."""
        if self.config.space == "latent":
            x = torch.from_numpy(np.asarray(counts, dtype=np.float32)).transpose(1, 2)
            return torch.cat([self.autoencoder.encode(chunk.contiguous().to(self.device)).cpu() for chunk in x.split(BATCH)])
        return torch.from_numpy(self.preprocessing.transform(counts).astype(np.float32)).transpose(1, 2).contiguous()

    @torch.no_grad()
    def _to_rates(self, x0: torch.Tensor) -> torch.Tensor:
        """Generated x0 (n, channels, bins) → rates in spikes/s (n, neurons, bins)."""
        if self.config.space == "latent":
            return self.autoencoder.log_counts(x0).exp() * (1000.0 / self.bin_ms)
        rates = self.preprocessing.inverse_transform(x0.transpose(1, 2).cpu().numpy())
        return torch.from_numpy(rates.astype(np.float32)).transpose(1, 2)

