"""The paper's synthetic dataset: a GRU controlling a MotorNet arm, reaching to grid targets.

Realistic synthetic neural activity with exactly known behaviour. A GRU policy (128 units)
drives the six Hill-type muscles of MotorNet's ``RigidTendonArm26`` (a planar two-joint arm)
in 10 ms steps. It sees the target (from target onset) and a go cue, both through the visual
delay, and delayed, noisy proprioceptive (muscle length and velocity) and visual (hand
position) feedback. Each trial holds at a start position, shows a target, waits through a
delay, and reaches on the go cue and holds. Starts vary across trials, so start and target
are separate behavioural variables; targets lie on an n×n grid, a few of which are held out
as unseen conditions.

The policy's units are the "neurons": a random subset is read out as Poisson spikes whose
rates are an exponential of each unit's standardised activity. The policy is trained once
(backpropagation through the differentiable arm, about 17 minutes on one CPU core), saved as
a checkpoint, and reused so the data can be regenerated without retraining.

Positions are in cm relative to the workspace centre (``ArmTaskConfig.centre_cm`` in the
shoulder frame); x is rightwards and y away from the body, matching ``synthetic.grid_targets``.

Requires the ``motornet`` package (``pip install 'gnocchi-explorer[simulate]'``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..atomic import atomic_path
from ..errors import GnocchiError
from .synthetic import _splits, default_heldout_targets, grid_targets
from .trialdata import Provenance, TrialData

#: One MotorNet step, and the bin width of the data: one bin is one simulation step.
STEP_MS = 10.0
#: Positions are fed to the policy in units of this many cm, so the workspace spans about ±1.
INPUT_SCALE_CM = 10.0
#: Standardised unit activity is softly limited to ±this before the exponential.
Z_LIMIT = 3.0
#: Checkpoint format, stored in the JSON beside the weights.
POLICY_FORMAT = "gnocchi-motornet-policy"
POLICY_VERSION = 1

SOURCE = "MotorNet RigidTendonArm26 GRU policy simulation"
CITATION = ("Codol O, Michaels JA, Kashefi M, Pruszynski JA, Gribble PL (2024). MotorNet, a Python toolbox "
            "for controlling differentiable biomechanical effectors with artificial neural networks. "
            "eLife 12:RP88591, doi:10.7554/eLife.88591; McCart et al., GNOCCHI (the paper this dataset "
            "validates)")


def _require(ok: bool, cls: str, name: str, expected: str, found: object) -> None:
    if not ok:
        raise ValueError(f"{cls}.{name}: expected {expected}, found {found!r}")


def _check_range(cls: str, name: str, value, low: float = 0) -> None:
    _require(len(value) == 2 and low <= value[0] <= value[1], cls, name,
             f"(min, max) with {low} <= min <= max", value)


@dataclass(frozen=True)
class ArmTaskConfig:
    """The arm, the policy's inputs and the trial epochs: what a trained policy is tied to.

    Stored in the policy checkpoint's JSON, so a loaded policy always runs in the task it learnt.
    Epoch lengths are in 10 ms steps.
    """

    n_units: int = 128
    centre_cm: tuple[float, float] = (0.0, 45.0)  # workspace centre, shoulder at the origin
    workspace_half_cm: float = 10.0  # training starts and targets: a square of this half-width
    target_on_steps: tuple[int, int] = (5, 30)  # initial hold before the target appears
    delay_steps: tuple[int, int] = (0, 80)  # target onset to go cue
    post_go_steps: int = 100  # go cue to the end of the trial: reaction, reach and hold
    proprioception_delay_steps: int = 2
    vision_delay_steps: int = 5
    proprioception_noise: float = 0.01  # in normalised muscle length / velocity units
    vision_noise_cm: float = 0.2
    motor_noise: float = 0.001  # added to the muscle excitations (1 is a muscle's full force)
    hidden_noise: float = 0.01  # added to the GRU state each step: trial-to-trial variability

    def __post_init__(self) -> None:
        c, n = self, "ArmTaskConfig"
        _require(c.n_units >= 1, n, "n_units", ">= 1", c.n_units)
        _require(len(c.centre_cm) == 2, n, "centre_cm", "(x, y)", c.centre_cm)
        _require(c.workspace_half_cm > 0, n, "workspace_half_cm", "> 0", c.workspace_half_cm)
        _check_range(n, "target_on_steps", c.target_on_steps, low=1)
        _check_range(n, "delay_steps", c.delay_steps)
        _require(c.post_go_steps >= 1, n, "post_go_steps", ">= 1", c.post_go_steps)
        for name in ("proprioception_delay_steps", "vision_delay_steps"):
            _require(getattr(c, name) >= 1, n, name, ">= 1 (MotorNet feedback is at least one step old)",
                     getattr(c, name))
        for name in ("proprioception_noise", "vision_noise_cm", "motor_noise", "hidden_noise"):
            _require(getattr(c, name) >= 0, n, name, ">= 0", getattr(c, name))
        corners = np.array([[sx, sy] for sx in (-1, 1) for sy in (-1, 1)]) * c.workspace_half_cm
        _joint_angles(corners + np.asarray(c.centre_cm), field=f"{n}.workspace_half_cm")

    @property
    def n_inputs(self) -> int:
        return 2 + 1 + 2 + 2 * N_MUSCLES  # target, go cue, vision, proprioception


@dataclass(frozen=True)
class TrainConfig:
    """How the policy is trained: random starts and targets anywhere in the workspace.

    The loss is the hand's distance to where it should be: the start until ``reaction_steps``
    after the go cue (which the policy sees after the visual delay), then a minimum-jerk path
    to the target lasting ``reach_steps``, then the target. A bare distance-to-target loss
    makes the fastest possible, ballistic reach that overshoots and rings; the path gives
    straight, bell-shaped reaches at monkey-like speeds. While the hand should be still (before
    the reach, and over the final ``hold_steps``) distance and speed are weighted extra, so it
    holds still and endpoints are precise. Small penalties on muscle excitation and unit
    activity, and on how fast each changes, keep the solution smooth and economical.
    """

    iterations: int = 1200
    batch_size: int = 128
    learning_rate: float = 3e-3
    final_learning_rate: float = 1e-4  # cosine decay
    catch_fraction: float = 0.1  # trials with no go cue, so the policy learns to wait for it
    curriculum_fraction: float = 0.3  # delays grow from short to full over this part of training
    reaction_steps: int = 10
    reach_steps: int = 35  # duration of the minimum-jerk path the hand should follow
    hold_steps: int = 30  # the last steps of a trial, weighted extra
    weight_hold: float = 2.0
    weight_hold_speed: float = 0.1
    weight_activation: float = 5.0
    weight_activation_change: float = 50.0
    weight_units: float = 0.1
    weight_unit_change: float = 10.0
    grad_clip: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        c, n = self, "TrainConfig"
        _require(c.iterations >= 0, n, "iterations", ">= 0", c.iterations)
        _require(c.batch_size >= 1, n, "batch_size", ">= 1", c.batch_size)
        _require(c.learning_rate > 0 and c.final_learning_rate > 0, n, "learning_rate",
                 "positive learning rates", (c.learning_rate, c.final_learning_rate))
        _require(0 <= c.catch_fraction < 1, n, "catch_fraction", "in [0, 1)", c.catch_fraction)
        _require(0 <= c.curriculum_fraction <= 1, n, "curriculum_fraction", "in [0, 1]", c.curriculum_fraction)
        _require(c.hold_steps >= 1, n, "hold_steps", ">= 1", c.hold_steps)
        _require(c.reaction_steps >= 0, n, "reaction_steps", ">= 0", c.reaction_steps)
        _require(c.reach_steps >= 1, n, "reach_steps", ">= 1", c.reach_steps)


@dataclass(frozen=True)
class MotorNetSimConfig:
    """The dataset drawn from a trained policy; validated on construction.

    ``n_neurons`` held-in plus ``n_heldout_neurons`` held-out units are read out, so together
    they must not exceed the policy's units. Trials are aligned to movement onset: the first
    step of the climb to peak hand speed above ``onset_fraction`` of that peak.
    """

    grid: int = 5  # n×n targets
    grid_half_cm: float = 8.0  # the grid spans ±this around the workspace centre
    trials_per_condition: int = 20
    heldout_targets: tuple[int, ...] | None = None  # grid indices; None → default_heldout_targets
    start_half_cm: float = 5.0  # starts uniform in a square of this half-width
    min_reach_cm: float = 3.0  # starts are redrawn until this far from the target
    target_on_steps: tuple[int, int] = (10, 30)
    delay_steps: tuple[int, int] = (30, 80)
    n_neurons: int = 100  # held-in
    n_heldout_neurons: int = 20
    window_ms: tuple[float, float] = (-200.0, 500.0)
    onset_fraction: float = 0.15
    rate_range_hz: tuple[float, float] = (10.0, 40.0)  # per-neuron mean rates, log-uniform
    rate_gain: float = 0.6  # rate = mean · exp(gain · z) / normaliser, z = standardised unit activity
    split_fractions: tuple[float, float, float] = (0.6, 0.15, 0.25)  # per held-in target (stratified)
    seed: int = 0

    def __post_init__(self) -> None:
        c, n = self, "MotorNetSimConfig"
        _require(isinstance(c.grid, (int, np.integer)) and c.grid >= 2, n, "grid", "an integer >= 2", c.grid)
        _require(c.grid_half_cm > 0, n, "grid_half_cm", "> 0", c.grid_half_cm)
        _require(c.trials_per_condition >= 1, n, "trials_per_condition", ">= 1", c.trials_per_condition)
        _require(c.start_half_cm >= 0, n, "start_half_cm", ">= 0", c.start_half_cm)
        _require(c.min_reach_cm >= 0 and c.min_reach_cm < c.start_half_cm + c.grid_half_cm, n, "min_reach_cm",
                 "0 <= min_reach_cm < start_half_cm + grid_half_cm", c.min_reach_cm)
        _check_range(n, "target_on_steps", c.target_on_steps, low=1)
        _check_range(n, "delay_steps", c.delay_steps)
        _require(c.n_neurons >= 1, n, "n_neurons", ">= 1 held-in neuron", c.n_neurons)
        _require(c.n_heldout_neurons >= 0, n, "n_heldout_neurons", ">= 0", c.n_heldout_neurons)
        _require(len(c.window_ms) == 2 and c.window_ms[0] <= -STEP_MS and c.window_ms[1] >= STEP_MS, n,
                 "window_ms", "(start, end) with start < 0 < end", c.window_ms)
        for edge in c.window_ms:
            _require(abs(edge / STEP_MS - round(edge / STEP_MS)) < 1e-9, n, "window_ms",
                     f"whole {STEP_MS:g} ms steps", c.window_ms)
        _require(0 < c.onset_fraction < 1, n, "onset_fraction", "in (0, 1)", c.onset_fraction)
        _check_range(n, "rate_range_hz", c.rate_range_hz)
        _require(c.rate_range_hz[0] > 0, n, "rate_range_hz", "positive rates", c.rate_range_hz)
        _require(c.rate_gain >= 0, n, "rate_gain", ">= 0", c.rate_gain)
        fractions = np.asarray(c.split_fractions, dtype=float)
        _require(fractions.shape == (3,) and np.all(fractions >= 0) and abs(fractions.sum() - 1) < 1e-6, n,
                 "split_fractions", "three non-negative fractions (train, valid, test) summing to 1",
                 c.split_fractions)
        if c.heldout_targets is not None:
            n_targets, indices = c.grid * c.grid, list(c.heldout_targets)
            _require(all(isinstance(i, (int, np.integer)) and 0 <= i < n_targets for i in indices), n,
                     "heldout_targets", f"grid indices in [0, {n_targets})", c.heldout_targets)
            _require(len(set(indices)) == len(indices), n, "heldout_targets", "no repeated indices",
                     c.heldout_targets)
            _require(len(indices) < n_targets, n, "heldout_targets", "at least one held-in target",
                     c.heldout_targets)

    @property
    def window_steps(self) -> tuple[int, int]:
        """Steps before and after movement onset in the window."""
        return int(round(-self.window_ms[0] / STEP_MS)), int(round(self.window_ms[1] / STEP_MS))

    def resolved_heldout_targets(self) -> tuple[int, ...]:
        if self.heldout_targets is None:
            return default_heldout_targets(self.grid)
        return tuple(int(i) for i in self.heldout_targets)

    def check_fits(self, task: ArmTaskConfig) -> None:
        """Raise ValueError if this dataset asks for more than the policy's task provides."""
        n = "MotorNetSimConfig"
        _require(self.n_neurons + self.n_heldout_neurons <= task.n_units, n, "n_neurons",
                 f"held-in + held-out neurons <= the policy's {task.n_units} units",
                 self.n_neurons + self.n_heldout_neurons)
        reach = max(self.grid_half_cm, self.start_half_cm)
        _require(reach <= task.workspace_half_cm, n, "grid_half_cm",
                 f"grid and starts within the policy's trained workspace (±{task.workspace_half_cm:g} cm)",
                 reach)
        pre, post = self.window_steps
        _require(self.target_on_steps[0] + self.delay_steps[0] >= pre, n, "window_ms",
                 "a window start no earlier than the shortest time to the go cue", self.window_ms)
        _require(post + 10 <= task.post_go_steps, n, "window_ms",
                 f"a window end at least 100 ms before the trial ends ({task.post_go_steps} steps after go)",
                 self.window_ms)


