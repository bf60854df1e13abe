"""Shared Bokeh building blocks for the explorer's views.

The views draw with plain Bokeh figures inside `pn.pane.Bokeh` and update their
`ColumnDataSource`s in place, column by column: a generation sends only the columns that
changed (no plot, glyph or model is rebuilt), and the app wraps each generation in one
`pn.io.hold`, so the browser gets one message and redraws once.
"""

from __future__ import annotations

import numpy as np
from bokeh.models import ColorBar, ColumnDataSource, Legend, LegendItem, LinearColorMapper
from bokeh.plotting import figure

from ..variables import LABELS, label

WIDTH, HEIGHT = 380, 300
VARIABLE_LABELS = {**LABELS, "pc1": label("pc1"), "pc2": label("pc2")}  # any other name: `variables.label`


def new_figure(name: str, title: str, *, height: int = HEIGHT, **kwargs) -> figure:
    """A fixed-size figure without toolbar; ``name`` is the Bokeh model name tests and benchmarks find it by."""
    fig = figure(name=name, title=title, width=WIDTH, height=height, toolbar_location=None, tools="",
                 **kwargs)
    fig.title.text_font_size = "11pt"
    return fig


def legend_below(fig: figure, items: list[tuple[str, list]], ncols: int = 2) -> Legend:
    """A legend under the plot (never over the data) naming every marker: ``[(label, [renderer, ...])]``."""
    legend = Legend(items=[LegendItem(label=label, renderers=renderers) for label, renderers in items],
                    ncols=ncols, location="center", orientation="horizontal", label_text_font_size="8pt",
                    glyph_width=18, glyph_height=14, spacing=2, padding=4, margin=2, border_line_alpha=0)
    fig.add_layout(legend, "below")
    return legend


def heatmap_figure(name: str, title: str, n_neurons: int, times: np.ndarray, high: float,
                   label: str = "rate (spikes/s)", neurons: str = "neuron (by preferred target)",
                   ) -> tuple[figure, ColumnDataSource, LinearColorMapper, ColorBar]:
    """A (neurons × bins) image with a colour bar; update ``source.data["image"] = [array]`` in place."""
    dt = float(times[1] - times[0]) if len(times) > 1 else 1.0
    fig = new_figure(name, title, x_range=(times[0] - dt / 2, times[-1] + dt / 2), y_range=(-0.5, n_neurons - 0.5))
    mapper = LinearColorMapper(palette="Viridis256", low=0.0, high=high)
    source = ColumnDataSource({"image": [np.zeros((n_neurons, len(times)), dtype=np.float32)],
                               "x": [times[0] - dt / 2], "y": [-0.5], "dw": [dt * len(times)], "dh": [n_neurons]})
    fig.image(image="image", x="x", y="y", dw="dw", dh="dh", source=source, color_mapper=mapper)
    bar = ColorBar(color_mapper=mapper, title=label, width=10, title_text_font_size="8pt")
    fig.add_layout(bar, "right")
    fig.xaxis.axis_label = "time from movement onset (ms)"
    fig.yaxis.axis_label = neurons
    return fig, source, mapper, bar


def image(rates: np.ndarray, order: np.ndarray) -> np.ndarray:
    """(bins, neurons) → the (neurons, bins) float32 image, neurons in ``order`` from the bottom."""
    return np.ascontiguousarray(rates[:, order].T, dtype=np.float32)
