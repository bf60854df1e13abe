"""GNOCCHI Explorer: `panel serve explorer/app.py [--args --models DIR --data FILE]`.

Opens on the shipped MotorNet dataset and default models (assets/). The dataset and models are
loaded once per server (`pn.cache`); each browser session gets its own navigation state.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import holoviews as hv
import panel as pn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `panel serve explorer/app.py` from a clone

from explorer.state import NavigationState  # noqa: E402
from explorer.views import Activity, CodeSpace, Controls, Reaches, Readout, ReferenceActivity  # noqa: E402
from explorer.workspace import ExplorerConfig, compatible_models, dataset_choices, load_workspace  # noqa: E402
from gnocchi_core.errors import GnocchiError  # noqa: E402

hv.extension("bokeh", logo=False)
pn.extension(sizing_mode="fixed", notifications=False)


@pn.cache
def shared_workspace(models_dir: str, data_path: str, names: tuple[str, ...] | None = None):
    return load_workspace(models_dir, data_path, names=names)

@contextlib.contextmanager
def one_update():
    """Apply a generation's plot updates as one: one websocket message (`pn.io.hold`) and one
    recomputation of the Bokeh document's model graph (its `freeze`) instead of one per plot."""
    doc = pn.state.curdoc
    with pn.io.hold(), (doc.models.freeze() if doc is not None else contextlib.nullcontext()):
        yield


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
        self.busy = pn.indicators.LoadingSpinner(value=False, size=24)
        self.message = pn.pane.Alert("", alert_type="danger", visible=False, width=900)
        self.body = pn.Row()
        self._offer_models()
        self.dataset.param.watch(lambda event: self._offer_models(), "value")
        self.models.param.watch(lambda event: self._open(), "value")
        self._open()
        header = pn.Row(pn.pane.Markdown(
            "# GNOCCHI Explorer  \nDrag a slider and release to generate; click a code to make its trial the "
            f"reference. Models from `{self.config.models_dir}`.", width=700), self.dataset, self.models, self.busy)
        self._layout = pn.Column(header, self.message, self.body)

    def _offer_models(self) -> None:
        names = compatible_models(self.config.models_dir, self.dataset.value)
        self.models.param.update(options=names, value=names)

    def _open(self) -> None:
        """Build the views for the picked dataset and models (the workspace itself is cached per server)."""
        try:
            if not self.models.value:
                raise GnocchiError(f"no trained model in {self.config.models_dir} matches {self.dataset.value.name}")
            workspace = shared_workspace(str(self.config.models_dir), str(self.dataset.value),
                                         tuple(sorted(self.models.value)))
        except GnocchiError as err:
            self.message.param.update(object=str(err), visible=True)
            return
        self.message.visible = False
        self.state = NavigationState(workspace)
        self.state.batch = one_update
        self.state.regenerate()
        self.state.param.watch(lambda event: setattr(self.busy, "value", event.new), "busy")
        columns = [pn.Column(f"## {name.upper()}", CodeSpace(self.state, view), Activity(self.state, name),
                             Reaches(self.state, name), Readout(self.state, name))
                   for name, view in workspace.models.items()]
        self.body.objects = [Controls(self.state), *columns, pn.Column(
            pn.pane.Markdown(f"{workspace.data.n_trials} trials × {workspace.data.n_neurons} neurons"),
            ReferenceActivity(self.state))]

    def __panel__(self):
        return self._layout

if __name__.startswith("bokeh"):  # run by `panel serve`
    ExplorerApp().servable(title="GNOCCHI Explorer")
