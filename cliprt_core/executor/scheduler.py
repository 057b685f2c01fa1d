"""
Timed action chunks and how overlapping chunks become one action per control period.

A chunk's action ``i`` is due at ``start + i * period`` (``start`` = the stamp of the image it
answers). At a tick at time ``now`` each chunk offers the action whose due time is nearest
(``round((now - start) / period)``), never one it already gave. Two aggregations:

* ``latest`` - the newest chunk wins; the rest of older chunks is dropped (``superseded``).
* ``ensemble`` - ACT's temporal ensembling: every chunk that has an action for ``now``
  contributes, weighted ``exp(-decay * i)`` with ``i = 0`` for the oldest chunk, normalised.

With latency compensation a chunk that arrives late starts at the action due now: the earlier
ones are counted as ``skipped``. Without it the chunk is re-timed to start on arrival.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
import math

from cliprt_core.executor.config import ExecutorConfig
from cliprt_core.runtime_stats import RollingWindow
from cliprt_core.safety import ActionGuard, UnsafeActionError
import numpy as np


@dataclass
class TimedChunk:
    """An action chunk with the time its first action is due."""

    actions: np.ndarray  # (k, action_dim) float64
    start: float  # seconds: due time of actions[0]
    period: float  # seconds between actions
    next_index: int = 0  # the first action not yet executed or skipped
    started: bool = False  # one of its actions ran (or was part of an ensemble)
    stamp: float | None = None  # the stamp it came with (start may be re-timed to arrival)

    def index_at(self, now: float) -> int:
        """Index of the action whose due time is nearest to ``now``."""
        return int(math.floor((now - self.start) / self.period + 0.5))

    def remaining(self, now: float) -> int:
        """Actions still ahead at ``now``."""
        return max(0, len(self.actions) - max(self.next_index, self.index_at(now)))


@dataclass
class ExecutorCounters:
    """What happened to chunks and actions so far (diagnostics, results)."""

    chunks: int = 0  # chunks accepted
    dropped_stale: int = 0  # chunks too old on arrival (or with every action already past)
    dropped_invalid: int = 0  # chunks with non-finite values or a wrong shape
    executed: int = 0  # actions executed (ticks with an action)
    skipped: int = 0  # actions of the active chunk whose time passed before they ran
    superseded: int = 0  # actions of older chunks replaced by a newer one (latest)
    underruns: int = 0  # ticks with no action while chunks were expected
    requests: int = 0  # chunk requests sent to the policy

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class ChunkScheduler:
    """Accepts timed chunks, yields one (aggregated) action per tick, decides when to ask."""

    def __init__(self, config: ExecutorConfig) -> None:
        self.config = config
        self.guard = ActionGuard(config.bounds)
        self.chunks: list[TimedChunk] = []
        self.counters = ExecutorCounters()
        self.latency = RollingWindow()  # chunk age on arrival (seconds)
        self.first_action_latency = RollingWindow()  # image stamp -> first action run (seconds)
        self._pending_request: float | None = None
        self._expecting = False  # a chunk came since the last clear(): an empty tick underruns

    # --- input -----------------------------------------------------------------------------------
    def add(self, actions: np.ndarray, start: float, now: float) -> str | None:
        """Offer a chunk stamped ``start``; return why it was dropped, or None if accepted."""
        try:
            array = self.guard(actions).astype(np.float64)
        except UnsafeActionError as exc:
            self.counters.dropped_invalid += 1
            return f'chunk dropped: {exc}'
        if array.ndim != 2 or len(array) == 0:
            self.counters.dropped_invalid += 1
            return (f'chunk dropped: expected (k, {self.guard.action_dim}) actions, got '
                    f'{array.shape}')
        age = now - start
        if age > self.config.max_chunk_age:
            self.counters.dropped_stale += 1
            return (f'chunk dropped: stale ({age:.3f} s old > max_chunk_age '
                    f'{self.config.max_chunk_age} s)')
        period = self.config.control_period
        chunk = TimedChunk(array, start if self.config.latency_compensation else now, period,
                           stamp=start)
        if chunk.remaining(now) == 0:
            self.counters.dropped_stale += 1
            return f'chunk dropped: all {len(array)} actions are past due ({age:.3f} s old)'
        self.latency.add(age, now)
        if self.config.aggregation == 'latest':
            self.counters.superseded += sum(c.remaining(now) for c in self.chunks)
            self.chunks = [chunk]
        else:
            self.chunks = [c for c in self.chunks if c.remaining(now) > 0] + [chunk]
        self.counters.chunks += 1
        self._pending_request = None
        self._expecting = True
        return None

    def clear(self) -> None:
        """Forget every chunk (disable, e-stop): nothing more runs until a new chunk."""
        self.chunks = []
        self._expecting = False
        self._pending_request = None

    # --- output ----------------------------------------------------------------------------------
    def next_action(self, now: float) -> np.ndarray | None:
        """Return the action for the tick at ``now``, or None (nothing left: hold still)."""
        offers = []
        newest = self.chunks[-1] if self.chunks else None
        for chunk in self.chunks:
            due = chunk.index_at(now)
            if due < 0:
                continue  # its first action is not due yet
            index = max(due, chunk.next_index)
            if chunk is newest:
                self.counters.skipped += min(index, len(chunk.actions)) - chunk.next_index
            if index < len(chunk.actions):
                offers.append(chunk.actions[index])
                chunk.next_index = index + 1
                if not chunk.started:
                    chunk.started = True
                    self.first_action_latency.add(now - chunk.stamp, now)
            else:
                chunk.next_index = len(chunk.actions)
        if self.config.aggregation == 'ensemble':
            self.chunks = [c for c in self.chunks if c.next_index < len(c.actions)]
        if not offers:
            if self._expecting:
                self.counters.underruns += 1
            return None
        self.counters.executed += 1
        return ensemble(offers, self.config.ensemble_decay)

    def request_due(self, now: float) -> bool:
        """Whether to ask the policy for the next chunk now (at most once per timeout)."""
        if self.config.request_threshold < 0:
            return False
        remaining = self.chunks[-1].remaining(now) if self.chunks else 0
        if remaining > self.config.request_threshold:
            return False
        pending = self._pending_request
        if pending is not None and now - pending < self.config.request_timeout:
            return False
        self._pending_request = now
        self.counters.requests += 1
        return True


def ensemble(offers: list[np.ndarray], decay: float) -> np.ndarray:
    """ACT temporal ensembling: weights ``exp(-decay * i)``, ``i = 0`` for the oldest offer."""
    if len(offers) == 1:
        return np.array(offers[0], dtype=np.float64)
    weights = np.exp(-decay * np.arange(len(offers), dtype=np.float64))
    return (weights[:, None] * np.stack(offers)).sum(axis=0) / weights.sum()
