"""The explorer in a real browser: Debian's Chromium through pytest-playwright's fixtures, served in-process
with Panel's test utilities, on the shipped assets."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import panel as pn
import pytest
from explorer_page import ErrorCollector, click_data_point, column, nudge, page_plot_names, slider_value
from panel.tests.util import serve_and_wait, wait_until

import explorer.runtime as runtime
from explorer.session import ExplorerApp
from explorer.views import plot_names
from explorer.workspace import ExplorerConfig
from gnocchi_core.workflows import DEFAULT_DATA, DEFAULT_MODELS

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
MODELS = ("gnocchi", "lfads", "lfads_ic")
PLOTS = set(plot_names(MODELS))
LOGGERS = ("bokeh", "tornado", "panel", "asyncio", "explorer")


class Explorer:
    """An in-process explorer server: its port, the app object of every session, and server-side errors."""

    def __init__(self):
        self.apps: list[ExplorerApp] = []
        self.errors: list[str] = []
        self.port = serve_and_wait(self._session, address="127.0.0.1")
        self.url = f"http://localhost:{self.port}"

    def _session(self):
        app = ExplorerApp(ExplorerConfig(DEFAULT_MODELS, DEFAULT_DATA))
        self.apps.append(app)
        return app

    def open(self, page, errors: list[str]) -> ExplorerApp:
        """Load the page (its views arrive after the session starts) and wait until every plot is drawn."""
        page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        known = len(self.apps)
        page.goto(self.url)
        wait_until(lambda: len(self.apps) > known, page, timeout=60_000)
        app = self.apps[known]
        wait_until(lambda: app.state is not None and bool(app.state.generations) and not app.state.busy,
                   page, timeout=120_000)
        page.wait_for_function(f"() => {sorted(PLOTS)}.every(n => Bokeh.documents[0].get_model_by_name(n))",
                               timeout=60_000)
        return app


@pytest.fixture(scope="module")
def explorer():
    server = Explorer()
    handler = ErrorCollector(server.errors)
    for name in LOGGERS:
        logging.getLogger(name).addHandler(handler)
    yield server
    for name in LOGGERS:
        logging.getLogger(name).removeHandler(handler)
    pn.state.kill_all_servers()


def generated(state, target_x: float) -> bool:
    """Every model's shown generation was made for ``target_x``, and nothing newer is on its way."""
    return not state.busy and all(g.commanded[2] == pytest.approx(target_x) for g in state.generations.values())


def mean_reach_end_x(page, model: str) -> float:
    """Where the bold mean reach ends (x, cm: its last 10 bins, as the readout's decoder reads it), in the page."""
    return float(column(page, f"mean-reach-{model}", "x")[-10:].mean())


def test_a_target_x_release_moves_gnocchis_bold_mean_reach_and_both_columns(explorer, page):
    errors: list[str] = []
    app = explorer.open(page, errors)
    assert PLOTS <= page_plot_names(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)
    state = app.state
    reference = state.workspace.data.trial_info.iloc[state.reference]
    # absolute sliders: they start at the reference trial's target and read where the reach should end
    assert slider_value(page, "target x (cm)") == pytest.approx(reference["target_x"])
    before = {m: mean_reach_end_x(page, m) for m in MODELS}
    nudge(page, "target x (cm)", -8)  # 8 releases of 0.5 cm: end 4 cm further left
    wait_until(lambda: generated(state, reference["target_x"] - 4.0), page, timeout=60_000)
    wait_until(lambda: before["gnocchi"] - mean_reach_end_x(page, "gnocchi") >= 1.0, page, timeout=30_000)
    assert slider_value(page, "target x (cm)") == pytest.approx(reference["target_x"] - 4.0)
    for model in MODELS:  # locked: every column was redrawn from its own new generation
        assert mean_reach_end_x(page, model) == pytest.approx(state.generations[model].mean_path[-10:, 0].mean(),
                                                              abs=1e-4)
        assert state.offsets[model]["target_x"] == pytest.approx(-4.0)
    readout = page.locator("p", has_text="mean reach of").first.inner_text()
    assert "commanded target" in readout and "miss" in readout and "DDIM steps" in readout and "on cpu" in readout
    assert errors == [] and explorer.errors == []


