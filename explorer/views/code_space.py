"""A model's codes in PCA space, coloured by a trial variable; click a trial to make it the reference."""

from __future__ import annotations

import numpy as np
import panel as pn
from bokeh.core.properties import value
from bokeh.events import Tap
from bokeh.models import BasicTicker, ColorBar, ColumnDataSource, FixedTicker, HoverTool, LinearColorMapper

from ..state import NavigationState
from ..variables import category_names, colour_values, label
from ..workspace import ModelView
from .plots import legend_below, new_figure

TAP_REACH = 0.03  # a click picks a trial within this fraction of the axes' spread
HOVER_COLUMNS = ("trial_id", "split", "condition_id", "start_x", "start_y", "target_x", "target_y")
REACH_HOVER = ("start_x", "start_y", "target_x", "target_y")  # hovered only where the trials reach


class CodeSpace(pn.viewable.Viewer):
    """Held-in trials coloured by ``state.colour_by`` (a text column by category, named on the colour bar),
    held-out-condition trials as black crosses, the reference trial as a ring and the navigated code as a
    star. Only the columns a change touches are sent: the star's two numbers per generation, the colour
    column on a colour change."""

    def __init__(self, state: NavigationState, view: ModelView, **params):
        super().__init__(**params)
        self.state, self.view = state, view
        info = state.workspace.data.trial_info
        heldout = info["heldout_condition"].to_numpy(bool)
        self._rows = {False: np.flatnonzero(~heldout), True: np.flatnonzero(heldout)}
        reaches = state.workspace.has_reaches
        columns = [c for c in HOVER_COLUMNS if reaches or c not in REACH_HOVER]
        self.sources = {}
        for kind, rows in self._rows.items():
            table = {c: info[c].to_numpy()[rows] for c in columns}
            table["split"] = table["split"].astype(str)
            self.sources[kind] = ColumnDataSource({**table, **self._xy(rows), "c": self._colour(rows)})
        self._reference = ColumnDataSource(self._point(view.pcs[state.reference]))
        self._star = ColumnDataSource({"x": [], "y": []})

        fig = self.figure = new_figure(f"codes-{view.name}", f"{view.name}: codes of all trials", height=370)
        low, high = self._range()
        self._mapper = LinearColorMapper(palette="Turbo256", low=low, high=high)
        heldin = fig.scatter("x", "y", source=self.sources[False], size=5, alpha=0.8,
                             color={"field": "c", "transform": self._mapper}, name=f"trials-{view.name}")
        crosses = fig.scatter("x", "y", source=self.sources[True], marker="x", size=7, color="black", line_width=1.5)
        ring = fig.scatter("x", "y", source=self._reference, size=18, fill_alpha=0, line_color="black",
                           line_width=2.5)
        star = fig.scatter("x", "y", source=self._star, marker="star", size=20, color="gold", line_color="black",
                           line_width=1.5, name=f"navigated-{view.name}")
        tooltips = [("trial", "@trial_id (@split)"), ("condition", "@condition_id")]
        if reaches:
            tooltips += [("start", "(@start_x{0.0}, @start_y{0.0}) cm"),
                         ("target", "(@target_x{0.0}, @target_y{0.0}) cm")]
        fig.add_tools(HoverTool(renderers=[heldin, crosses], tooltips=tooltips))
        self._colourbar = ColorBar(color_mapper=self._mapper, title=label(state.colour_by), width=10,
                                   title_text_font_size="8pt")
        self._categorical_ticks()
        fig.add_layout(self._colourbar, "right")
        self.legend = legend_below(fig, [(self._trial_label(), [heldin]), ("held-out condition", [crosses]),
                                         ("reference trial", [ring]), ("navigated code", [star])])
        self._axis_labels()
        self._generated()
        fig.on_event(Tap, self._clicked)
        state.param.watch(self._generated, "generations")
        state.param.watch(self._moved_reference, "reference")
        state.param.watch(self._recoloured, "colour_by")
        state.param.watch(self._reprojected, ["pc_x", "pc_y"])

    # ------------------------------------------------------------------ data
    def _pc(self, label: str) -> int:
        return int(label[2:]) - 1

    def _xy(self, rows: np.ndarray) -> dict:
        return {"x": self.view.pcs[rows, self._pc(self.state.pc_x)], "y": self.view.pcs[rows, self._pc(self.state.pc_y)]}

    def _point(self, pcs: np.ndarray) -> dict:
        return {"x": [float(pcs[self._pc(self.state.pc_x)])], "y": [float(pcs[self._pc(self.state.pc_y)])]}

    def _colour(self, rows: np.ndarray) -> np.ndarray:
        return colour_values(self.state.workspace.data.trial_info, self.state.colour_by)[rows]

    def _range(self) -> tuple[float, float]:
        values = colour_values(self.state.workspace.data.trial_info, self.state.colour_by)
        if not np.isfinite(values).any():
            return 0.0, 1.0
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
        return (low, high) if high > low else (low - 0.5, high + 0.5)

    def _categorical_ticks(self) -> None:
        """A text column's colour bar names its categories at their codes; a numeric one has plain ticks."""
        names = category_names(self.state.workspace.data.trial_info, self.state.colour_by)
        if names is None:
            if isinstance(self._colourbar.ticker, FixedTicker):  # back from a text column
                self._colourbar.update(ticker=BasicTicker(), major_label_overrides={})
        else:
            self._colourbar.update(ticker=FixedTicker(ticks=list(range(len(names)))),
                                   major_label_overrides={k: n for k, n in enumerate(names)})

    def _trial_label(self) -> str:
        return f"trial, coloured by {label(self.state.colour_by)}"

    def _axis_labels(self) -> None:
        self.figure.xaxis.axis_label, self.figure.yaxis.axis_label = self.state.pc_x, self.state.pc_y

    # ------------------------------------------------------------------ updates
    def _generated(self, *events) -> None:
        """The star: the code the shown generation was made from."""
        generation = self.state.generations.get(self.view.name)
        code = generation.code if generation is not None else self.state.codes()[self.view.name]
        self._star.data.update(self._point(self.view.project(code)[0]))

    def _moved_reference(self, event=None) -> None:
        self._reference.data.update(self._point(self.view.pcs[self.state.reference]))

    def _recoloured(self, event=None) -> None:
        source = self.sources[False]
        source.data["c"] = self._colour(self._rows[False])
        low, high = self._range()
        self._mapper.update(low=low, high=high)
        self._colourbar.title = label(self.state.colour_by)
        self._categorical_ticks()
        self.legend.items[0].label = value(self._trial_label())

    def _reprojected(self, *events) -> None:
        for kind, source in self.sources.items():
            source.data.update(self._xy(self._rows[kind]))
        self._moved_reference()
        self._generated()
        self._axis_labels()

    def _clicked(self, event) -> None:
        """The trial nearest the click (in units of each axis's spread) becomes the reference. Bokeh reports a
        tap anywhere on the figure, legend and colour bar included: a click not near any trial does nothing."""
        if event.x is None or event.y is None:
            return
        px, py = self.view.pcs[:, self._pc(self.state.pc_x)], self.view.pcs[:, self._pc(self.state.pc_y)]
        spread = np.array([np.ptp(px) or 1.0, np.ptp(py) or 1.0])
        distance = np.hypot((px - event.x) / spread[0], (py - event.y) / spread[1])
        nearest = int(np.argmin(distance))
        if distance[nearest] <= TAP_REACH:
            self.state.reference = nearest

    def __panel__(self):
        return pn.pane.Bokeh(self.figure)
