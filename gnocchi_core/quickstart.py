"""Small default models of both kinds for a dataset that has none, within a stated time budget.

`gnocchi explore FILE` calls `train_default_models` when no model in its models folder was trained
on data of FILE's shape: one GNOCCHI (its config defaults) and one LFADS without a controller (the
initial condition carries the trial, the variant the generative comparison uses), trained one
after the other on every core, each stopped cleanly when its share of the budget runs out
(`fit(max_minutes=...)`) and saved with its best weights so far. A killed run resumes.
"""

from __future__ import annotations

from pathlib import Path

from .data.trialdata import TrialData
from .errors import GnocchiError
from .models.base import CONFIG_FILE, trained_shapes
from .models.training import has_checkpoint

#: name → (kind, config overrides, share of the time budget)
DEFAULT_MODELS = {
    "gnocchi": ("gnocchi", {"train": {"epochs": 100, "patience": 30}}, 0.6),
    "lfads": ("lfads", {"ci_enc_dim": 0, "con_dim": 0, "co_dim": 0, "train": {"epochs": 200, "patience": 40}}, 0.4),
}
DEFAULT_MINUTES = 8.0  # the whole budget on 2 CPU cores: the explorer opens within 10 minutes


def matching_models(models_dir: Path, data: TrialData) -> list[str]:
    """Model folders in ``models_dir`` trained on data of ``data``'s shape (bins, neurons)."""
    return [name for name, shape in trained_shapes(models_dir).items() if shape == (data.n_bins, data.n_neurons)]


def train_default_models(data: TrialData, models_dir: Path, *, max_minutes: float = DEFAULT_MINUTES,
                         device: str = "auto", progress: bool = True, log=print) -> list[str]:
    """Train `DEFAULT_MODELS` on ``data`` into ``models_dir``, sharing ``max_minutes`` between them; their names."""
    from .models.gnocchi import GnocchiConfig, GnocchiModel
    from .models.lfads import LfadsConfig, LfadsModel

    if not max_minutes > 0:
        raise GnocchiError(f"--max-minutes must be positive, got {max_minutes}")
    kinds = {"gnocchi": (GnocchiConfig, GnocchiModel), "lfads": (LfadsConfig, LfadsModel)}
    for name in DEFAULT_MODELS:
        if (models_dir / name / CONFIG_FILE).is_file():
            raise GnocchiError(f"{models_dir / name}: a model trained on other data is in the way; pass --models "
                               "with another folder")
    for name, (kind, overrides, share) in DEFAULT_MODELS.items():
        folder = models_dir / name
        resume = has_checkpoint(folder)
        minutes = max_minutes * share
        log(f"{'resuming' if resume else 'training'} {name} ({kind}) into {folder}: at most {minutes:.1f} min")
        config_class, model_class = kinds[kind]
        model = model_class(config_class.from_dict(overrides), device=device)
        model.fit(data, folder, resume=resume, progress=progress, max_minutes=minutes)
        log(f"{name}: {len(model.history)} epochs, stopped: {model.stopped}")
    return list(DEFAULT_MODELS)