# ---------------------------------------------------------------------- the arm
N_MUSCLES = 6
#: RigidTendonArm26's default link lengths (m) and joint limits (rad), for inverse kinematics.
ARM_LENGTHS_M = (0.309, 0.333)
JOINT_LIMITS = ((0.0, np.deg2rad(135.0)), (0.0, np.deg2rad(155.0)))


def _motornet():
    try:
        import motornet
    except ImportError:
        raise GnocchiError("the MotorNet simulation needs the motornet package: "
                           "pip install 'gnocchi-explorer[simulate]'") from None
    return motornet


def make_arm():
    """MotorNet's six-muscle planar arm with rigid-tendon Hill-type muscles, stepped every 10 ms."""
    mn = _motornet()
    arm = mn.effector.RigidTendonArm26(muscle=mn.muscle.RigidTendonHillMuscle(), timestep=STEP_MS / 1000)
    assert (arm.skeleton.l1, arm.skeleton.l2) == ARM_LENGTHS_M, "MotorNet changed the arm's link lengths"
    return arm


def _joint_angles(xy_cm: np.ndarray, field: str = "start") -> np.ndarray:
    """Shoulder and elbow angles (rad) that put the hand at ``xy_cm`` (shoulder frame), elbow flexed."""
    l1, l2 = ARM_LENGTHS_M
    xy_cm = np.atleast_2d(np.asarray(xy_cm, dtype=float))
    xy = xy_cm / 100.0
    cos_elbow = (np.sum(xy**2, axis=1) - l1**2 - l2**2) / (2 * l1 * l2)
    elbow = np.arccos(np.clip(cos_elbow, -1.0, 1.0))
    shoulder = np.arctan2(xy[:, 1], xy[:, 0]) - np.arctan2(l2 * np.sin(elbow), l1 + l2 * np.cos(elbow))
    q = np.stack([shoulder, elbow], axis=1)
    low = np.array([lim[0] for lim in JOINT_LIMITS]) + 1e-3
    high = np.array([lim[1] for lim in JOINT_LIMITS]) - 1e-3
    bad = (np.abs(cos_elbow) > 1) | np.any((q < low) | (q > high), axis=1)
    if bad.any():
        raise ValueError(f"{field}: hand position {xy_cm[np.argmax(bad)]} cm is outside the arm's reach "
                         "or joint limits")
    return q


