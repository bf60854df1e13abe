"""The dashboard's components, one `pn.viewable.Viewer` each, all reading one `NavigationState`."""

from .activity import Activity, ReferenceActivity
from .code_space import CodeSpace
from .controls import Controls
from .reaches import Reaches
from .readout import Readout

__all__ = ["Activity", "CodeSpace", "Controls", "Reaches", "Readout", "ReferenceActivity"]
