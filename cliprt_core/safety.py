"""
ROS-free action safety: bounds clipping, finite checks, a stale-input watchdog.

Everything a robot-facing process must enforce before an action leaves it lives here, so the ROS
nodes only convert messages and call these objects (and tests exercise them without ROS):

* :class:`ActionGuard` - never lets a non-finite action out; clips to the configured bounds.
* :class:`StalenessWatchdog` - decides whether an input stamped at ``t`` is too old at ``now``
  and tracks whether the input stream as a whole has gone stale.

Times are plain floats in seconds (any clock, as long as one object sees one clock).
"""
from __future__ import annotations

from dataclasses import dataclass, field
import math

from cliprt_core.actions.space import ACTION_HIGH, ACTION_LOW
from cliprt_core.config import ConfigError, setting
import numpy as np

__all__ = ['ActionBounds', 'ActionGuard', 'ActionSafetyConfig', 'StalenessWatchdog',
           'UnsafeActionError']


class UnsafeActionError(RuntimeError):
    """An action was withheld: non-finite values or a shape that does not match the bounds."""


@dataclass(frozen=True)
class ActionBounds:
    """
    Bounds every published action is clipped to (per dimension).

    Defaults are LIBERO's normalised OSC_POSE deltas ([-1, 1] = +-5 cm / +-0.5 rad per step,
    gripper -1 open / +1 close).
    """

    action_low: tuple[float, ...] = setting(ACTION_LOW, 'lower bounds of dx, dy, dz, droll, '
                                            'dpitch, dyaw, gripper (actions are clipped)')
    action_high: tuple[float, ...] = setting(ACTION_HIGH, 'upper bounds of the action '
                                             'dimensions (actions are clipped)')

    def __post_init__(self) -> None:
        low = np.asarray(self.action_low, dtype=np.float64)
        high = np.asarray(self.action_high, dtype=np.float64)
        if low.ndim != 1 or low.size == 0 or low.shape != high.shape:
            raise ConfigError(f'action_low ({low.size} values) and action_high ({high.size} '
                              'values) must be non-empty lists of the same length')
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise ConfigError('action bounds must be finite')
        if (low > high).any():
            bad = [i for i in range(low.size) if low[i] > high[i]]
            raise ConfigError(f'action_low > action_high for dimension(s) {bad}')


@dataclass(frozen=True)
class ActionSafetyConfig:
    """The action bounds and how old an input image may be (``<= 0`` disables the check)."""

    bounds: ActionBounds = field(default_factory=ActionBounds)
    stale_image_timeout: float = setting(0.5, 'seconds; an image older than this (header.stamp '
                                         'vs the clock) is never answered; <= 0 disables')

    def __post_init__(self) -> None:
        if not math.isfinite(self.stale_image_timeout):
            raise ConfigError('stale_image_timeout must be finite (<= 0 disables the check)')


class ActionGuard:
    """Validate and clip actions: ``guard(actions) -> float32 array within the bounds``."""

    def __init__(self, bounds: ActionBounds) -> None:
        self.low = np.asarray(bounds.action_low, dtype=np.float32)
        self.high = np.asarray(bounds.action_high, dtype=np.float32)
        self.clipped_values = 0  # how many individual values were clipped so far
        self.withheld = 0  # how many whole actions/chunks were refused

    @property
    def action_dim(self) -> int:
        return int(self.low.size)

    def __call__(self, actions: np.ndarray) -> np.ndarray:
        """
        Return a clipped float32 copy of ``actions`` ``[..., action_dim]``.

        Raises :class:`UnsafeActionError` (and counts it) for non-finite values or a wrong last
        dimension: such an action must never be published, clipped or not.
        """
        array = np.asarray(actions, dtype=np.float32)
        if array.ndim == 0 or array.shape[-1] != self.action_dim:
            self.withheld += 1
            raise UnsafeActionError(f'action shape {array.shape} does not end in the '
                                    f'{self.action_dim} configured action dimensions')
        finite = np.isfinite(array)
        if not finite.all():
            self.withheld += 1
            raise UnsafeActionError(f'{int((~finite).sum())} non-finite value(s) in an action '
                                    f'of shape {array.shape}; withheld')
        clipped = np.clip(array, self.low, self.high)
        self.clipped_values += int(np.count_nonzero(clipped != array))
        return clipped


class StalenessWatchdog:
    """
    Input freshness: per-message age checks and a stream-level "gone stale" state.

    ``check(stamp, now)`` returns ``None`` for a fresh input or the reason it must not be acted
    on; ``tick(now)`` reports whether the stream is currently stale (no fresh input for longer
    than the timeout) and whether that state just changed, so callers log transitions once.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = float(timeout)
        self.last_fresh: float | None = None
        self.stale = False
        self.rejected = 0

    @property
    def enabled(self) -> bool:
        return self.timeout > 0

    def check(self, stamp: float, now: float) -> str | None:
        """Reason why an input stamped ``stamp`` is unusable at ``now``, or None if fresh."""
        reason = self._reason(stamp, now)
        if reason is None:
            self.last_fresh = now
        else:
            self.rejected += 1
        return reason

    def is_fresh(self, stamp: float, now: float) -> bool:
        """Check (without counting) whether ``stamp`` is still fresh at ``now``."""
        return self._reason(stamp, now) is None

    def reset(self) -> None:
        """Forget the stream's history (e.g. after actions were disabled for a while)."""
        self.last_fresh = None
        self.stale = False

    def tick(self, now: float) -> tuple[bool, bool]:
        """``(stale, changed)``: the stream is stale when no fresh input came for ``timeout``."""
        if not self.enabled or self.last_fresh is None:
            stale = False
        else:
            stale = now - self.last_fresh > self.timeout
        changed = stale != self.stale
        self.stale = stale
        return stale, changed

    def _reason(self, stamp: float, now: float) -> str | None:
        if not self.enabled:
            return None
        if stamp <= 0.0:
            return ('image has no header.stamp (0): unstamped images cannot be checked for '
                    'staleness (stamp them, or set stale_image_timeout <= 0)')
        age = now - stamp
        if age > self.timeout:
            return f'image is stale: {age:.3f} s old > stale_image_timeout {self.timeout:.3f} s'
        if age < -self.timeout:
            return (f'image stamp is {-age:.3f} s in the future (> {self.timeout:.3f} s): '
                    'camera and node clocks disagree')
        return None
