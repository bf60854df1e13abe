"""LFADS (lfads-torch's architecture) behind the shared generation interface."""

from .model import LfadsConfig, LfadsModel, LfadsNet
from .output import write_lfads_output

__all__ = ["LfadsConfig", "LfadsModel", "LfadsNet", "write_lfads_output"]