class GRUPolicy(torch.nn.Module):
    """GRU → linear → sigmoid muscle excitations. Its hidden units are the simulated neurons."""

    def __init__(self, n_inputs: int, n_units: int, n_muscles: int = N_MUSCLES):
        super().__init__()
        self.gru = torch.nn.GRUCell(n_inputs, n_units)
        self.readout = torch.nn.Linear(n_units, n_muscles)
        self.h0 = torch.nn.Parameter(torch.zeros(n_units))  # learnt resting state
        torch.nn.init.xavier_uniform_(self.gru.weight_ih)
        for block in self.gru.weight_hh.data.chunk(3, dim=0):
            torch.nn.init.orthogonal_(block)
        torch.nn.init.zeros_(self.gru.bias_ih)
        torch.nn.init.zeros_(self.gru.bias_hh)
        torch.nn.init.xavier_uniform_(self.readout.weight)
        torch.nn.init.constant_(self.readout.bias, -3.0)  # muscles start nearly relaxed

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.gru(x, h)
        return torch.sigmoid(self.readout(h)), h


@dataclass
class Trials:
    """One batch of trials to run: start and target (cm, centre-relative) and epoch steps."""

    start_cm: np.ndarray  # (B, 2)
    target_cm: np.ndarray  # (B, 2)
    target_on: np.ndarray  # (B,) first step the target is shown
    go: np.ndarray  # (B,) first step of the go cue; n_steps or later = catch trial
    n_steps: int


