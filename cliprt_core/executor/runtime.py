"""
The action executor: one command per control period from timed action chunks.

:class:`ActionExecutor` is what the ``action_executor`` node runs at every timer tick. It owns
the chunk scheduler, the enable / e-stop state and the conversion of a delta action into a
velocity twist; the node only converts messages. A tick that has no action to execute (disabled,
e-stopped, queue empty) commands zero velocity at once: nothing keeps moving on old commands.
"""
from __future__ import annotations

from dataclasses import dataclass

from cliprt_core.executor.config import ExecutorConfig, TwistConfig
from cliprt_core.executor.scheduler import ChunkScheduler
import numpy as np


@dataclass(frozen=True)
class Command:
    """What to send to the arm for one control period."""

    action: np.ndarray | None  # the executed 7-D action; None = hold still (nothing executed)
    twist: np.ndarray  # (6,) linear m/s + angular rad/s; zeros when holding
    gripper: float | None  # the gripper command in force (None before the first one)
    request: bool  # ask the policy for the next chunk now
    hold_reason: str | None  # why nothing was executed: disabled | estop | empty


def delta_to_twist(delta: np.ndarray, config: TwistConfig, period: float) -> np.ndarray:
    """``delta * scale / period``, each axis clipped to its velocity limit."""
    velocity = np.asarray(delta[:6], dtype=np.float64) * np.asarray(config.twist_scale) / period
    limits = np.asarray(config.velocity_limits, dtype=np.float64)
    return np.clip(velocity, -limits, limits)


class ActionExecutor:
    """Chunks in, one :class:`Command` per :meth:`tick` out."""

    def __init__(self, config: ExecutorConfig) -> None:
        self.config = config
        self.scheduler = ChunkScheduler(config)
        self.enabled = config.enabled
        self.estopped = False
        self.gripper: float | None = None
        self.ticks = 0
        self.last_tick: float | None = None

    @property
    def counters(self):
        return self.scheduler.counters

    def add_chunk(self, actions: np.ndarray, start: float, now: float) -> str | None:
        """Offer a chunk (see :meth:`ChunkScheduler.add`); refused while it may not move."""
        if self.estopped:
            return 'chunk ignored: e-stop is engaged'
        if not self.enabled:
            return 'chunk ignored: the executor is disabled'
        return self.scheduler.add(actions, start, now)

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = bool(enabled)
        if not self.enabled:
            self.scheduler.clear()

    def set_estop(self, engaged: bool) -> None:
        """Engage (clears every chunk) or release the e-stop."""
        self.estopped = bool(engaged)
        if self.estopped:
            self.scheduler.clear()

    def hold(self, reason: str | None = None, request: bool = False) -> Command:
        """Return a zero-velocity command (the gripper stays as commanded); time stands."""
        if reason is None:
            reason = 'estop' if self.estopped else 'disabled' if not self.enabled else 'empty'
        return Command(None, np.zeros(6), self.gripper, request, reason)

    def tick(self, now: float) -> Command:
        """Return the command for the control period starting at ``now``."""
        self.ticks += 1
        self.last_tick = now
        if self.estopped or not self.enabled:
            return self.hold()
        action = self.scheduler.next_action(now)
        request = self.scheduler.request_due(now)
        if action is None:
            return self.hold('empty', request)
        self.gripper = float(action[6])
        twist = delta_to_twist(action, self.config.twist, self.config.control_period)
        return Command(action, twist, self.gripper, request, None)
