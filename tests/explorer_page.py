"""Helpers for driving the explorer in a Playwright page (browser tests only; not part of the package).

Plots and glyphs are found by their Bokeh model names (`codes-gnocchi`, `mean-reach-gnocchi`, …)
through BokehJS's public `Document.get_model_by_name`.
"""

from __future__ import annotations

import logging
import re

import numpy as np


def page_plot_names(page) -> set[str]:
    return set(page.evaluate("() => window.Bokeh && Bokeh.documents.length ? "
                             "[...Bokeh.documents[0].all_models].filter(m => m.name).map(m => m.name) : []"))


def column(page, glyph: str, name: str) -> np.ndarray:
    """Column ``name`` of the data source of the glyph renderer named ``glyph``, as the browser holds it."""
    values = page.evaluate("([glyph, name]) => Array.from(Bokeh.documents[0].get_model_by_name(glyph)"
                           ".data_source.data[name])", [glyph, name])
    return np.array(values, dtype=float)


def slider_handle(page, label: str):
    title = page.locator(".bk-slider-title", has_text=re.compile(r"^\s*" + re.escape(label) + r"\s*:"))
    return page.locator(".bk-input-group", has=title).locator(".noUi-handle").first


def slider_value(page, label: str) -> float:
    return float(slider_handle(page, label).get_attribute("aria-valuenow"))


def nudge(page, label: str, steps: int) -> None:
    """Move a slider by ``steps`` of its step with the keyboard; every key press is a release."""
    handle = slider_handle(page, label)
    handle.focus()
    for _ in range(abs(steps)):
        handle.press("ArrowRight" if steps > 0 else "ArrowLeft")


def click_data_point(page, plot: str, x: float, y: float) -> None:
    """Click data coordinates (x, y) of the plot named ``plot``, through the plot's own scales in the page."""
    box = page.evaluate("""([name, x, y]) => {
        const view = [...Bokeh.index.query(v => v.model.name === name && v.frame != null)][0];
        view.el.scrollIntoView({block: 'center'});
        const rect = view.canvas_view.el.getBoundingClientRect();
        return {px: rect.left + view.frame.x_scale.compute(x), py: rect.top + view.frame.y_scale.compute(y)};
    }""", [plot, x, y])
    page.mouse.click(box["px"], box["py"])


def image(page, plot: str) -> np.ndarray:
    """The image the heatmap plot named ``plot`` shows, flattened, as the browser holds it."""
    values = page.evaluate("(name) => Array.from(Bokeh.documents[0].get_model_by_name(name).renderers[0]"
                           ".data_source.data.image[0])", plot)
    return np.array(values, dtype=float)


class ErrorCollector(logging.Handler):
    """ERROR records of the server's loggers, collected so a test can assert there were none."""

    def __init__(self, sink: list[str]):
        super().__init__(logging.ERROR)
        self.sink = sink

    def emit(self, record):
        self.sink.append(self.format(record))
