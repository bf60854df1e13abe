"""The explorer in a real browser on a recording without kinematics (tiny models trained on it, see
`test_explorer_neural.build_neural_assets`): codes and activity plots, no reach plot, and a release of a
condition-axis slider regenerates what the page shows."""

from __future__ import annotations

import gc
import logging
import threading
from pathlib import Path

import numpy as np
import panel as pn
import pytest
from explorer_page import ErrorCollector, image, nudge, page_plot_names, slider_value
from panel.tests.util import serve_and_wait, wait_until
from test_explorer_neural import build_neural_assets

from explorer.session import ExplorerApp
from explorer.views import plot_names
from explorer.views.controls import PC_RANGE
from explorer.views.plots import image as heatmap_image
from explorer.workspace import ExplorerConfig

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
MODELS = ("gnocchi", "lfads")
PLOTS = set(plot_names(MODELS, reaches=False))
LOGGERS = ("bokeh", "tornado", "panel", "asyncio", "explorer")
SLIDER = "condition axis 1 (s.d.)"


@pytest.fixture(scope="module")
def neural_server(tmp_path_factory):
    """An in-process explorer on the neural-only models and dataset: (port, the sessions' apps, server errors)."""
    assets = build_neural_assets(tmp_path_factory.getbasetemp() / "explorer_neural")
    apps: list[ExplorerApp] = []
    errors: list[str] = []

    def session():
        app = ExplorerApp(ExplorerConfig(assets["models"], assets["neural"]))
        apps.append(app)
        return app

    for thread in threading.enumerate():  # earlier modules' servers finish shutting down (and logging writes to
        if "get_server" in thread.name:  # their closed pages) before this module listens for errors
            thread.join(timeout=10)
    gc.collect()
    handler = ErrorCollector(errors)
    for name in LOGGERS:
        logging.getLogger(name).addHandler(handler)
    port = serve_and_wait(session, address="127.0.0.1")
    yield port, apps, errors
    for name in LOGGERS:
        logging.getLogger(name).removeHandler(handler)
    pn.state.kill_all_servers()


def test_a_neural_dataset_shows_codes_and_activity_and_a_condition_slider_regenerates(neural_server, page):
    port, apps, server_errors = neural_server
    errors: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"http://localhost:{port}")
    wait_until(lambda: len(apps) > 0, page, timeout=60_000)
    app = apps[0]
    wait_until(lambda: app.state is not None and bool(app.state.generations) and not app.state.busy, page,
               timeout=120_000)
    page.wait_for_function(f"() => {sorted(PLOTS)}.every(n => Bokeh.documents[0].get_model_by_name(n))",
                           timeout=60_000)
    names = page_plot_names(page)
    assert PLOTS <= names and not any("reach" in name for name in names)  # no reach plot, no reach glyphs
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer_neural.png"), full_page=True)
    readout = page.locator("p", has_text="nearest condition").first.inner_text()
    assert "DDIM steps" in readout and "miss" not in readout and "unintended" not in readout
    assert page.get_by_text("No reach panel").count() >= 1  # the page says why

    state = app.state
    assert slider_value(page, SLIDER) == 0.0  # a shift in s.d., from the reference's own code
    before = {m: image(page, f"activity-{m}") for m in MODELS}
    nudge(page, SLIDER, 16)  # 16 releases of 3/40 s.d.
    wanted = 16 * PC_RANGE / 40
    wait_until(lambda: not state.busy and all(o["cond1"] == pytest.approx(wanted) for o in state.offsets.values())
               and state.shown_is_current(), page, timeout=60_000)
    assert slider_value(page, SLIDER) == pytest.approx(wanted)
    for model in MODELS:  # locked: each model's plot shows its own new generation (float32, exactly)
        expected = heatmap_image(state.generations[model].rates, state.workspace.neuron_order).ravel()
        wait_until(lambda model=model, expected=expected: np.array_equal(image(page, f"activity-{model}"), expected),
                   page, timeout=30_000)
        assert not np.array_equal(expected, before[model])
    # the tiny GNOCCHI trained for seconds hardly reads its code; LFADS's generator does, visibly
    assert not np.allclose(image(page, "activity-lfads"), before["lfads"], rtol=1e-3)
    assert errors == [] and server_errors == []