def rollout(policy: GRUPolicy, task: ArmTaskConfig, trials: Trials, generator: torch.Generator,
            arm=None) -> dict[str, torch.Tensor]:
    """Run the policy on the arm for ``trials``; every output is (steps, trials, ...).

    Returns ``units`` (GRU state during each step), ``excitation`` (policy output), and the arm
    at the end of each step: ``muscle_act``, ``pos`` (cm, centre-relative) and ``vel`` (cm/s).
    Differentiable when called with gradients enabled (training backpropagates through it).
    """
    arm = make_arm() if arm is None else arm
    n = len(trials.start_cm)
    centre = torch.tensor(task.centre_cm, dtype=torch.float32) / 100.0
    joints = _joint_angles(np.asarray(trials.start_cm) + np.asarray(task.centre_cm))
    arm.reset(options={"batch_size": n, "joint_state": torch.tensor(joints, dtype=torch.float32)})
    target_in = torch.tensor(np.asarray(trials.target_cm) / INPUT_SCALE_CM, dtype=torch.float32)
    # The target and go cue are seen, so they reach the policy with the visual delay.
    seen = torch.arange(trials.n_steps)[:, None] - task.vision_delay_steps
    shown = (seen >= torch.as_tensor(trials.target_on)[None]).float()[..., None]  # (T, B, 1)
    go = (seen >= torch.as_tensor(trials.go)[None]).float()[..., None]
    l0_ce, vmax = arm.muscle.l0_ce[:, 0], arm.muscle.vmax[:, 0]

    def noise(shape, scale):
        return scale * torch.randn(shape, generator=generator) if scale > 0 else 0.0

    def feedback():
        muscle = arm.states["muscle"]
        vision = (arm.states["fingertip"] - centre) * (100.0 / INPUT_SCALE_CM)
        proprio = torch.cat([muscle[:, 1] / l0_ce - 1.0, muscle[:, 2] / vmax], dim=1)
        return (vision + noise(vision.shape, task.vision_noise_cm / INPUT_SCALE_CM),
                proprio + noise(proprio.shape, task.proprioception_noise))

    vision, proprio = feedback()
    vision_buffer = [vision] * task.vision_delay_steps
    proprio_buffer = [proprio] * task.proprioception_delay_steps
    h = policy.h0.expand(n, -1)
    out = {k: [] for k in ("units", "excitation", "muscle_act", "pos", "vel")}
    for t in range(trials.n_steps):
        x = torch.cat([target_in * shown[t], go[t], vision_buffer[0], proprio_buffer[0]], dim=1)
        u, h = policy(x, h)
        h = h + noise(h.shape, task.hidden_noise)
        arm.step(u + noise(u.shape, task.motor_noise))
        vision, proprio = feedback()
        vision_buffer = vision_buffer[1:] + [vision]
        proprio_buffer = proprio_buffer[1:] + [proprio]
        cartesian = arm.states["cartesian"]
        out["units"].append(h)
        out["excitation"].append(u)
        out["muscle_act"].append(arm.states["muscle"][:, 0])
        out["pos"].append((cartesian[:, :2] - centre) * 100.0)
        out["vel"].append(cartesian[:, 2:] * 100.0)
    return {k: torch.stack(v) for k, v in out.items()}


# ---------------------------------------------------------------------- training
def random_trials(task: ArmTaskConfig, n: int, rng: np.random.Generator, delay_max: int | None = None,
                  catch_fraction: float = 0.0, target_on_steps=None, delay_steps=None) -> Trials:
    """Random starts and targets anywhere in the workspace, with random epochs."""
    half = task.workspace_half_cm
    target_on_steps = target_on_steps or task.target_on_steps
    delay_steps = delay_steps or task.delay_steps
    delay_high = delay_steps[1] if delay_max is None else max(delay_steps[0], min(delay_steps[1], delay_max))
    start = rng.uniform(-half, half, size=(n, 2))
    target = rng.uniform(-half, half, size=(n, 2))
    target_on = rng.integers(target_on_steps[0], target_on_steps[1] + 1, size=n)
    go = target_on + rng.integers(delay_steps[0], delay_high + 1, size=n)
    n_steps = int(go.max()) + task.post_go_steps
    catch = rng.random(n) < catch_fraction
    go[catch] = n_steps  # never cued: hold at the start throughout
    return Trials(start, target, target_on, go, n_steps)


