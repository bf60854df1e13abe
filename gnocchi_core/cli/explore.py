"""`gnocchi explore FILE`: the explorer on a dataset, training small default models first when none match."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import GnocchiError
from .common import add_command, add_device


def register(commands) -> None:
    explore = add_command(
        commands, "explore", help="open the explorer on a dataset (training small models first if none match)",
        run=_explore,
        description="Serve the explorer on FILE with the models in --models trained on data of its shape. When "
                    "there are none, first train one GNOCCHI and one LFADS (no controller) there, sharing "
                    "--max-minutes between them (each stops cleanly and keeps its best weights; a killed run "
                    "resumes). The dataset and models are loaded before the server starts, so a dataset the "
                    "explorer cannot open is reported here. Binds to 127.0.0.1 unless --address says otherwise.",
        examples=["gnocchi explore trials.h5",
                  "gnocchi explore recording.h5 --models recording_models --max-minutes 5 --port 5007",
                  "gnocchi explore assets/motornet_reach/motornet_reach.h5 --models assets/models"])
    explore.add_argument("file", help="a GNOCCHI dataset (.h5); `gnocchi data import` makes one")
    explore.add_argument("--models", help="folder of model folders (default: FILE's name + _models beside it)")
    explore.add_argument("--max-minutes", type=float, default=None,
                         help="time budget for training when no model matches (default 8, on 2 CPU cores about "
                              "10 minutes until the page opens)")
    explore.add_argument("--port", type=int, default=5006, help="port to serve on (default 5006)")
    explore.add_argument("--address", default="127.0.0.1",
                         help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 for every interface)")
    explore.add_argument("--show", action="store_true", help="open a browser tab")
    add_device(explore)


def _explore(args) -> None:
    from ..data import load_dataset
    from ..data.readiness import readiness
    from ..quickstart import DEFAULT_MINUTES, matching_models, train_default_models

    data_path = Path(args.file).resolve()
    data = load_dataset(data_path)
    refused = readiness(data)["explore"]
    if refused is not None:
        raise GnocchiError(f"{args.file}: cannot be explored: {refused}")
    models_dir = Path(args.models).resolve() if args.models else data_path.with_name(f"{data_path.stem}_models")
    names = matching_models(models_dir, data)
    if names:
        print(f"models trained on data of this shape in {models_dir}: {', '.join(names)}")
    else:
        minutes = DEFAULT_MINUTES if args.max_minutes is None else args.max_minutes
        print(f"no model in {models_dir} was trained on data of this shape "
              f"({data.n_bins} bins × {data.n_neurons} neurons): training small defaults, at most {minutes:g} min")
        names = train_default_models(data, models_dir, max_minutes=minutes, device=args.device)
    serve(models_dir, data_path, names, port=args.port, address=args.address, show=args.show)


def serve(models_dir: Path, data_path: Path, names: list[str], *, port: int, address: str, show: bool) -> None:
    """Load the workspace once (errors end here, in the terminal), then serve the explorer on it."""
    import panel as pn

    from explorer.runtime import shared_workspace
    from explorer.session import ExplorerApp
    from explorer.workspace import ExplorerConfig

    print(f"loading {data_path.name} with {', '.join(names)}…")
    try:
        workspace = shared_workspace(str(models_dir), str(data_path), tuple(sorted(names)))
    except GnocchiError as err:
        raise GnocchiError(f"the explorer cannot open {data_path.name}: {err}") from None
    config = ExplorerConfig(models_dir, data_path)
    origins = [f"{host}:{port}" for host in {address, "localhost", "127.0.0.1"}]
    server = pn.serve({"/": lambda: ExplorerApp(config)}, port=port, address=address, show=False, start=False,
                      title="GNOCCHI Explorer", websocket_origin=origins if address not in ("0.0.0.0", "::") else "*",
                      verbose=False)  # listening from here on
    print(f"loaded in {workspace.load_seconds:.1f} s; serving http://{address}:{port}/ (Ctrl-C stops)", flush=True)
    if show:
        server.show("/")
    server.start()
    try:
        server.io_loop.start()
    finally:
        sys.stdout.flush()
