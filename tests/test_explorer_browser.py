"""The explorer in a real browser (Debian's Chromium via Playwright), served in-process on the shipped assets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from explorer.browser_testing import (cds_column_js, click_data_point, eval_predicate, launch_browser,
                                      measure_update, new_page, nudge_slider, serve_app, wait_for_bokeh_idle,
                                      wait_until)

from explorer.app import ExplorerApp
from explorer.workspace import ExplorerConfig
from gnocchi_core.workflows import DEFAULT_DATA, DEFAULT_MODELS

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
PLOTS = ("codes-gnocchi", "activity-gnocchi", "reach-gnocchi", "codes-lfads", "activity-lfads", "reach-lfads",
         "codes-lfads_ic", "activity-lfads_ic", "reach-lfads_ic", "reference-activity")


@pytest.fixture(scope="module")
def server():
    config = ExplorerConfig(DEFAULT_MODELS, DEFAULT_DATA)
    server, url = serve_app(lambda: ExplorerApp(config))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chromium(playwright):  # pytest-playwright's session-wide Playwright; Debian's Chromium
    browser = launch_browser(playwright)
    yield browser
    browser.close()


def open_page(server, chromium, errors):
    page = new_page(chromium, errors, viewport=(1800, 1300))
    page.goto(server.url)
    wait_for_bokeh_idle(page, timeout=60_000)
    return page, server.sessions[-1]


def test_page_loads_every_plot_without_errors_and_navigation_works(server, chromium):
    errors: list[str] = []
    page, app = open_page(server, chromium, errors)
    names = page.evaluate("() => Bokeh.documents[0].all_models ? [...Bokeh.documents[0].all_models]"
                          ".filter(m => m.name).map(m => m.name) : []")
    assert set(PLOTS) <= set(names), names
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)

    # moving the target-x slider regenerates both columns; GNOCCHI's decoded endpoint follows the command
    state = app.state
    before = {name: g for name, g in state.generations.items()}
    timing = measure_update(page, lambda: nudge_slider(page, "target x (cm)", 20), plot="activity-gnocchi",
                            timeout=30_000)
    wait_until(lambda: state.offsets["gnocchi"]["target_x"] > 3.9 and not state.busy, timeout=30, page=page)
    after = state.generations
    assert not np.allclose(after["gnocchi"].rates, before["gnocchi"].rates), "the raster did not change"
    assert after["gnocchi"].decoded[2] > before["gnocchi"].decoded[2] + 1.0
    assert state.offsets["lfads"]["target_x"] == state.offsets["gnocchi"]["target_x"]  # locked: both move
    assert timing.ms > 0
    readout = page.get_by_text("commanded").first.inner_text()
    assert "decoded target" in readout and "ms on cpu" in readout

    # clicking a code point makes that trial the reference
    view = state.workspace.models["gnocchi"]
    trial = int(np.argmax(view.pcs[:, 0]))  # the rightmost point: never hidden behind others
    click_data_point(page, float(view.pcs[trial, 0]), float(view.pcs[trial, 1]), plot="codes-gnocchi")
    wait_until(lambda: state.reference == trial, timeout=20, page=page)
    wait_until(lambda: state.offsets["gnocchi"]["target_x"] == 0.0, timeout=20, page=page)  # a new reference resets

    # switching the colour variable recolours the code plots: the colour column the browser draws with
    colours = "Array.from(" + cds_column_js("codes-gnocchi", "color") + ")"
    heldin = ~state.workspace.data.trial_info["heldout_condition"].to_numpy(bool)
    for variable in ("target_x", "target_y"):
        if variable == "target_y":
            page.get_by_label("Colour by").first.select_option("target_y")
            wait_until(lambda: state.colour_by == "target_y", timeout=20, page=page)
            wait_for_bokeh_idle(page, timeout=30_000)
        expected = state.workspace.data.trial_info[variable].to_numpy()[heldin]
        # the new column reaches the browser after the server-side change: wait for it, then compare
        wait_until(lambda: np.allclose(np.array(eval_predicate(page, colours), dtype=float), expected),
                   timeout=30, page=page)
        np.testing.assert_allclose(np.array(eval_predicate(page, colours), dtype=float), expected)
    assert errors == [], errors


def test_two_sessions_are_independent(server, chromium):
    errors: list[str] = []
    first, first_app = open_page(server, chromium, errors)
    second, second_app = open_page(server, chromium, errors)
    assert first_app is not second_app and first_app.state.workspace is second_app.state.workspace  # shared load
    nudge_slider(second, "target y (cm)", -10)
    wait_until(lambda: second_app.state.offsets["gnocchi"]["target_y"] < -1.9 and not second_app.state.busy,
               timeout=30, page=second)
    assert first_app.state.offsets["gnocchi"]["target_y"] == 0.0
    assert errors == [], errors
