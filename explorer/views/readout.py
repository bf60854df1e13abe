"""What one model's latest generation did, in words. With kinematics: where its mean reach ends against
the command and what moved that nobody asked to move; without: which condition's codes the navigated
code sits among. Always: how it was generated."""

from __future__ import annotations

import panel as pn

from gnocchi_core.analysis.decoding import VARIABLES

from ..state import NavigationState
from ..workspace import Generation
from .plots import VARIABLE_LABELS


def _pair(values) -> str:
    return f"({values[0]:+.1f}, {values[1]:+.1f}) cm"


def how_generated(generation: Generation) -> str:
    """Samples, time, device, steps and guidance of a generation, in words."""
    if generation.steps is None:
        how = "generator run from the code (no sampling steps)"
    else:
        how = f"{generation.steps} DDIM steps"
        if generation.guidance is not None:
            how += f", guidance {generation.guidance:g}"
    n = generation.samples.shape[0]
    return f"{n} samples in {generation.seconds * 1000:.0f} ms on {generation.device}; {how}"


def describe(name: str, generation: Generation, unintended_cm: float, moved: set[str]) -> str:
    """The readout's Markdown for one generation with decoded reaches; every number says what it is."""
    d, c = generation.decoded, generation.commanded
    fixed = ", ".join(VARIABLE_LABELS[v].removesuffix(" (cm)") for v in VARIABLES if v not in moved)
    n = generation.samples.shape[0]
    return (f"**{name}**: mean reach of {n} samples ends at {_pair(d[2:])}; commanded target {_pair(c[2:])}; "
            f"**miss {generation.target_error_cm:.1f} cm**  \n"
            f"unintended movement (summed change of {fixed or 'nothing'} since the reference): "
            f"**{unintended_cm:.1f} cm**  \n"
            f"{how_generated(generation)}")


def describe_neural(name: str, generation: Generation, reference_condition: int | None) -> str:
    """The readout's Markdown for one generation without kinematics: the navigated code's nearest condition
    centroid (where the trials carry conditions) and how it was generated."""
    lines = [f"**{name}**: generated activity (no kinematics: nothing decoded)"]
    if generation.nearest_condition is not None:
        condition, distance = generation.nearest_condition
        lines[0] = (f"**{name}**: navigated code nearest condition **{condition}**'s centroid, at "
                    f"**{distance:.2f}×** the typical trial's distance to its own centroid "
                    f"(reference trial: condition {reference_condition})")
    return "  \n".join(lines + [how_generated(generation)])


class Readout(pn.viewable.Viewer):
    """Decoded vs commanded target of the mean reach and unintended movement (with kinematics), or the
    nearest condition (without), and how the generation ran."""

    def __init__(self, state: NavigationState, name: str, **params):
        super().__init__(**params)
        self.state, self.model_name = state, name
        self._pane = pn.pane.Markdown(self._text(), css_classes=["readout"], name=f"readout-{name}", width=380,
                                      styles={"font-size": "9pt"})
        state.param.watch(lambda event: setattr(self._pane, "object", self._text()), ["generations"])

    def _text(self) -> str:
        generation = self.state.generations.get(self.model_name)
        if generation is None:
            return f"**{self.model_name}**: generating…"
        if generation.decoded is None:
            info = self.state.workspace.data.trial_info
            condition = int(info["condition_id"].iloc[self.state.reference]) if self.state.workspace.conditions \
                else None
            return describe_neural(self.model_name, generation, condition)
        return describe(self.model_name, generation, self.state.unintended(self.model_name),
                        self.state.moved(self.model_name))

    def __panel__(self):
        return self._pane