def _goal(trials: Trials, lag: int, reach_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the hand should be at each step (T, B, 2), and whether it should be still at the start (T, B).

    The start until ``lag`` steps after the go cue, then a minimum-jerk path to the target over
    ``reach_steps``, then the target.
    """
    step = torch.arange(trials.n_steps)[:, None]
    moving_from = torch.as_tensor(trials.go)[None, :] + lag
    tau = ((step - moving_from) / reach_steps).clamp(0.0, 1.0)[..., None]
    progress = tau**3 * (10 - 15 * tau + 6 * tau**2)
    start = torch.tensor(trials.start_cm, dtype=torch.float32)[None]
    target = torch.tensor(trials.target_cm, dtype=torch.float32)[None]
    return start + progress * (target - start), step < moving_from


def train_policy(task: ArmTaskConfig = ArmTaskConfig(), train: TrainConfig = TrainConfig(),
                 progress: bool = True) -> tuple[GRUPolicy, dict]:
    """Train a policy by backpropagation through the arm; returns it and its training record.

    Uses one CPU thread (the work is many small steps, so more threads barely help).
    """
    from tqdm.auto import tqdm

    rng = np.random.default_rng(train.seed)
    generator = torch.Generator().manual_seed(train.seed)
    with _one_thread(), torch.random.fork_rng():
        torch.manual_seed(train.seed)
        policy = GRUPolicy(task.n_inputs, task.n_units)
        optimizer = torch.optim.Adam(policy.parameters(), lr=train.learning_rate)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(train.iterations, 1), eta_min=train.final_learning_rate)
        arm = make_arm()
        started = time.monotonic()
        ramp = max(1, int(train.curriculum_fraction * train.iterations))
        bar = tqdm(range(train.iterations), desc="training policy", disable=not progress, mininterval=2.0)
        history = []
        for it in bar:
            delay_max = int(round(10 + (task.delay_steps[1] - 10) * min(1.0, it / ramp)))
            trials = random_trials(task, train.batch_size, rng, delay_max, train.catch_fraction)
            out = rollout(policy, task, trials, generator, arm)
            loss, endpoint = _loss(out, trials, train)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), train.grad_clip)
            optimizer.step()
            schedule.step()
            history.append((loss.item(), endpoint))
            if it % 10 == 0 or it == train.iterations - 1:
                recent = np.array(history[-50:])
                bar.set_postfix(loss=f"{recent[:, 0].mean():.3f}", err_cm=f"{np.median(recent[:, 1]):.2f}")
        seconds = time.monotonic() - started
    policy.eval()
    record = {"iterations": train.iterations, "seconds": round(seconds, 1),
              "final_loss": float(np.mean([h[0] for h in history[-50:]])) if history else None}
    return policy, record


def _loss(out: dict[str, torch.Tensor], trials: Trials, train: TrainConfig) -> tuple[torch.Tensor, float]:
    """Training loss and the batch's median endpoint error (cm) on cued trials."""
    goal, still = _goal(trials, train.reaction_steps, train.reach_steps)
    still[-train.hold_steps:] = True
    still = still.float() / still.float().sum()
    distance = torch.linalg.vector_norm(out["pos"] - goal, dim=-1)  # (T, B), cm
    speed = torch.linalg.vector_norm(out["vel"], dim=-1)
    units, excitation = out["units"], out["excitation"]
    loss = (distance.mean()
            + train.weight_hold * (distance * still).sum()
            + train.weight_hold_speed * (speed * still).sum()
            + train.weight_activation * excitation.pow(2).mean()
            + train.weight_activation_change * (excitation[1:] - excitation[:-1]).pow(2).mean()
            + train.weight_units * units.pow(2).mean()
            + train.weight_unit_change * (units[1:] - units[:-1]).pow(2).mean())
    cued = torch.as_tensor(trials.go) < trials.n_steps
    endpoint = distance[-1][cued]
    return loss, float(endpoint.detach().median()) if len(endpoint) else float("nan")


def evaluate_policy(policy: GRUPolicy, task: ArmTaskConfig, n_trials: int = 512, seed: int = 1,
                    half_cm: float | None = None) -> dict:
    """Endpoint error at the end of the hold on fresh random reaches (starts and targets within ±half_cm)."""
    rng = np.random.default_rng(seed)
    trials = random_trials(task, n_trials, rng, target_on_steps=(10, 30), delay_steps=(30, 80))
    if half_cm is not None:
        trials.start_cm *= half_cm / task.workspace_half_cm
        trials.target_cm *= half_cm / task.workspace_half_cm
    with torch.no_grad(), _one_thread():
        out = rollout(policy, task, trials, torch.Generator().manual_seed(seed))
    error = np.linalg.norm(out["pos"][-1].numpy() - trials.target_cm, axis=1)
    return {"eval_trials": n_trials, "median_endpoint_error_cm": round(float(np.median(error)), 3),
            "success_rate": round(float(np.mean(error < 1.0)), 4)}


@contextlib.contextmanager
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------- checkpoint
def save_policy(policy: GRUPolicy, task: ArmTaskConfig, path: str | os.PathLike, record: dict | None = None) -> None:
    """Write ``path`` (a torch state_dict, loadable with ``weights_only=True``) and ``path``.json."""
    path = Path(path)
    meta = {"format": POLICY_FORMAT, "version": POLICY_VERSION, "task": dataclasses.asdict(task),
            "training": record or {}, "motornet": _motornet().__version__, "torch": torch.__version__}
    state = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    with atomic_path(policy_json_path(path)) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")


def load_policy(path: str | os.PathLike) -> tuple[GRUPolicy, ArmTaskConfig, dict]:
    """Read a checkpoint written by ``save_policy``: the policy, its task, and the JSON record."""
    path = Path(path)
    meta_path = policy_json_path(path)
    if not path.is_file() or not meta_path.is_file():
        raise GnocchiError(f"{path}: policy checkpoint not found (needs {path.name} and {meta_path.name})")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != POLICY_FORMAT or meta.get("version") != POLICY_VERSION:
        raise GnocchiError(f"{meta_path}: not a GNOCCHI MotorNet policy (format {meta.get('format')!r}, "
                           f"version {meta.get('version')!r})")
    task = ArmTaskConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["task"].items()})
    policy = GRUPolicy(task.n_inputs, task.n_units)
    policy.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
    policy.eval()
    return policy, task, meta


