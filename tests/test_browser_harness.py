"""The browser harness (explorer/browser_testing.py) against a tiny Panel + HoloViews app, in headless Chromium."""

from __future__ import annotations

import itertools
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("playwright.sync_api")
pn = pytest.importorskip("panel")
hv = pytest.importorskip("holoviews")
import param  # noqa: E402

from explorer.browser_testing import (  # noqa: E402
    CHROMIUM_PATH, cds_column_js, click_data_point, drag_slider, eval_predicate, launch_browser, measure_update,
    new_page, nudge_slider, serve_app, wait_for_bokeh_idle, wait_until,
)

if not os.path.exists(CHROMIUM_PATH):
    pytest.skip(f"no Chromium at {CHROMIUM_PATH}", allow_module_level=True)

hv.extension("bokeh", logo=False)

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
POINTS = np.array([[0.0, 0.0], [1.0, 2.0], [2.0, 1.0], [3.0, 3.0], [4.0, 0.5]])
X_CURVE = np.linspace(0.0, 1.0, 64)
PROBE_INDEX = 5  # curve sample used to detect the update in the page


def curve_y(freq: float) -> np.ndarray:
    return np.sin(2 * np.pi * freq * X_CURVE)


class HarnessApp(pn.viewable.Viewer):
    """Slider -> DynamicMap(Curve) on release; tap on Points -> Markdown."""

    freq = param.Number(default=1.0, bounds=(0.5, 5.0))
    selected = param.Integer(default=None, allow_None=True)

    _ids = itertools.count(1)

    def __init__(self, **params):
        super().__init__(**params)
        self.uid = next(self._ids)
        self.slider = pn.widgets.FloatSlider(label="Frequency", start=0.5, end=5.0, step=0.1, value=self.freq)
        self.slider.param.watch(self._on_release, "value_throttled")
        self.curve_calls = 0
        curve = hv.DynamicMap(pn.bind(self._curve, freq=self.param.freq))
        points = hv.Points(POINTS, kdims=["x", "y"]).opts(
            size=14, tools=["tap"], xlim=(-0.5, 4.5), ylim=(-0.5, 3.5), width=400, height=300,
            backend_opts={"plot.name": "points"})
        self.tap = hv.streams.Tap(source=points)
        self.tap.param.watch(self._on_tap, ["x", "y"])
        self.selection = hv.streams.Selection1D(source=points)
        self.info = pn.pane.Markdown("No point selected", name="info")
        self._layout = pn.Column(
            pn.pane.Markdown(f"Session {self.uid}"), self.slider,
            pn.pane.HoloViews(curve), pn.pane.HoloViews(points), self.info)

    def _curve(self, freq):
        self.curve_calls += 1
        return hv.Curve((X_CURVE, curve_y(freq)), "t", "amplitude").opts(  # own dims: Panel links axes of same-named dims
            framewise=False, ylim=(-1.1, 1.1), width=400, height=250, backend_opts={"plot.name": "curve"})

    def _on_release(self, event):
        self.freq = event.new

    def _on_tap(self, *events):
        if self.tap.x is None:
            return
        d = np.hypot(POINTS[:, 0] - self.tap.x, POINTS[:, 1] - self.tap.y)
        self.selected = int(np.argmin(d))
        x, y = POINTS[self.selected]
        self.info.object = f"Selected point #{self.selected} at ({x:g}, {y:g})"

    def __panel__(self):
        return self._layout


# ---------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def app_server():
    server, _ = serve_app(HarnessApp)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chromium(playwright):  # `playwright`: pytest-playwright's session fixture (one sync Playwright per thread)
    b = launch_browser(playwright)
    yield b
    b.close()


@pytest.fixture
def open_app(app_server, chromium):
    """open_app() -> (page, app instance, console_errors); every call is a new browser context + session."""
    opened = []

    def _open():
        errors: list[str] = []
        page = new_page(chromium, errors)
        opened.append(page)
        page.goto(app_server.url)
        wait_for_bokeh_idle(page)
        uid = int(re.search(r"Session (\d+)", page.locator("text=/Session \\d+/").first.inner_text()).group(1))
        app = next(a for a in app_server.sessions if a.uid == uid)
        return page, app, errors

    yield _open
    for page in opened:
        page.context.close()


