"""Per-session state of the explorer: the reference trial, the navigation offsets and the latest generations.

`NavigationState` is a `param.Parameterized` with no Panel in it, so it is tested without a
browser. Views watch its `generations` / `reference` parameters and redraw in place.

Generation runs off the event loop, in one worker thread shared by every session of the server:
one model at a time uses the CPU cores (no oversubscription when many sessions release a slider
at once), and a request that finishes after a newer one from the same session was made is
dropped, so dragging quickly never shows stale samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import param

from gnocchi_core.analysis.decoding import VARIABLES

from .workspace import COLOUR_VARIABLES, PC_AXES, REACH_AXES, Generation, Workspace, generate_for, navigate_code

AXES = REACH_AXES  # the sliders of a dataset with kinematics (`Workspace.axes`: those of any dataset)
NO_VARIABLE = "none"  # no extra trial variable slider
__all__ = ["AXES", "GENERATION_POOL", "NO_VARIABLE", "PC_AXES", "NavigationState", "default_reference"]
GENERATION_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="explorer-generate")


class NavigationState(param.Parameterized):
    reference = param.Integer(default=0, bounds=(0, None), doc="trial whose code navigation starts from")
    colour_by = param.Selector(default="target_x", objects=list(COLOUR_VARIABLES))
    extra = param.Selector(default=NO_VARIABLE, objects=[NO_VARIABLE],
                           doc="another trial variable to navigate along (datasets with kinematics)")
    pc_x = param.Selector(default="PC1", objects=["PC1", "PC2", "PC3", "PC4"])
    pc_y = param.Selector(default="PC2", objects=["PC1", "PC2", "PC3", "PC4"])
    lock = param.Boolean(default=True, doc="one set of sliders drives every model")
    drive = param.Selector(default=None, objects=[], doc="the model the sliders drive when unlocked")
    steps = param.Integer(default=None, bounds=(1, 200), allow_None=True,
                          doc="DDIM steps for GNOCCHI (empty: each model's default)")
    samples = param.Integer(default=4, bounds=(1, 32), doc="trials generated per model")
    guidance = param.Number(default=None, bounds=(0.0, 10.0), allow_None=True,
                            doc="classifier-free guidance scale for GNOCCHI models trained with code dropout "
                                "(empty: each model's default)")
    seed = param.Integer(default=0, bounds=(0, 2**32 - 1), doc="initial noise; held fixed while navigating")
    show_spikes = param.Boolean(default=False, doc="raster of Poisson spikes instead of rates")
    generations = param.Dict(default={}, doc="model name → latest Generation")
    busy = param.Boolean(default=False)

    def __init__(self, workspace: Workspace, **params):
        names = list(workspace.models)
        self.param.drive.objects = names
        self.param.colour_by.objects = list(workspace.colours)
        self.param.extra.objects = [NO_VARIABLE, *workspace.variables]
        n_pcs = min(view.pcs.shape[1] for view in workspace.models.values())
        self.param.pc_x.objects = [f"PC{k + 1}" for k in range(n_pcs)]
        self.param.pc_y.objects = [f"PC{k + 1}" for k in range(n_pcs)]
        params.setdefault("drive", names[0])
        params.setdefault("colour_by", workspace.default_colour)
        params.setdefault("pc_y", f"PC{min(2, n_pcs)}")
        params.setdefault("reference", default_reference(workspace))
        super().__init__(**params)
        self.workspace = workspace
        self.offsets = {name: dict.fromkeys(workspace.axes + workspace.variables, 0.0) for name in names}
        self.baselines: dict[str, Generation] = {}  # per model: the shown generation's reference, no offsets
        self._baseline_cache: dict[str, tuple] = {}  # per model: (request key, baseline), the worker's
        self._requests = itertools.count(1)
        self._latest = 0
        self.batch = contextlib.nullcontext  # the app sets `pn.io.hold`: one browser update per generation

    # ------------------------------------------------------------------ navigation
    @param.depends("extra", watch=True)
    def _extra_chosen(self) -> None:
        """One extra trial variable at a time: the others go back to the reference's values."""
        for offsets in self.offsets.values():
            offsets.update({v: 0.0 for v in self.workspace.variables if v != self.extra})

    def slider_axes(self) -> tuple[str, ...]:
        """The axes the sliders move along now: the workspace's, and the extra trial variable if one is chosen."""
        return self.workspace.axes + ((self.extra,) if self.extra != NO_VARIABLE else ())

    def set_offset(self, axis: str, value: float) -> None:
        """Move along ``axis`` (cm for reach variables, a trial variable's own units, s.d. for PCs and
        condition axes) for the driven model(s)."""
        for name in self.driven():
            self.offsets[name][axis] = float(value)

    def reference_value(self, axis: str) -> float:
        """The reference trial's value of an absolute axis (reach or trial variable); 0 for a shift (PCs,
        condition axes: sliders move them by offsets)."""
        return self.workspace.trial_value(axis, self.reference)

    def set_value(self, axis: str, value: float) -> None:
        """Command an absolute value: where the reach should start/end (cm), a trial variable's value, or a
        PC / condition-axis shift (s.d.)."""
        self.set_offset(axis, value - self.reference_value(axis))

    def value(self, axis: str, name: str | None = None) -> float:
        """What the sliders show for ``name`` (default: the driven model): reference value + offset."""
        return self.reference_value(axis) + self.offsets[name or self.driven()[0]][axis]

    def driven(self) -> list[str]:
        return list(self.offsets) if self.lock else [self.drive]

    def reset(self) -> None:
        for offsets in self.offsets.values():
            offsets.update(dict.fromkeys(offsets, 0.0))

    def codes(self) -> dict[str, np.ndarray]:
        return {n: navigate_code(v, self.reference, self.offsets[n]) for n, v in self.workspace.models.items()}

    # ------------------------------------------------------------------ generation
    def compute(self, request: tuple | None = None, request_id: int | None = None) -> tuple | None:
        """Generate for every model at its offsets (blocking): the generations and their baselines (the
        reference with no offsets, regenerated only when the reference or a setting changed).
        ``request``: a snapshot from `_request` taken on the event loop (default: now). With
        ``request_id``, None as soon as a newer request exists (queued work that nobody will see)."""
        reference, offsets, settings = request or self._request()
        key = (reference, *settings.values())
        results, baselines = {}, {}
        for name, view in self.workspace.models.items():
            if request_id is not None and request_id != self._latest:
                return None
            cached_key, baseline = self._baseline_cache.get(name, (None, None))
            if cached_key != key:
                baseline = generate_for(self.workspace, view, reference, {}, **settings)
                self._baseline_cache[name] = (key, baseline)
            baselines[name] = baseline
            shifted = any(offsets[name].values())
            results[name] = generate_for(self.workspace, view, reference, offsets[name], **settings) if shifted else baseline
        return results, baselines

    def _request(self) -> tuple:
        return (self.reference, {name: dict(o) for name, o in self.offsets.items()},
                {"steps": self.steps, "samples": self.samples, "seed": self.seed, "guidance": self.guidance})

    def _apply(self, results: dict[str, Generation], baselines: dict[str, Generation]) -> None:
        self.baselines = baselines
        with self.batch():
            self.generations = results

    def regenerate(self) -> None:
        """Synchronous generation (tests, scripts)."""
        self._apply(*self.compute())

    @property
    def latest_request(self) -> int:
        return self._latest

    def regenerate_soon(self, execute) -> None:
        """Schedule a generation with ``execute`` (`pn.state.execute`); whatever is in flight or queued
        is stale from this moment, so the sliders and the plots never disagree for long."""
        request = self._latest = next(self._requests)

        async def generate():
            await self.regenerate_async(request)
        execute(generate)

    async def regenerate_async(self, request: int | None = None) -> None:
        """Generation in the shared worker thread; dropped (or skipped, if still queued) once a newer
        request exists."""
        if request is None:
            request = self._latest = next(self._requests)
        if request != self._latest:
            return
        self.busy = True
        try:
            results = await asyncio.get_running_loop().run_in_executor(GENERATION_POOL, self.compute,
                                                                       self._request(), request)
        finally:
            if request == self._latest:
                self.busy = False
        if request == self._latest and results is not None:
            self._apply(*results)

    def moved(self, name: str) -> set[str]:
        """The behaviour variables the shown generation of ``name`` was asked to move from the reference
        (none without kinematics)."""
        generation, baseline = self.generations[name], self.baselines[name]
        if generation.commanded is None:
            return set()
        return {v for k, v in enumerate(VARIABLES) if generation.commanded[k] != baseline.commanded[k]}

    def unintended(self, name: str) -> float | None:
        """Summed movement (cm) of the decoded variables no slider asked to move, since the reference
        (None without kinematics: nothing is decoded)."""
        if self.generations[name].decoded is None:
            return None
        return self.generations[name].unintended_cm(self.baselines[name], self.moved(name))

    def shown_is_current(self) -> bool:
        """Whether every shown generation was made from the code the sliders command now."""
        codes = self.codes()
        return all(name in self.generations and np.allclose(self.generations[name].code, code)
                   for name, code in codes.items())


def default_reference(workspace: Workspace) -> int:
    """The first held-in test trial (a trial the models never trained on), else trial 0."""
    candidates = np.flatnonzero(workspace.data.heldin_conditions("test"))
    return int(candidates[0]) if len(candidates) else 0
