"""The dashboard's components, one `pn.viewable.Viewer` each, all reading one `NavigationState`."""

from .activity import Activity, ReferenceActivity
from .code_space import CodeSpace
from .controls import Controls
from .reaches import Reaches
from .readout import Readout

__all__ = ["Activity", "CodeSpace", "Controls", "Reaches", "Readout", "ReferenceActivity", "plot_names"]


def plot_names(models, reaches: bool = True) -> list[str]:
    """The Bokeh model names of the plots a session shows for ``models``, as the views name them
    (tests and benchmarks find the plots in the page by these). ``reaches``: the dataset has kinematics
    (`Workspace.has_reaches`); without, there is no reach plot."""
    kinds = ("codes", "activity", "reach") if reaches else ("codes", "activity")
    return [f"{kind}-{m}" for m in models for kind in kinds] + ["reference-activity"]
