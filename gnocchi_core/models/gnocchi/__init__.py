"""GNOCCHI: a code-conditioned diffusion model of trials of neural activity."""

from .model import GnocchiConfig, GnocchiModel

__all__ = ["GnocchiConfig", "GnocchiModel"]
