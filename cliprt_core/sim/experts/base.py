"""
A scripted expert: a plan of phases (move, grasp, lift, ...) executed with the Cartesian servo.

A plan is built from the scene at reset (object poses are read from the simulator, never from
images); each phase freezes its target when it starts, runs until the gripper is within tolerance
(or its step budget is used) and then holds for ``hold`` steps (grippers need a few steps to
close). The expert is a plain policy: ``act(observation) -> 7-D action``.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

from cliprt_core.sim.experts.scene import Scene
from cliprt_core.sim.experts.servo import servo_action, yaw_rotation
import numpy as np

#: The gripper orientation every plan starts from: pointing down, fingers closing along world y.
DOWN = np.diag([1.0, -1.0, -1.0])


@dataclass
class Phase:
    """One segment of a plan: go to a target with the gripper open or closed."""

    name: str
    target: Callable[[Scene, np.ndarray], np.ndarray]  # (scene, eef_pos) -> target position
    gripper: float
    tolerance: float = 0.01
    max_steps: int = 80
    hold: int = 0
    speed: float = 1.0
    yaw: float = 0.0  # gripper rotation about world z, relative to DOWN


class UnsupportedTaskError(ValueError):
    """No scripted expert exists for this task."""


class ScriptedExpert:
    """Run a plan of phases against a :class:`~cliprt_core.sim.LiberoTaskEnv`."""

    def __init__(self, name: str, make_plan: Callable[[Scene], list[Phase]]) -> None:
        self.name = name
        self._make_plan = make_plan
        self._scene: Scene | None = None
        self._plan: list[Phase] = []
        self._index = 0
        self._target: np.ndarray | None = None
        self._steps_in_phase = 0
        self._held = 0

    def reset(self, env) -> None:
        """Plan from the current simulator state (call after ``env.reset``)."""
        self._scene = Scene(env.raw_env)
        self._plan = self._make_plan(self._scene)
        self._index = 0
        self._target = None
        self._steps_in_phase = 0
        self._held = 0

    @property
    def phase(self) -> str:
        """Name of the phase being executed (``done`` after the last)."""
        return self._plan[self._index].name if self._index < len(self._plan) else 'done'

    def act(self, observation) -> np.ndarray:
        """Return the next action for an :class:`~cliprt_core.sim.Observation`."""
        if self._scene is None:
            raise RuntimeError('reset(env) before act()')
        eef = observation.eef_pos
        while self._index < len(self._plan):
            phase = self._plan[self._index]
            if self._target is None:
                self._target = np.asarray(phase.target(self._scene, eef), dtype=np.float64)
            reached = np.linalg.norm(self._target - eef) <= phase.tolerance
            if reached or self._steps_in_phase >= phase.max_steps:
                if self._held >= phase.hold:
                    self._advance()
                    continue
                self._held += 1
            self._steps_in_phase += 1
            return servo_action(eef, observation.eef_quat, self._target,
                                yaw_rotation(phase.yaw) @ DOWN, phase.gripper, phase.speed)
        last = self._plan[-1]
        return servo_action(eef, observation.eef_quat, self._target if self._target is not None
                            else eef, yaw_rotation(last.yaw) @ DOWN, last.gripper, 0.0)

    def rollout(self, env, init_state: int,
                on_step: Callable[[object, np.ndarray], None] | None = None,
                render: bool = True) -> tuple[bool, int]:
        """
        Run one episode from init state ``init_state`` until success or the horizon.

        ``on_step(observation, action)`` sees each observation before its action (recording).
        ``render=False`` skips the cameras after the reset (black frames; success only).
        Returns (success, policy steps).
        """
        observation = env.reset(init_state)
        self.reset(env)
        with contextlib.nullcontext() if render else env.unseen_frames():
            while True:
                action = self.act(observation)
                if on_step is not None:
                    on_step(observation, action)
                result = env.step(action)
                observation = result.observation
                if result.done:
                    return result.success, result.steps

    def _advance(self) -> None:
        self._index += 1
        self._target = None
        self._steps_in_phase = 0
        self._held = 0
