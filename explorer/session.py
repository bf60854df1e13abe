"""One browser session of the explorer: the pickers, and the picked workspace's state and views.

Nothing slow runs on the event loop that all sessions share: loading a workspace (session start,
picker changes) and building a session's views run in the loader threads (`runtime.LOAD_POOL`),
generation and downloads in the generation thread (`state.GENERATION_POOL`), and the page shows a
spinner while a workspace loads.

What a session cannot open (a missing models folder, a dataset no model matches, a file that does not
read) is shown in the page's alert and logged at ERROR on the 'explorer' logger, which prints it in the
terminal running the server (`runtime.TerminalHandler`).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from pathlib import Path

import panel as pn

from gnocchi_core.errors import GnocchiError

from .runtime import LOAD_POOL, log, off_loop, serving, shared_workspace
from .state import NavigationState
from .views import Activity, CodeSpace, Controls, Reaches, Readout, ReferenceActivity
from .workspace import ExplorerConfig, Workspace, compatible_models, dataset_choices, mismatch

SLOW_MS = 500  # a generation still running after this long is announced


class ExplorerApp(pn.viewable.Viewer):
    """One browser session: a dataset and model picker (limited to the configured folders) and, for the
    picked workspace, its own navigation state and views."""

    def __init__(self, config: ExplorerConfig | None = None, **params):
        super().__init__(**params)
        self.config = config or ExplorerConfig.from_sources(sys.argv[1:])
        datasets = dataset_choices(self.config.data_path)
        self.dataset = pn.widgets.Select(label="dataset", options={p.name: p for p in datasets},
                                         value=datasets[0], width=260)
        self.models = pn.widgets.MultiChoice(label="models", width=260)
        self.busy = pn.indicators.LoadingSpinner(value=True, size=24)  # loading a workspace
        self.generating = pn.pane.HTML("", width=110, height=24, styles={"color": "#666"})  # a slow generation
        self.message = pn.pane.Alert("", alert_type="danger", visible=False, width=900)
        self.body = pn.Row(pn.pane.Markdown("Loading the dataset and models…"))
        self.state: NavigationState | None = None
        self._preload = None  # the first load, started with the session
        self._opening = itertools.count(1)
        self._latest = 0
        self._picking = False
        failure = self._offer_compatible()
        self.dataset.param.watch(self._picked_dataset, "value")
        self.models.param.watch(self._picked_models, "value")
        header = pn.Row(pn.pane.Markdown(
            "# GNOCCHI Explorer  \nDrag a slider and release to generate; click a code to make its trial the "
            f"reference. Models from `{self.config.models_dir}`.", width=700), self.dataset, self.models, self.busy,
            self.generating)
        self._layout = pn.Column(header, self.message, self.body)
        if failure is not None:  # nothing to open (no models folder, say): the page says why, and the terminal
            self.body.objects = [pn.pane.Markdown("Nothing to show.")]
            self._failed(failure)
        elif serving():  # start loading now: the browser fetches the page and BokehJS meanwhile
            self._preload = LOAD_POOL.submit(self._load, *self._pick())
            pn.state.onload(self.open)
        else:
            self.open_now()

    # ------------------------------------------------------------------ pickers
    def _pick(self) -> tuple[Path, tuple[str, ...]]:
        """What is picked now (read on the event loop, handed to the loader)."""
        return self.dataset.value, tuple(sorted(self.models.value))

    def _picked_dataset(self, event=None) -> None:
        if serving():
            pn.state.execute(self.open_dataset)
        else:
            failure = self._offer_compatible()
            return self._failed(failure) if failure is not None else self.open_now()

    def _offer_compatible(self) -> GnocchiError | None:
        """Offer the models matching the picked dataset; the error instead when the folder or file does not read."""
        try:
            names = compatible_models(self.config.models_dir, self.dataset.value)
        except GnocchiError as err:
            self._offer([])
            return err
        self._offer(names)
        return None

    def _picked_models(self, event=None) -> None:
        if self._picking:
            return
        if serving():
            pn.state.execute(self.open)
        else:
            self.open_now()

    def _offer(self, names: list[str]) -> None:
        """Offer ``names`` and pick them all, without reopening (the caller opens once)."""
        self._picking = True
        try:
            self.models.param.update(options=names, value=names)
        finally:
            self._picking = False

    # ------------------------------------------------------------------ opening a workspace
    def _load(self, dataset: Path, names: tuple[str, ...]) -> Workspace:
        if not names:
            raise GnocchiError(f"no trained model in {self.config.models_dir} matches {dataset.name} "
                               f"({mismatch(self.config.models_dir, dataset)})")
        return shared_workspace(str(self.config.models_dir), str(dataset), names)

    @staticmethod
    def _views(workspace: Workspace, state: NavigationState) -> list:
        """The views for ``state`` (it holds its first generation): plain objects, built off the event loop.
        A reach plot per model only where the trials have kinematics (`Workspace.has_reaches`)."""
        def column(name, view):
            reach = [Reaches(state, name)] if workspace.has_reaches else []
            return pn.Column(f"## {name.upper()}", CodeSpace(state, view), Activity(state, name), *reach,
                             Readout(state, name))

        about = f"{workspace.data.n_trials} trials × {workspace.data.n_neurons} neurons"
        if workspace.note:
            about += f"  \n{workspace.note}"
        return [Controls(state), *(column(name, view) for name, view in workspace.models.items()), pn.Column(
            pn.pane.Markdown(about, width=380, name="dataset-note"), ReferenceActivity(state))]

    def _show(self, state: NavigationState, views: list) -> None:
        """Swap the views in (on the event loop: this is what the browser receives)."""
        self.state = state
        self.message.visible, self.busy.value = False, False
        self.body.objects = views
        state.param.watch(self._generating, "busy")

    def _generating(self, event) -> None:
        """A generation is announced in words once it has taken longer than `SLOW_MS` (queued behind other
        sessions'). Not with the spinner: toggling it relaid out and repainted every plot in the page, which
        with eight sessions at once cost more than the generations themselves."""
        state = event.obj
        if state is not self.state:  # a replaced workspace's state
            return
        if not event.new:
            self.generating.object = ""
        elif serving():
            request = state.latest_request
            pn.state.curdoc.add_timeout_callback(lambda: self._still_generating(state, request), SLOW_MS)

    def _still_generating(self, state: NavigationState, request: int) -> None:
        if state is self.state and state.busy and state.latest_request == request:
            self.generating.object = "generating…"

    def _failed(self, err: Exception, logged: bool = False) -> None:
        """Say why in the page's alert and, unless ``logged`` already, in the server's terminal."""
        if not logged:
            log.error("cannot open %s: %s", self.dataset.value.name, err)
        self.message.param.update(object=str(err), visible=True)
        self.busy.value = False

    def open_now(self) -> None:
        """Open the picked workspace synchronously (outside a server)."""
        try:
            workspace = self._load(*self._pick())
        except GnocchiError as err:
            return self._failed(err)
        state = NavigationState(workspace)
        state.regenerate()
        self._show(state, self._views(workspace, state))

    async def open(self) -> None:
        """Load (or fetch from the cache) and generate off the event loop, then swap the views in.
        A newer pick made meanwhile wins: this one stops at its next step and shows nothing."""
        request = self._latest = next(self._opening)
        self.busy.value = True
        preload, self._preload = self._preload, None
        try:
            if preload is None:
                workspace = await off_loop(LOAD_POOL, self._load, *self._pick())
            else:
                workspace = await asyncio.wrap_future(preload)
            if request != self._latest:
                return
            state = NavigationState(workspace)
            state.batch = pn.io.hold  # one websocket message (one redraw) per generation
            await state.regenerate_async()
            if request != self._latest:
                return
            views = await off_loop(LOAD_POOL, self._views, workspace, state)
        except Exception as err:  # shown on the page, not only in the server log
            logged = not isinstance(err, GnocchiError)
            if logged:
                log.exception("opening %s failed", self._pick())
                err = GnocchiError(f"could not open {self.dataset.value.name} with {list(self._pick()[1])}: "
                                   f"{type(err).__name__}: {err}")
            return self._failed(err, logged) if request == self._latest else None
        if request == self._latest:
            self._show(state, views)

    async def open_dataset(self) -> None:
        """A dataset was picked: offer the models trained on data of its shape (read off the loop), open them.
        A newer pick made meanwhile wins."""
        request = self._latest = next(self._opening)
        dataset = self.dataset.value
        try:
            names = await off_loop(LOAD_POOL, compatible_models, self.config.models_dir, dataset)
        except GnocchiError as err:
            if request == self._latest:
                self._offer([])
                self._failed(err)
            return
        if request == self._latest:
            self._offer(names)
            await self.open()

    def __panel__(self):
        return self._layout