def policy_json_path(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


# ---------------------------------------------------------------------- the dataset
def simulate(config: MotorNetSimConfig, policy: GRUPolicy, task: ArmTaskConfig,
             policy_record: dict | None = None) -> TrialData:
    """Simulate the grid-reaching dataset from a trained policy; the same inputs give identical arrays."""
    config.check_fits(task)
    # Independent streams: which units are neurons does not change when the trial count does.
    trial_rng, neuron_rng, spike_rng = np.random.default_rng(config.seed).spawn(3)
    targets = grid_targets(config.grid, 2 * config.grid_half_cm / (config.grid - 1))
    heldout = config.resolved_heldout_targets()
    info, trials = _trial_table(config, task, targets, heldout, trial_rng)

    generator = torch.Generator().manual_seed(config.seed)
    chunks = []
    with torch.no_grad(), _one_thread():
        arm = make_arm()
        for lo in range(0, len(info), 256):
            part = Trials(trials.start_cm[lo:lo + 256], trials.target_cm[lo:lo + 256],
                          trials.target_on[lo:lo + 256], trials.go[lo:lo + 256], trials.n_steps)
            chunks.append({k: v.numpy().swapaxes(0, 1) for k, v in rollout(policy, task, part, generator, arm).items()})
    sim = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}  # (trials, steps, ...)

    speed = np.linalg.norm(sim["vel"], axis=-1)
    onset = movement_onset(speed, trials.go, config.onset_fraction, config.window_steps)
    pre, post = config.window_steps
    window = onset[:, None] + np.arange(-pre, post)[None, :]
    rows = np.arange(len(info))[:, None]
    windowed = {k: v[rows, window] for k, v in sim.items()}

    info["target_on_bin"] = trials.target_on
    info["go_cue_bin"] = trials.go
    info["movement_onset_bin"] = onset
    info["reaction_time_ms"] = (onset - trials.go) * STEP_MS
    info["endpoint_error_cm"] = np.linalg.norm(sim["pos"][:, -1] - trials.target_cm, axis=1)

    n_total = config.n_neurons + config.n_heldout_neurons
    unit_index = np.sort(neuron_rng.choice(task.n_units, n_total, replace=False))
    heldout_neurons = np.zeros(n_total, bool)
    heldout_neurons[neuron_rng.choice(n_total, config.n_heldout_neurons, replace=False)] = True
    rates = unit_rates(windowed["units"][..., unit_index], config, neuron_rng)
    spikes = spike_rng.poisson(rates * STEP_MS / 1000.0).astype(np.int32)

    data = TrialData(
        spikes=spikes,
        bin_ms=STEP_MS,
        t0_ms=config.window_ms[0],
        trial_info=info,
        behavior={"hand_pos": windowed["pos"], "hand_vel": windowed["vel"], "muscle_act": windowed["muscle_act"]},
        behavior_units={"hand_pos": "cm", "hand_vel": "cm/s", "muscle_act": "activation (0-1)"},
        heldout_neurons=heldout_neurons,
        neuron_ids=unit_index,
        rates=rates.astype(np.float32),
        latents=windowed["units"].astype(np.float32),
        align_event="move_onset",
        provenance=Provenance(source=SOURCE, licence="CC0-1.0", citation=CITATION),
    )
    metrics = dataset_metrics(data)
    data.provenance.description = (
        "A GRU policy (MotorNet RigidTendonArm26, 6 rigid-tendon Hill muscles, 10 ms steps) holds at a start, "
        "sees a grid target, waits for a go cue and reaches; neurons are a random subset of its units "
        "(neuron_ids = unit index; latents = all units), rates = exp of standardised unit activity, Poisson "
        "spikes. Positions in cm relative to the workspace centre; trial_info *_bin columns count 10 ms "
        f"simulation steps from the trial start. Config: {json.dumps(dataclasses.asdict(config))}. "
        f"Task: {json.dumps(dataclasses.asdict(task))}. Policy: {json.dumps(policy_record or {})}. "
        f"Metrics: {json.dumps(metrics)}")
    return data


