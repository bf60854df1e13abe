"""Per-session state of the explorer: the reference trial, the navigation offsets and the latest generations.

`NavigationState` is a `param.Parameterized` with no Panel in it, so it is tested without a
browser. Views watch its `generations` / `reference` parameters and redraw in place.
Generation runs off the event loop (a worker thread); a request that finishes after a newer one
was made is dropped, so dragging quickly never shows stale samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import numpy as np
import param

from gnocchi_core.analysis.decoding import VARIABLES

from .workspace import COLOUR_VARIABLES, Generation, Workspace, generate_for, navigate_code

PC_AXES = ("pc1", "pc2")
AXES = VARIABLES + PC_AXES  # every slider


class NavigationState(param.Parameterized):
    reference = param.Integer(default=0, bounds=(0, None), doc="trial whose code navigation starts from")
    colour_by = param.Selector(default="target_x", objects=list(COLOUR_VARIABLES))
    pc_x = param.Selector(default="PC1", objects=["PC1", "PC2", "PC3", "PC4"])
    pc_y = param.Selector(default="PC2", objects=["PC1", "PC2", "PC3", "PC4"])
    lock = param.Boolean(default=True, doc="one set of sliders drives every model")
    drive = param.Selector(default=None, objects=[], doc="the model the sliders drive when unlocked")
    steps = param.Integer(default=10, bounds=(2, 200), doc="DDIM steps (GNOCCHI)")
    samples = param.Integer(default=4, bounds=(1, 32), doc="trials generated per model")
    guidance = param.Number(default=None, bounds=(0.0, 10.0), allow_None=True,
                            doc="classifier-free guidance scale for GNOCCHI models trained with code dropout "
                                "(empty: each model's default)")
    seed = param.Integer(default=0, bounds=(0, None), doc="initial noise; held fixed while navigating")
    show_spikes = param.Boolean(default=False, doc="raster of Poisson spikes instead of rates")
    generations = param.Dict(default={}, doc="model name → latest Generation")
    busy = param.Boolean(default=False)

    def __init__(self, workspace: Workspace, **params):
        names = list(workspace.models)
        self.param.drive.objects = names
        params.setdefault("drive", names[0])
        params.setdefault("reference", default_reference(workspace))
        super().__init__(**params)
        self.workspace = workspace
        self.offsets = {name: dict.fromkeys(AXES, 0.0) for name in names}
        self.baselines: dict[str, Generation] = {}  # per model: the reference with no offsets
        self._baseline_keys: dict[str, tuple] = {}
        self._requests = itertools.count(1)
        self._latest = 0
        self.batch = contextlib.nullcontext  # the app sets `pn.io.hold`: one browser update per generation

    # ------------------------------------------------------------------ navigation
    def set_offset(self, axis: str, value: float) -> None:
        """Move along ``axis`` (cm for behaviour variables, s.d. for PCs) for the driven model(s)."""
        for name in self.driven():
            self.offsets[name][axis] = float(value)

    def driven(self) -> list[str]:
        return list(self.offsets) if self.lock else [self.drive]

    def reset(self) -> None:
        for offsets in self.offsets.values():
            offsets.update(dict.fromkeys(offsets, 0.0))

    def codes(self) -> dict[str, np.ndarray]:
        return {n: navigate_code(v, self.reference, self.offsets[n]) for n, v in self.workspace.models.items()}

    # ------------------------------------------------------------------ generation
    def compute(self) -> dict[str, Generation]:
        """Generate for every model at its current offsets (blocking); refreshes baselines when needed."""
        results = {}
        key = (self.reference, self.steps, self.samples, self.seed, self.guidance)
        for name, view in self.workspace.models.items():
            if self._baseline_keys.get(name) != key:
                self.baselines[name] = generate_for(self.workspace, view, self.reference, {}, **self._settings())
                self._baseline_keys[name] = key
            results[name] = generate_for(self.workspace, view, self.reference, self.offsets[name], **self._settings())
        return results

    def _settings(self) -> dict:
        return {"steps": self.steps, "samples": self.samples, "seed": self.seed, "guidance": self.guidance}

    def regenerate(self) -> None:
        """Synchronous generation (tests, first render)."""
        self.generations = self.compute()

    async def regenerate_async(self) -> None:
        """Generation in a worker thread; dropped if a newer request started meanwhile."""
        request = self._latest = next(self._requests)
        self.busy = True
        try:
            results = await asyncio.get_running_loop().run_in_executor(None, self.compute)
        finally:
            if request == self._latest:
                self.busy = False
        if request == self._latest:
            with self.batch():
                self.generations = results

    def unintended(self, name: str) -> float:
        """Summed movement (cm) of the decoded variables no slider asked to move, since the reference."""
        moved = {axis for axis, value in self.offsets[name].items() if value and axis in VARIABLES}
        return self.generations[name].unintended_cm(self.baselines[name], moved)


def default_reference(workspace: Workspace) -> int:
    """The first held-in test trial (a trial the models never trained on), else trial 0."""
    candidates = np.flatnonzero(workspace.data.heldin_conditions("test"))
    return int(candidates[0]) if len(candidates) else 0
