"""GNOCCHI Explorer: `panel serve explorer/app.py [--args --models DIR --data FILE]`.

Opens on the shipped MotorNet dataset and default models (assets/). The dataset and models are
loaded once per server (`pn.cache`); each browser session gets its own navigation state.
"""

from __future__ import annotations

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


def create_app(config: ExplorerConfig | None = None) -> pn.viewable.Viewable:
    """One session's page."""
    config = config or ExplorerConfig.from_sources(sys.argv[1:])
    workspace = shared_workspace(str(config.models_dir), str(config.data_path))
    state = NavigationState(workspace)
    state.regenerate()
    columns = []
    for name, view in workspace.models.items():
        columns.append(pn.Column(f"## {name.upper()}", CodeSpace(state, view), Activity(state, name),
                                 Reaches(state, name), Readout(state, name), name=f"column-{name}"))
    busy = pn.indicators.LoadingSpinner(value=False, size=24, name="busy")
    state.param.watch(lambda event: setattr(busy, "value", event.new), "busy")
    header = pn.Row(pn.pane.Markdown(
        f"# GNOCCHI Explorer  \n{workspace.data.n_trials} trials × {workspace.data.n_neurons} neurons from "
        f"`{config.data_path.name}`; models from `{config.models_dir}`. Drag a slider and release to generate; "
        f"click a code to make its trial the reference.", width=900), busy)
    return pn.Column(header, pn.Row(Controls(state), *columns, pn.Column(ReferenceActivity(state))))


if __name__.startswith("bokeh"):  # run by `panel serve`
    create_app().servable(title="GNOCCHI Explorer")
