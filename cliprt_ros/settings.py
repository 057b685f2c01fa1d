"""
The typed settings of the cliprt nodes: one definition for parameters, YAML and launch arguments.

Each node's parameters are the flat settings (:func:`cliprt_core.config.leaves`) of its config
class; nested groups come from ``cliprt_core`` (the policy, the safety bounds, the evaluation), so
a setting shared with ``cliprt-eval`` or the Python API is defined exactly once. No rclpy here:
launch files and tests import this module too.
"""

from dataclasses import dataclass, field
from typing import Literal

from cliprt_core.actions.space import CONTROL_PERIOD
from cliprt_core.config import setting
from cliprt_core.eval.config import CLUSTER_SETTINGS, EvalConfig
from cliprt_core.inference.settings import PolicySettings
from cliprt_core.safety import ActionSafetyConfig
from cliprt_core.teleop.settings import RecorderConfig, TeleopConfig

ImageQos = Literal['sensor_data', 'reliable']
Executor = Literal['events', 'single', 'multi']
QueryMode = Literal['every_image', 'on_request']
BridgeMode = Literal['lockstep', 'realtime']


@dataclass(frozen=True)
class PolicyNodeConfig:
    """Parameters of ``policy_node``: the policy, the safety bounds and the node's I/O."""

    policy: PolicySettings = field(default_factory=PolicySettings)
    safety: ActionSafetyConfig = field(default_factory=ActionSafetyConfig)
    image_qos: ImageQos = setting('sensor_data', 'camera QoS: sensor_data (best effort, depth '
                                  '1; cameras) | reliable (simulator lockstep)')
    action_frame_id: str = setting('base_link', 'header.frame_id of action_chunk: the frame the '
                                   'deltas are expressed in')
    control_period: float = setting(CONTROL_PERIOD, 'seconds between the points of a chunk '
                                    '(time_from_start)')
    enabled: bool = setting(True, 'publish actions (also the ~/enable service); false = answer '
                            'nothing')
    warmup: bool = setting(True, 'run one dummy query at start-up so the first real answer is '
                           'fast')
    executor: Executor = setting('events', 'rclpy executor of the node program: events '
                                 '(rclpy.experimental.EventsExecutor, lowest latency) | single '
                                 '(SingleThreadedExecutor) | multi (MultiThreadedExecutor)')
    query_mode: QueryMode = setting('every_image', 'every_image: answer each fresh image (the '
                                    'lockstep bridge) | on_request: answer the newest image '
                                    'when chunk_request arrives (the action executor)')
    added_latency: float = setting(0.0, 'testing: hold each answer back this many seconds (ROS '
                                   'clock) to emulate a slower model')
    autostart: bool = setting(True, 'configure and activate at start-up; false = wait for '
                              'lifecycle transitions (ros2 lifecycle set <node> configure)')
    robots: str = setting('', 'serve several robots: comma-separated namespaces (env0,env1 -> '
                          'env0/camera/image_raw ...), all pending images answered in one batch; '
                          "'' = one robot on the node's own topics")

    def __post_init__(self):
        """Reject a non-positive control period and a negative added latency."""
        from cliprt_core.config import ConfigError

        if self.control_period <= 0:
            raise ConfigError(f'control_period must be > 0, got {self.control_period}')
        if not self.added_latency >= 0:
            raise ConfigError(f'added_latency must be >= 0, got {self.added_latency}')
        from cliprt_ros.robot_port import parse_robots

        try:
            parse_robots(self.robots)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


#: Parameters that may change while the node runs.
POLICY_NODE_DYNAMIC = ('enabled',)


