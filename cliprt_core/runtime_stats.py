"""
Rolling runtime statistics for the robot-facing processes (latency percentiles, event rates).

ROS-free, so the nodes only copy these numbers into ``diagnostic_msgs`` and tests check them
without ROS. Times are plain floats in seconds on one clock.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowSummary:
    """Percentiles of the samples in a window and the rate at which they arrived."""

    count: int
    p50: float | None
    p99: float | None
    max: float | None  # noqa: A003 - a field name, like p50 / p99
    rate: float  # samples per second over the window's time span


class RollingWindow:
    """The last ``size`` samples (value, time) of one quantity, e.g. a query latency."""

    def __init__(self, size: int = 200) -> None:
        if size < 1:
            raise ValueError(f'window size must be >= 1, got {size}')
        self._samples: deque[tuple[float, float]] = deque(maxlen=size)
        self.total = 0

    def clear(self) -> None:
        """Drop the samples (the total count stays)."""
        self._samples.clear()

    def values(self) -> list[float]:
        return [v for v, _ in self._samples]

    def add(self, value: float, now: float) -> None:
        self._samples.append((float(value), float(now)))
        self.total += 1

    def summary(self, now: float | None = None) -> WindowSummary:
        """Percentiles of the window; ``rate`` counts samples per second up to ``now``."""
        if not self._samples:
            return WindowSummary(0, None, None, None, 0.0)
        values = np.fromiter((v for v, _ in self._samples), dtype=np.float64)
        first = self._samples[0][1]
        last = self._samples[-1][1] if now is None else max(now, self._samples[-1][1])
        span = last - first
        rate = (len(values) - 1) / span if span > 0 and len(values) > 1 else 0.0
        p50, p99 = np.percentile(values, [50, 99])
        return WindowSummary(len(values), float(p50), float(p99), float(values.max()), rate)


def percentiles_ms(values, quantiles=(50, 99)) -> dict[str, float]:
    """``{'p50': ms, 'p99': ms, ...}`` of durations given in seconds (empty -> {})."""
    array = np.asarray(list(values), dtype=np.float64)
    if array.size == 0:
        return {}
    return {f'p{q}': round(float(v) * 1e3, 2)
            for q, v in zip(quantiles, np.percentile(array, quantiles))}
