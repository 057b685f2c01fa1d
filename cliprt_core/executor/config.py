"""Settings of the action executor (the ``action_executor`` node's parameters)."""
from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Literal

from cliprt_core.actions.space import CONTROL_PERIOD
from cliprt_core.config import ConfigError, setting
from cliprt_core.safety import ActionBounds

Aggregation = Literal['latest', 'ensemble']

#: LIBERO's scale of a normalised delta: 1.0 = 5 cm (position) or 0.5 rad (rotation) per step.
LIBERO_DELTA_SCALE = (0.05, 0.05, 0.05, 0.5, 0.5, 0.5)


@dataclass(frozen=True)
class TwistConfig:
    """How a 6-D delta becomes a ``geometry_msgs/TwistStamped`` velocity command."""

    twist_scale: tuple[float, ...] = setting(
        LIBERO_DELTA_SCALE, 'metres / radians per unit of dx, dy, dz, droll, dpitch, dyaw '
        '(velocity = delta * scale / control_period)')
    velocity_limits: tuple[float, ...] = setting(
        (0.25, 0.25, 0.25, 1.0, 1.0, 1.0), 'per-axis velocity limits of the twist (m/s for '
        'x, y, z; rad/s for roll, pitch, yaw); each axis is clipped to its limit')
    twist_frame_id: str = setting('base_link', 'header.frame_id of the twist (the frame the '
                                  'policy deltas are expressed in)')

    def __post_init__(self) -> None:
        for name in ('twist_scale', 'velocity_limits'):
            values = getattr(self, name)
            if len(values) != 6 or not all(math.isfinite(v) and v >= 0 for v in values):
                raise ConfigError(f'{name} needs 6 finite values >= 0, got {list(values)}')


@dataclass(frozen=True)
class ExecutorConfig:
    """Timing, chunk aggregation, safety and outputs of the action executor."""

    bounds: ActionBounds = field(default_factory=ActionBounds)
    twist: TwistConfig = field(default_factory=TwistConfig)
    control_period: float = setting(CONTROL_PERIOD, 'seconds per executed action (the timer '
                                    'period; 0.05 = 20 Hz)')
    aggregation: Aggregation = setting('latest', 'how overlapping chunks combine: latest (the '
                                       'newest chunk wins) | ensemble (ACT temporal '
                                       'ensembling)')
    ensemble_decay: float = setting(0.01, 'ensemble weight exp(-decay * i), i = 0 for the '
                                    "oldest chunk (ACT's m)")
    latency_compensation: bool = setting(True, 'skip the actions of a chunk whose time has '
                                         'passed (judged from header.stamp) when it arrives')
    request_threshold: int = setting(2, 'ask for the next chunk when at most this many actions '
                                     'remain; < 0 never asks (the policy answers every image)')
    request_timeout: float = setting(0.25, 'seconds before an unanswered chunk request is '
                                     'repeated')
    max_chunk_age: float = setting(1.0, 'seconds; a chunk whose stamp is older than this on '
                                   'arrival is dropped as stale')
    enabled: bool = setting(True, 'execute actions (also ~/enable); false = zero commands')
    publish_twist: bool = setting(True, 'publish geometry_msgs/TwistStamped on servo_twist')
    publish_action: bool = setting(True, 'publish the executed 7-D action on action')
    publish_gripper: bool = setting(True, 'publish the gripper command on gripper_command')

    def __post_init__(self) -> None:
        if not self.control_period > 0:
            raise ConfigError(f'control_period must be > 0, got {self.control_period}')
        for name in ('ensemble_decay', 'request_timeout', 'max_chunk_age'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f'{name} must be finite and >= 0, got {value}')
        if len(self.bounds.action_low) < 7:
            raise ConfigError('the executor needs 7 action bounds (6 deltas + gripper)')