def _trial_table(config: MotorNetSimConfig, task: ArmTaskConfig, targets: np.ndarray, heldout: tuple[int, ...],
                 rng: np.random.Generator) -> tuple[pd.DataFrame, Trials]:
    """Balanced targets in random order, random starts (a minimum reach away) and epochs, and splits."""
    n = config.trials_per_condition * len(targets)
    target_index = rng.permutation(np.arange(n) % len(targets))
    target = targets[target_index]
    start = rng.uniform(-config.start_half_cm, config.start_half_cm, size=(n, 2))
    for _ in range(1000):
        short = np.linalg.norm(target - start, axis=1) < config.min_reach_cm
        if not short.any():
            break
        start[short] = rng.uniform(-config.start_half_cm, config.start_half_cm, size=(int(short.sum()), 2))
    target_on = rng.integers(config.target_on_steps[0], config.target_on_steps[1] + 1, size=n)
    go = target_on + rng.integers(config.delay_steps[0], config.delay_steps[1] + 1, size=n)
    is_heldout = np.isin(target_index, heldout)
    info = pd.DataFrame({
        "trial_id": np.arange(n),
        "split": _splits(is_heldout, config.split_fractions, rng, conditions=target_index),
        "condition_id": target_index,
        "heldout_condition": is_heldout,
        "start_x": start[:, 0],
        "start_y": start[:, 1],
        "target_x": target[:, 0],
        "target_y": target[:, 1],
        "reach_angle": np.arctan2(target[:, 1] - start[:, 1], target[:, 0] - start[:, 0]),
        "target_index": target_index,
    })
    return info, Trials(start, target, target_on, go, int(go.max()) + task.post_go_steps)


def movement_onset(speed: np.ndarray, go: np.ndarray, fraction: float, window_steps: tuple[int, int]) -> np.ndarray:
    """Movement-onset step per trial: the start of the climb to peak speed above ``fraction`` of it.

    The peak is the fastest step after the go cue; walking back from it, onset is the first step
    of the run above threshold, so speed is below threshold the step before and at or above it
    at onset. Clipped so the whole window fits in the simulation (only an untrained policy needs it).
    """
    n_trials, n_steps = speed.shape
    pre, post = window_steps
    onset = np.empty(n_trials, dtype=np.int64)
    for i in range(n_trials):
        peak = go[i] + int(np.argmax(speed[i, go[i]:]))
        below = np.flatnonzero(speed[i, :peak + 1] < fraction * speed[i, peak])
        onset[i] = below[-1] + 1 if len(below) else 0
    return np.clip(onset, pre, n_steps - post)


def unit_rates(units: np.ndarray, config: MotorNetSimConfig, rng: np.random.Generator) -> np.ndarray:
    """Rates (Hz) from unit activity: mean_i · exp(gain · z) / mean(exp(gain · z)) per neuron.

    z is each unit's activity standardised over all trials and bins, so every unit is modulated
    comparably whatever its raw range, and softly limited to ±3 (3·tanh(z/3)) so a rarely
    active unit does not fire at hundreds of spikes/s. Per-neuron means are log-uniform over
    ``rate_range_hz``.
    """
    flat = units.reshape(-1, units.shape[-1])
    z = (units - flat.mean(axis=0)) / np.maximum(flat.std(axis=0), 1e-6)
    z = Z_LIMIT * np.tanh(z / Z_LIMIT)
    modulation = np.exp(config.rate_gain * z)
    low, high = np.log(config.rate_range_hz)
    neuron_mean = np.exp(rng.uniform(low, high, size=units.shape[-1]))
    return modulation * (neuron_mean / modulation.mean(axis=(0, 1)))


# ---------------------------------------------------------------------- checks and figure
def dataset_metrics(data: TrialData, period_ms: tuple[float, float] = (0.0, 400.0)) -> dict:
    """Reach accuracy and single-unit tuning: what says the dataset is fit to use.

    Tuning: the fraction of neurons whose mean spike rate over ``period_ms`` after movement
    onset differs across targets (one-way ANOVA over conditions, p < 0.01).
    """
    from scipy import stats

    info = data.trial_info
    error = info["endpoint_error_cm"].to_numpy()
    centres = data.bin_centers_ms
    in_period = (centres >= period_ms[0]) & (centres < period_ms[1])
    movement_rate = data.spikes[:, in_period].mean(axis=1) * 1000.0 / data.bin_ms  # (trials, neurons)
    groups = [movement_rate[info["condition_id"].to_numpy() == c] for c in np.unique(info["condition_id"])]
    testable = len(groups) > 1 and min(len(g) for g in groups) > 1
    p = np.array([stats.f_oneway(*[g[:, j] for g in groups]).pvalue for j in range(data.n_neurons)]) if testable else None
    return {
        "median_endpoint_error_cm": round(float(np.median(error)), 3),
        "success_rate": round(float(np.mean(error < 1.0)), 4),
        "median_reaction_time_ms": float(np.median(info["reaction_time_ms"])),
        "tuned_fraction": None if p is None else round(float(np.mean(np.nan_to_num(p, nan=1.0) < 0.01)), 4),
        "tuning_period_ms": list(period_ms),
        "mean_rate_hz": round(data.mean_rate_hz(), 3),
    }


def tuning_text(metrics: dict) -> str:
    if metrics["tuned_fraction"] is None:
        return "tuning not testable (needs 2+ trials per target)"
    return f"{100 * metrics['tuned_fraction']:.0f}% of neurons tuned to target (ANOVA p<0.01)"


def read_metrics(data: TrialData) -> dict:
    """The metrics ``simulate`` stored in the provenance description."""
    return json.loads(data.provenance.description.rsplit("Metrics: ", 1)[1])


