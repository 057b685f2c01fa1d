"""
What the launch files compute, as plain functions (tested without ``launch``).

Launch arguments are derived from the node settings (:mod:`cliprt_ros.settings`): each one has
the setting's help text and the default ``''`` = "not given". Only arguments the user gives
override the ``params_file``; each is parsed and type-checked by the config system, so a bad
value fails the launch with the argument's name instead of reaching the node.
"""

import os

from cliprt_core.config import ConfigError, leaves, read_yaml
from cliprt_core.executor import ExecutorConfig
from cliprt_ros.parameters import to_parameter
from cliprt_ros.settings import (BRIDGE_EXCLUDED, BridgeConfig, PolicyNodeConfig,
                                 RecorderNodeConfig, TELEOP_EXCLUDED, TeleopNodeConfig)

NOT_GIVEN = ''
#: Node settings exposed as launch arguments, per launch file.
POLICY_ARGUMENTS = ('checkpoint', 'model_config', 'backend', 'device', 'dtype')
EVAL_ARGUMENTS = ('suite', 'tasks', 'episodes', 'first_episode', 'max_steps', 'results_dir',
                  'video', 'wrist_camera', 'mode', 'real_time_factor', 'publish_clock')
EXECUTOR_ARGUMENTS = ('aggregation', 'request_threshold')
#: Extra arguments of libero_eval.launch.py for real-time studies (policy_node settings).
LATENCY_ARGUMENTS = ('added_latency',)
#: teleop.launch.py: the bridge's task, the teleop mapping and the recording.
TELEOP_BRIDGE_ARGUMENTS = ('suite', 'tasks', 'first_episode', 'max_steps', 'wrist_camera')
TELEOP_ARGUMENTS = ('vocabulary', 'checkpoint', 'model_config', 'min_similarity', 'translator')
RECORDER_ARGUMENTS = ('output_dir', 'instruction', 'max_episode_steps')


def argument_descriptions(names):
    """``[(name, description)]`` of launch arguments for the settings ``names``."""
    found = {**leaves(RecorderNodeConfig), **leaves(TeleopNodeConfig, TELEOP_EXCLUDED),
             **leaves(BridgeConfig, BRIDGE_EXCLUDED), **leaves(PolicyNodeConfig),
             **leaves(ExecutorConfig)}
    return [(name, f'{found[name].description} [default: from params_file]') for name in names]


def executor_overrides(configurations):
    """Parameters of ``action_executor`` for the given launch arguments."""
    return _overrides(configurations, ExecutorConfig, EXECUTOR_ARGUMENTS)


def realtime_setup(configurations, params_file):
    """
    ``(realtime, use_sim_time)`` of an evaluation launch: from the arguments, else the file.

    A real-time evaluation adds the ``action_executor`` and makes the policy answer its chunk
    requests; with ``publish_clock`` both follow the bridge's simulated ``/clock``.
    """
    section = bridge_file_parameters(params_file)
    bridge = {**section, **bridge_overrides(configurations)}
    return bridge.get('mode') == 'realtime', bool(bridge.get('publish_clock', False))


def bridge_file_parameters(params_file):
    """Return the ``libero_bridge_node`` section of a params file ({} when there is none)."""
    if not os.path.isfile(params_file):
        return {}
    data = read_yaml(params_file) or {}
    for key, value in data.items():
        if key.split('/')[-1] == 'libero_bridge_node' and isinstance(value, dict):
            return value.get('ros__parameters', {})
    return {}


def policy_overrides(configurations):
    """Parameters of ``policy_node`` for the given launch arguments (a name -> text mapping)."""
    return _overrides(configurations, PolicyNodeConfig, POLICY_ARGUMENTS + LATENCY_ARGUMENTS)


def bridge_overrides(configurations):
    """
    Parameters of ``libero_bridge_node`` for the given launch arguments.

    The evaluation arguments plus the policy's checkpoint and model_config (recorded in the
    results).
    """
    names = EVAL_ARGUMENTS + ('checkpoint', 'model_config')
    return _overrides(configurations, BridgeConfig, names, BRIDGE_EXCLUDED)


def teleop_overrides(configurations):
    """Parameters of ``teleop_node`` for the given launch arguments."""
    return _overrides(configurations, TeleopNodeConfig, TELEOP_ARGUMENTS, TELEOP_EXCLUDED)


def teleop_bridge_overrides(configurations):
    """Parameters of the bridge in ``teleop.launch.py`` (its task and episodes)."""
    return _overrides(configurations, BridgeConfig, TELEOP_BRIDGE_ARGUMENTS, BRIDGE_EXCLUDED)


def recorder_overrides(configurations):
    """
    Parameters of ``recorder_node``: its own arguments plus the bridge's task.

    ``suite``, a single task of ``tasks`` and ``first_episode`` are recorded as the episodes'
    LIBERO task and init state (what ``cliprt-data diversify`` replays them from).
    """
    overrides = _overrides(configurations, RecorderNodeConfig, RECORDER_ARGUMENTS)
    task = _overrides(configurations, BridgeConfig, ('suite', 'tasks', 'first_episode'),
                      BRIDGE_EXCLUDED)
    if 'suite' in task:
        overrides['suite'] = task['suite']
    if str(task.get('tasks', '')).isdigit():
        overrides['task_id'] = int(task['tasks'])
    if 'first_episode' in task:
        overrides['init_state'] = task['first_episode']
    return overrides


def env_namespaces(num_envs):
    """Return the namespaces of N simulators (relative to the run's): env0 .. env<N-1>."""
    return [f'env{index}' for index in range(num_envs)]


#: Fast DDS reads its default XML profile from this variable (rmw_fastrtps_cpp, the default).
DDS_PROFILE_VARIABLE = 'FASTRTPS_DEFAULT_PROFILES_FILE'


def large_image_dds_env(num_envs, environ=None):
    """
    Return the environment N simulators and their policy node need: ``{}`` for one simulator.

    N simultaneous images overflow Fast DDS's default 512 KB shared-memory segment and stall
    for a heartbeat period (3 s); ``config/dds/fastdds_large_images.xml`` avoids that. A profile
    the user already set is kept.
    """
    environ = os.environ if environ is None else environ
    if num_envs <= 1 or DDS_PROFILE_VARIABLE in environ:
        return {}
    from cliprt_core.paths import config_dir

    return {DDS_PROFILE_VARIABLE: str(config_dir() / 'dds' / 'fastdds_large_images.xml')}


def num_envs_of(configurations):
    """Return the ``num_envs`` launch argument (1 when not given); ConfigError if invalid."""
    text = configurations.get('num_envs', NOT_GIVEN)
    if text == NOT_GIVEN:
        return 1
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise ConfigError(f'launch argument num_envs:={text!r}: must be an integer >= 1')
    return count


def exit_failure(name, returncode):
    """Why the launch must fail after node ``name`` exited with ``returncode`` (None if fine)."""
    if returncode in (0, None):
        return None
    return f'{name} exited with code {returncode}; see its log above'


def _overrides(configurations, cls, names, exclude=()):
    found = leaves(cls, exclude)
    overrides = {}
    for name in names:
        text = configurations.get(name, NOT_GIVEN)
        if text == NOT_GIVEN:
            continue
        try:
            overrides[name] = to_parameter(found[name], found[name].parse(text))
        except ConfigError as exc:
            raise ConfigError(f'launch argument {name}:={text!r}: {exc}') from None
    return overrides