@dataclass(frozen=True)
class BridgeConfig:
    """Parameters of ``libero_bridge_node``: the evaluation plus the bridge's own I/O."""

    evaluation: EvalConfig = field(default_factory=EvalConfig)
    image_qos: ImageQos = setting('reliable', 'QoS of the image topics: reliable (lockstep) | '
                                  'sensor_data')
    camera_frame_id: str = setting('agentview_camera', 'header.frame_id of camera/image_raw')
    wrist_frame_id: str = setting('wrist_camera', 'header.frame_id of wrist/image_raw')
    chunk_timeout: float = setting(30.0, 'seconds an observation may stay unanswered before the '
                                   'episode ends as a failure')
    resend_period: float = setting(2.0, 'republish an unanswered observation (same stamp) every '
                                   'this many seconds; 0 = never')
    discovery_timeout: float = setting(60.0, 'seconds to wait for a policy node before giving '
                                       'up')
    policy_lost_timeout: float = setting(5.0, 'seconds an episode may go without a policy node '
                                         '(subscriber) before the run stops; the unfinished '
                                         'episode reruns on resume')
    exit_when_done: bool = setting(True, 'exit the process after the last episode')
    mode: BridgeMode = setting('lockstep', 'lockstep: the simulator waits for each chunk (the '
                               'benchmark protocol) | realtime: it steps every control period '
                               'with the newest executed action (hold when none)')
    real_time_factor: float = setting(1.0, 'realtime: simulated seconds per wall second (< 1 '
                                      'for CPUs that cannot simulate at full speed)')
    publish_clock: bool = setting(False, 'realtime: publish the simulated time on /clock (run '
                                  'the other nodes with use_sim_time:=true)')
    camera_period: float = setting(CONTROL_PERIOD, 'realtime: simulated seconds between '
                                   'published observations (a multiple of the control period)')
    shard: str = setting('', 'run a share of the episodes: i/n = every n-th episode of the '
                         'list, starting at the i-th (0-based; n bridges, one results folder); '
                         'empty = all')

    def __post_init__(self):
        """Reject a non-positive real-time factor or camera period."""
        from cliprt_core.config import ConfigError

        for name in ('real_time_factor', 'camera_period'):
            if not getattr(self, name) > 0:
                raise ConfigError(f'{name} must be > 0, got {getattr(self, name)}')
        self.shard_of([])  # validates the shard
        if self.mode == 'realtime' and self.real_time_factor != 1 and not self.publish_clock:
            raise ConfigError('real_time_factor != 1 needs publish_clock: true (and '
                              'use_sim_time: true in the policy node and the executor)')

    def shard_of(self, keys: list) -> list:
        """Return this bridge's share of the episode ``keys`` (all of them without a shard)."""
        from cliprt_core.config import ConfigError

        if not self.shard:
            return list(keys)
        try:
            index, count = (int(part) for part in self.shard.split('/'))
        except ValueError:
            index = count = -1
        if not 0 <= index < count:
            raise ConfigError(f"shard must be 'i/n' with 0 <= i < n, got {self.shard!r}")
        return list(keys)[index::count]


#: EvalConfig settings the bridge does not take: it runs one simulator, has no progress bar and
#: does not load the policy (checkpoint and model_config are recorded in the results only).
BRIDGE_EXCLUDED = ('workers', 'progress', 'device', 'dtype', 'backend', 'weights_seed',
                   *CLUSTER_SETTINGS)

#: action_executor parameters that may change while the node runs (its config is
#: cliprt_core.executor.ExecutorConfig).
EXECUTOR_NODE_DYNAMIC = ('enabled',)


@dataclass(frozen=True)
class TeleopNodeConfig:
    """Parameters of ``teleop_node``: command mapping, its text encoder and the chunk header."""

    teleop: TeleopConfig = field(default_factory=TeleopConfig)
    policy: PolicySettings = field(default_factory=PolicySettings)
    action_frame_id: str = setting('base_link', 'header.frame_id of action_chunk')
    control_period: float = setting(CONTROL_PERIOD, 'seconds between the points of a chunk '
                                    '(time_from_start)')
    lead_time: float = setting(CONTROL_PERIOD, 'header.stamp = now + this: when the first '
                               'action is due. One control period: the executor runs it at its '
                               'next tick instead of skipping it as late')

    def __post_init__(self):
        """Reject a non-positive control period or a negative lead time."""
        from cliprt_core.config import ConfigError

        if not self.control_period > 0 or not self.lead_time >= 0:
            raise ConfigError(f'control_period must be > 0 and lead_time >= 0, got '
                              f'{self.control_period} and {self.lead_time}')


#: PolicySettings the teleop node does not take: it only encodes text, in torch.
TELEOP_EXCLUDED = ('backend',)


@dataclass(frozen=True)
class RecorderNodeConfig:
    """Parameters of ``recorder_node``: the episodes to record and the camera QoS."""

    recorder: RecorderConfig = field(default_factory=RecorderConfig)
    image_qos: ImageQos = setting('reliable', 'QoS of the image topics: reliable (simulator) | '
                                  'sensor_data (cameras)')
