"""
Real-time evaluation: the simulator advances on a clock, not in lockstep with the policy.

In lockstep (the benchmark protocol) the simulator waits for every chunk, so inference latency
never matters. In real time the simulator steps every control period (scaled by a real-time
factor for CPUs that cannot simulate at full speed) and applies whatever action the arm's
executor sent last; a step that finds no new action holds still. What a policy loses to latency
shows up as held steps and lower success, as it would on a robot.

ROS-free: :class:`Pacer` (when the next step is due), :class:`ActionLatch` (the newest action,
consumed once) and :class:`RealtimeStats` (what goes into an episode's results record).
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from cliprt_core.runtime_stats import percentiles_ms
from cliprt_core.sim.protocol import ACTION_DIM
import numpy as np

#: The gripper command while nothing was ever sent (LIBERO's dummy action opens the gripper).
OPEN_GRIPPER = -1.0


class Pacer:
    """
    Wall-clock step times: step ``k`` is due ``k * period / real_time_factor`` s after start.

    ``wait()`` sleeps until the next step is due; a step that is already late is an overrun
    (the simulator is slower than the factor asks; simulated time then runs slower still).
    """

    def __init__(self, period: float, real_time_factor: float,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not (period > 0 and real_time_factor > 0):
            raise ValueError('period and real_time_factor must be > 0')
        self.wall_period = period / real_time_factor
        self._clock, self._sleep = clock, sleep
        self._start = clock()
        self._steps = 0
        self.overruns = 0

    def wait(self) -> None:
        self._steps += 1
        delay = self._start + self._steps * self.wall_period - self._clock()
        if delay > 0:
            self._sleep(delay)
        elif -delay > 0.5 * self.wall_period:
            self.overruns += 1
            # Catch up by starting over from now: one slow step must not rush the next ones.
            self._start = self._clock() - self._steps * self.wall_period

    def restart(self) -> None:
        """Start pacing anew (after a reset, which takes wall time but no simulated time)."""
        self._start = self._clock()
        self._steps = 0


class ActionLatch:
    """The newest action from the executor; each is applied to at most one simulator step."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._action: np.ndarray | None = None
        self.gripper = OPEN_GRIPPER

    def offer(self, action: np.ndarray) -> None:
        """Keep ``action`` (7 values) for the next step (a newer one replaces it)."""
        array = np.asarray(action, dtype=np.float64).reshape(ACTION_DIM)
        with self._lock:
            self._action = array

    def take(self) -> tuple[np.ndarray, bool]:
        """Return ``(action, fresh)``: the newest unapplied action, or a hold (same grip)."""
        with self._lock:
            action, self._action = self._action, None
        if action is None:
            hold = np.zeros(ACTION_DIM)
            hold[-1] = self.gripper
            return hold, False
        self.gripper = float(action[-1])
        return action, True

    def clear(self) -> None:
        """Forget a pending action and the gripper state (a new episode starts open)."""
        with self._lock:
            self._action = None
        self.gripper = OPEN_GRIPPER


class RealtimeStats:
    """Per-episode counts of a real-time run (``record['realtime']`` in episodes.jsonl)."""

    def __init__(self, real_time_factor: float) -> None:
        self.real_time_factor = real_time_factor
        self.steps = 0
        self.holds = 0  # steps with no new action from the executor
        self.chunks = 0  # action chunks the policy published during the episode
        self.chunk_latency: list[float] = []  # simulated seconds from image stamp to chunk
        self._wall_start = time.monotonic()

    def step(self, fresh: bool) -> None:
        self.steps += 1
        self.holds += 0 if fresh else 1

    def chunk(self, latency: float) -> None:
        self.chunks += 1
        self.chunk_latency.append(latency)

    def record(self, period: float, overruns: int) -> dict:
        wall = time.monotonic() - self._wall_start
        return {
            'real_time_factor': self.real_time_factor,
            'achieved_real_time_factor': round(self.steps * period / wall, 4) if wall else None,
            'steps': self.steps, 'holds': self.holds, 'overruns': overruns,
            'chunks': self.chunks, 'chunk_latency_ms': percentiles_ms(self.chunk_latency),
        }
