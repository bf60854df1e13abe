"""The dashboard's components, one `pn.viewable.Viewer` each, all reading one `NavigationState`."""

from .activity import Activity, ReferenceActivity
from .code_space import CodeSpace
from .controls import Controls
from .reaches import Reaches
from .readout import Readout

__all__ = ["Activity", "CodeSpace", "Controls", "Reaches", "Readout", "ReferenceActivity", "plot_names"]


def plot_names(models) -> list[str]:
    """The Bokeh model names of the plots a session shows for ``models``, as the views name them
    (tests and benchmarks find the plots in the page by these)."""
    return [f"{kind}-{m}" for m in models for kind in ("codes", "activity", "reach")] + ["reference-activity"]
