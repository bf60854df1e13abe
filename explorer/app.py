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
from explorer.workspace import ExplorerConfig, load_workspace  # noqa: E402

hv.extension("bokeh", logo=False)
pn.extension(sizing_mode="fixed", notifications=False)


@pn.cache
def shared_workspace(models_dir: str, data_path: str):
    return load_workspace(models_dir, data_path)


@contextlib.contextmanager
def one_update():
    """Apply a generation's plot updates as one: one websocket message (`pn.io.hold`) and one
    recomputation of the Bokeh document's model graph (its `freeze`) instead of one per plot."""
    doc = pn.state.curdoc
    with pn.io.hold(), (doc.models.freeze() if doc is not None else contextlib.nullcontext()):
        yield


class ExplorerApp(pn.viewable.Viewer):
    """One browser session: its own navigation state over the server's shared workspace."""

    def __init__(self, config: ExplorerConfig | None = None, **params):
        super().__init__(**params)
        self.config = config or ExplorerConfig.from_sources(sys.argv[1:])
        workspace = shared_workspace(str(self.config.models_dir), str(self.config.data_path))
        self.state = NavigationState(workspace)
        self.state.batch = one_update
        self.state.regenerate()
        columns = [pn.Column(f"## {name.upper()}", CodeSpace(self.state, view), Activity(self.state, name),
                             Reaches(self.state, name), Readout(self.state, name))
                   for name, view in workspace.models.items()]
        busy = pn.indicators.LoadingSpinner(value=False, size=24)
        self.state.param.watch(lambda event: setattr(busy, "value", event.new), "busy")
        header = pn.Row(pn.pane.Markdown(
            f"# GNOCCHI Explorer  \n{workspace.data.n_trials} trials × {workspace.data.n_neurons} neurons from "
            f"`{self.config.data_path.name}`; models from `{self.config.models_dir}`. Drag a slider and release "
            f"to generate; click a code to make its trial the reference.", width=900), busy)
        self._layout = pn.Column(header, pn.Row(Controls(self.state), *columns,
                                                pn.Column(ReferenceActivity(self.state))))

    def __panel__(self):
        return self._layout


if __name__.startswith("bokeh"):  # run by `panel serve`
    ExplorerApp().servable(title="GNOCCHI Explorer")