def plot_dataset(data: TrialData, path: str | os.PathLike, n_units: int = 4, paths_per_target: int = 4) -> None:
    """Hand paths coloured by target (held-out targets ringed) and a few units' rates by condition.

    Shows ``paths_per_target`` paths per target (all of them would hide each other), the speed
    profiles that define the alignment, the endpoint errors, and the most target-tuned neurons.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    info = data.trial_info
    target = info[["target_x", "target_y"]].to_numpy()
    colour = _target_colours(target)
    cond = info["condition_id"].to_numpy()
    heldout = info["heldout_condition"].to_numpy()
    pos, t = data.behavior["hand_pos"], data.bin_centers_ms

    fig = plt.figure(figsize=(13, 6.5), layout="constrained")
    grid = fig.add_gridspec(2, 4, width_ratios=[2.2, 1, 1, 1])
    ax = fig.add_subplot(grid[:, 0])
    shown = np.zeros(len(cond), bool)
    for c in np.unique(cond):
        shown[np.flatnonzero(cond == c)[:paths_per_target]] = True
    for i in np.flatnonzero(shown)[np.argsort(heldout[shown], kind="stable")]:  # held-out last, on top
        ax.plot(pos[i, :, 0], pos[i, :, 1], color=colour[i], lw=1.1 if heldout[i] else 0.8,
                alpha=0.95 if heldout[i] else 0.7, ls="--" if heldout[i] else "-")
        ax.scatter(*pos[i, 0], s=10, color=colour[i], edgecolor="0.3", lw=0.4, zorder=2)
    ax.scatter([], [], s=10, color="w", edgecolor="0.3", lw=0.4, label="start of a reach")
    conditions, first = np.unique(cond, return_index=True)
    for c, i in zip(conditions, first):
        ax.scatter(*target[i], s=90, color=colour[i], edgecolor="k", lw=0.5, zorder=3)
        if heldout[i]:
            ax.scatter(*target[i], s=260, facecolor="none", edgecolor="k", lw=1.8, zorder=4)
    ax.scatter([], [], s=260, facecolor="none", edgecolor="k", lw=1.8, label="held-out target (dashed paths)")
    ax.set(aspect="equal", xlabel="hand x (cm)", ylabel="hand y (cm)",
           title=f"Hand paths ({paths_per_target} per target)\n{-data.window_ms[0]:g} ms before to "
                 f"{data.window_ms[1]:g} ms after movement onset")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=8, frameon=False)

    speed = np.linalg.norm(data.behavior["hand_vel"], axis=-1)
    ax = fig.add_subplot(grid[0, 1])
    ax.plot(t, speed.T, color="0.4", lw=0.3, alpha=0.3)
    ax.plot(t, np.median(speed, axis=0), color="k", lw=1.5)
    ax.axvline(0, color="r", lw=0.8)
    ax.set(xlabel="time from movement onset (ms)", ylabel="hand speed (cm/s)", title="Speed (median in black)")

    metrics = dataset_metrics(data)
    ax = fig.add_subplot(grid[1, 1])
    err = info["endpoint_error_cm"].to_numpy()
    ax.hist(err, bins=np.linspace(0, max(2.0, float(np.quantile(err, 0.99))), 30), color="0.5")
    ax.axvline(1.0, color="r", lw=0.8)
    ax.set(xlabel="endpoint error at end of hold (cm)", ylabel="trials",
           title=f"median {metrics['median_endpoint_error_cm']:.2f} cm, "
                 f"{100 * metrics['success_rate']:.0f}% < 1 cm")

    units = _most_tuned(data, n_units)
    for k, j in enumerate(units):
        ax = fig.add_subplot(grid[k // 2, 2 + k % 2])
        source = data.rates if data.rates is not None else data.spikes * 1000.0 / data.bin_ms
        for c, i in zip(conditions, first):
            mean = np.asarray(source[cond == c, :, j], dtype=float).mean(axis=0)
            ax.plot(t, mean, color=colour[i], lw=1.3 if heldout[i] else 0.8, ls="--" if heldout[i] else "-")
        ax.axvline(0, color="0.5", lw=0.6)
        ax.set(title=f"neuron {j} (unit {data.neuron_ids[j]})", xlabel="time from onset (ms)",
               ylabel="rate (spikes/s)" if k % 2 == 0 else None)
    fig.suptitle(f"MotorNet arm, GRU policy: {data.n_trials} trials, {len(conditions)} targets, "
                 f"{data.n_neurons} neurons; {tuning_text(metrics)}; colour = target position", fontsize=11)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _target_colours(target: np.ndarray) -> np.ndarray:
    """A 2-D colour map: hue = direction of the target from the grid centre, saturation = distance."""
    from matplotlib.colors import hsv_to_rgb

    radius = np.linalg.norm(target, axis=1)
    hue = (np.arctan2(target[:, 1], target[:, 0]) / (2 * math.pi)) % 1.0
    sat = 0.25 + 0.75 * radius / max(radius.max(), 1e-9)
    return hsv_to_rgb(np.stack([hue, sat, np.full_like(hue, 0.85)], axis=1))


def _most_tuned(data: TrialData, n: int) -> np.ndarray:
    """Neurons whose mean movement-period rate (0-400 ms) differs most across targets, relative to their mean."""
    cond = data.trial_info["condition_id"].to_numpy()
    rate = (data.rates if data.rates is not None else data.spikes).astype(float)
    centres = data.bin_centers_ms
    per_trial = rate[:, (centres >= 0) & (centres < 400)].mean(axis=1)
    means = np.stack([per_trial[cond == c].mean(axis=0) for c in np.unique(cond)])
    depth = (means.max(axis=0) - means.min(axis=0)) / (per_trial.mean(axis=0) + 1e-9)
    return np.sort(np.argsort(depth)[::-1][:n])