def curve_at_probe_js(freq: float) -> str:
    """True in the page once the curve's data is the one for `freq`."""
    return f"Math.abs({cds_column_js('curve', 'amplitude')}[{PROBE_INDEX}] - ({float(curve_y(freq)[PROBE_INDEX])!r})) < 1e-9"


def model_text_js(fragment: str) -> str:
    """True in the page once some model's `text` (Panel Markdown/HTML panes) contains `fragment`."""
    return f"[...doc.all_models].some(m => typeof m.text === 'string' && m.text.includes({fragment!r}))"


# ---------------------------------------------------------------------------------------------- tests

def test_page_loads_without_console_errors(open_app):
    page, app, errors = open_app()
    assert page.locator(".noUi-handle").count() == 1
    assert page.evaluate("() => __bkprobe.find_plot('curve') != null && __bkprobe.find_plot('points') != null")
    assert page.blocked_requests == []
    assert errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "harness.png"), full_page=True)


def test_nudge_slider_updates_curve(open_app):
    page, app, errors = open_app()
    calls = app.curve_calls
    timing = measure_update(page, lambda: nudge_slider(page, "Frequency", 2), curve_at_probe_js(1.2), plot="curve")
    # server side: value_throttled fired and the DynamicMap re-rendered
    wait_until(lambda: math.isclose(app.freq, 1.2), page=page)
    assert math.isclose(app.slider.value_throttled, 1.2)
    assert app.curve_calls > calls
    # browser side: the new data arrived and the plot repainted after it
    assert timing.input_type == "keydown"
    assert timing.t_input <= timing.t_applied <= timing.t_paint <= timing.t_frame
    assert 0 < timing.ms < 5000
    assert any("ColumnData" in c or ".data" in c for c in timing.changed), timing.changed
    assert re.fullmatch(r"Frequency:\s*1\.20?", page.locator(".bk-slider-title").first.inner_text().strip())
    assert errors == []


def test_drag_slider_fires_value_throttled_once(open_app):
    page, app, errors = open_app()
    seen = []
    app.slider.param.watch(lambda e: seen.append(e.new), "value_throttled")
    drag_slider(page, "Frequency", 0.5)  # track 0.5..5.0 -> ~2.75
    wait_until(lambda: seen, page=page)
    wait_for_bokeh_idle(page)
    assert len(seen) == 1 and 2.5 < seen[0] < 3.0, seen
    assert math.isclose(app.freq, seen[0])
    assert eval_predicate(page, curve_at_probe_js(seen[0]))
    assert errors == []


def test_click_point_updates_markdown(open_app):
    page, app, errors = open_app()
    timing = measure_update(page, lambda: click_data_point(page, 3.0, 3.0, plot="points"),
                            model_text_js("#3"), plot=False)
    wait_until(lambda: app.selected == 3, page=page)
    assert app.selection.index == [3]            # the click hit the glyph (TapTool -> Selection1D)
    assert abs(app.tap.x - 3.0) < 0.05 and abs(app.tap.y - 3.0) < 0.05
    page.locator("text=Selected point #3 at (3, 3)").wait_for(timeout=5000)
    assert timing.input_type == "pointerup"
    # a second click right away: click_data_point spaces clicks > 300 ms so Bokeh does not see a double tap
    click_data_point(page, 1.0, 2.0, plot="points")
    wait_until(lambda: app.selected == 1 and app.selection.index == [1], page=page)
    page.locator("text=Selected point #1 at (1, 2)").wait_for(timeout=5000)
    assert errors == []


def test_two_pages_have_independent_state(open_app):
    page_a, app_a, errors_a = open_app()
    page_b, app_b, errors_b = open_app()
    assert app_a is not app_b
    nudge_slider(page_a, "Frequency", 3)
    click_data_point(page_b, 1.0, 2.0, plot="points")
    wait_until(lambda: math.isclose(app_a.freq, 1.3) and app_b.selected == 1, page=page_a)
    wait_for_bokeh_idle(page_a)
    wait_for_bokeh_idle(page_b)
    assert math.isclose(app_b.freq, 1.0) and app_a.selected is None
    assert page_a.locator("text=No point selected").count() == 1
    assert page_b.locator("text=Selected point #1").count() == 1
    assert float(page_a.locator(".bk-slider-value").first.inner_text()) == pytest.approx(1.3)
    assert float(page_b.locator(".bk-slider-value").first.inner_text()) == pytest.approx(1.0)
    assert errors_a == [] and errors_b == []
