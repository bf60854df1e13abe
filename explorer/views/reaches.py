"""Decoded reaches of one model's generated trials on the workspace, with the target grid."""

from __future__ import annotations

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource

from ..state import NavigationState
from .plots import legend_below, new_figure

COLOUR = "#1f77b4"


class Reaches(pn.viewable.Viewer):
    """The mean decoded reach over the samples in bold, each sample's faint, the mean reach's end and the
    commanded target, over the target grid (held-out targets ringed) and the reference trial's real path."""

    def __init__(self, state: NavigationState, name: str, **params):
        super().__init__(**params)
        self.state, self.model_name = state, name
        ws = state.workspace
        targets = ws.targets
        lim = float(np.abs(targets[["target_x", "target_y"]].to_numpy()).max()) * 1.3
        fig = self.figure = new_figure(f"reach-{name}", f"{name}: decoded reach", height=400,
                                       x_range=(-lim, lim), y_range=(-lim, lim), match_aspect=True)
        fig.xaxis.axis_label, fig.yaxis.axis_label = "hand x (cm)", "hand y (cm)"
        grid = fig.scatter(targets["target_x"], targets["target_y"], marker="cross", size=10, color="grey")
        held = targets[targets["heldout"]]
        heldout = fig.scatter(held["target_x"], held["target_y"], size=16, fill_alpha=0, line_color="red",
                              line_width=2)
        self._real = ColumnDataSource(self._real_path())
        real = fig.line("x", "y", source=self._real, color="black", line_dash="dashed", line_width=2)
        self._samples = ColumnDataSource({"xs": [], "ys": []})
        samples = fig.multi_line("xs", "ys", source=self._samples, color=COLOUR, alpha=0.25, line_width=1,
                                 name=f"sample-reaches-{name}")
        self._mean = ColumnDataSource({"x": [], "y": []})
        mean = fig.line("x", "y", source=self._mean, color=COLOUR, line_width=4, name=f"mean-reach-{name}")
        self._end = ColumnDataSource({"x": [], "y": []})
        self._commanded = ColumnDataSource({"x": [], "y": []})
        end = fig.scatter("x", "y", source=self._end, marker="diamond", size=15, color=COLOUR, line_color="white")
        commanded = fig.scatter("x", "y", source=self._commanded, marker="x", size=16, color="red", line_width=3)
        self.legend = legend_below(fig, [
            ("target", [grid]), ("held-out target", [heldout]), ("recorded reach (reference)", [real]),
            ("generated samples", [samples]), ("mean generated reach", [mean]), ("end of the mean reach", [end]),
            ("commanded target", [commanded])])
        state.param.watch(self._update, "generations")
        state.param.watch(lambda event: self._real.data.update(self._real_path()), "reference")
        self._update()

    def _real_path(self) -> dict:
        path = self.state.workspace.real_paths[self.state.reference]
        return {"x": path[:, 0], "y": path[:, 1]}

    def _update(self, event=None) -> None:
        generation = self.state.generations.get(self.model_name)
        if generation is None:
            return
        self._samples.data.update(xs=list(generation.paths[..., 0]), ys=list(generation.paths[..., 1]))
        self._mean.data.update(x=generation.mean_path[:, 0], y=generation.mean_path[:, 1])
        self._end.data.update(x=[generation.decoded[2]], y=[generation.decoded[3]])
        self._commanded.data.update(x=[generation.commanded[2]], y=[generation.commanded[3]])

    def __panel__(self):
        return pn.pane.Bokeh(self.figure)