def test_clicking_a_code_makes_its_trial_the_reference_and_recolouring_reaches_the_browser(explorer, page):
    errors: list[str] = []
    app = explorer.open(page, errors)
    state = app.state
    view = state.workspace.models["gnocchi"]
    trial = int(np.argmax(view.pcs[:, 0]))  # the rightmost point: never hidden behind others
    page.wait_for_timeout(400)  # Bokeh reads two taps within 300 ms as a double tap
    click_data_point(page, "codes-gnocchi", float(view.pcs[trial, 0]), float(view.pcs[trial, 1]))
    target = state.workspace.data.trial_info["target_x"].iloc[trial]
    wait_until(lambda: state.reference == trial and generated(state, target), page, timeout=30_000)
    wait_until(lambda: slider_value(page, "target x (cm)") == pytest.approx(target), page, timeout=10_000)
    assert state.offsets["gnocchi"]["target_x"] == 0.0  # a new reference starts with no offsets

    heldin = ~state.workspace.data.trial_info["heldout_condition"].to_numpy(bool)
    page.get_by_label("Colour by").first.select_option("target_y")
    expected = state.workspace.data.trial_info["target_y"].to_numpy()[heldin]
    wait_until(lambda: np.allclose(column(page, "trials-gnocchi", "c"), expected), page, timeout=30_000)
    assert errors == [] and explorer.errors == []


def test_two_sessions_are_independent(explorer, new_context):
    errors: list[str] = []
    pages = [new_context().new_page() for _ in range(2)]
    first, second = (explorer.open(page, errors) for page in pages)
    assert first is not second and first.state.workspace is second.state.workspace  # one load per server
    nudge(pages[1], "target y (cm)", -4)
    target_y = second.state.reference_value("target_y") - 2.0
    wait_until(lambda: not second.state.busy and all(g.commanded[3] == pytest.approx(target_y)
                                                      for g in second.state.generations.values()),
               pages[1], timeout=60_000)
    assert first.state.offsets["gnocchi"]["target_y"] == 0.0
    assert errors == [] and explorer.errors == []


def test_eight_sessions_releasing_at_once_all_update_without_errors(explorer, new_context):
    errors: list[str] = []
    pages = [new_context().new_page() for _ in range(8)]
    apps = [explorer.open(page, errors) for page in pages]
    assert len({id(app.state) for app in apps}) == 8
    for page in pages:
        page.locator(".bk-input-group", has=page.locator(".bk-slider-title", has_text="target x (cm)")) \
            .locator(".noUi-handle").first.focus()
    for page in pages:  # back to back: the server sees eight releases at once
        page.keyboard.press("ArrowLeft")
    for app, page in zip(apps, pages):
        wait_until(lambda app=app: generated(app.state, app.state.reference_value("target_x") - 0.5), page,
                   timeout=120_000)
        expected = app.state.generations["gnocchi"].mean_path[-10:, 0].mean()
        wait_until(lambda page=page, expected=expected: abs(mean_reach_end_x(page, "gnocchi") - expected) < 1e-4,
                   page, timeout=30_000)
    assert errors == [] and explorer.errors == []


def test_a_slow_load_in_one_session_does_not_block_another(explorer, page, new_context, monkeypatch):
    """Session start and picker changes load in a worker thread: while one session waits for a slow
    workspace, another session's slider release is generated and drawn."""
    errors: list[str] = []
    app = explorer.open(page, errors)
    release = threading.Event()
    real_load = runtime.load_workspace

    def slow_load(*args, **kwargs):
        release.wait(60)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(runtime, "load_workspace", slow_load)
    other_page = new_context().new_page()
    other = explorer.open(other_page, errors)
    other_page.locator(".choices__button").first.click()  # drop a model from the picker: an uncached workspace
    try:
        state = app.state
        nudge(page, "target x (cm)", 2)
        wait_until(lambda: generated(state, state.reference_value("target_x") + 1.0), page, timeout=60_000)
        expected = state.generations["gnocchi"].mean_path[-10:, 0].mean()
        wait_until(lambda: abs(mean_reach_end_x(page, "gnocchi") - expected) < 1e-4, page, timeout=30_000)
        assert other.busy.value and not release.is_set()  # the other session is still loading meanwhile
    finally:
        release.set()
    wait_until(lambda: other.state is not None and len(other.state.workspace.models) == 2 and not other.busy.value,
               other_page, timeout=120_000)
    assert errors == [] and explorer.errors == []
