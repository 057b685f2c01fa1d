r"""
LIBERO evaluation through ROS 2: ``policy_node`` + ``libero_bridge_node`` over the robot topics.

  ros2 launch cliprt_ros libero_eval.launch.py checkpoint:=PATH suite:=libero_spatial
  ros2 launch cliprt_ros libero_eval.launch.py tasks:=0 episodes:=1 max_steps:=48   # a smoke run
  ros2 launch cliprt_ros libero_eval.launch.py params_file:=my_eval.yaml   # all from a file
  ros2 launch cliprt_ros libero_eval.launch.py checkpoint:=PATH mode:=realtime \
      real_time_factor:=0.25 publish_clock:=true aggregation:=ensemble added_latency:=0.2
  ros2 launch cliprt_ros libero_eval.launch.py checkpoint:=PATH num_envs:=4   # 4 simulators

Parameters come from ``config/nodes/libero_eval.yaml`` (``params_file:=`` for another file); a
launch argument overrides the file only when it is given (every argument defaults to "not
given"). The launch ends when the bridge has written the results (the success table is printed);
it fails (non-zero exit) when either node exits with an error, e.g. a checkpoint that does not
load. Without ``ros2 launch`` (pip-only machines): ``python -m cliprt_ros.run_eval``.

``mode:=realtime`` runs the episodes as on a robot: the ``action_executor`` joins, the policy
answers its chunk requests (``query_mode: on_request``) and the simulator steps on the clock
(with ``publish_clock:=true`` the simulated ``/clock``, followed by the policy node and the
executor through ``use_sim_time``).

``num_envs:=N`` (lockstep) runs N bridge processes in the namespaces ``env0`` .. ``env<N-1>``,
each a disjoint shard of the episodes (``shard: i/N``), and one policy node serving all of them
(``robots: env0,...``, one batched forward for their pending images); all write one results
folder (locked appends). The launch ends when every bridge has exited. Those nodes get the Fast
DDS profile ``config/dds/fastdds_large_images.xml`` (N simultaneous images would overflow Fast
DDS's default shared-memory segment) unless ``FASTRTPS_DEFAULT_PROFILES_FILE`` is set.
"""

from cliprt_core.config import ConfigError
from cliprt_ros.launch_support import (argument_descriptions, bridge_overrides, env_namespaces,
                                       EVAL_ARGUMENTS, EXECUTOR_ARGUMENTS, executor_overrides,
                                       exit_failure, large_image_dds_env, LATENCY_ARGUMENTS,
                                       num_envs_of, POLICY_ARGUMENTS, policy_overrides,
                                       realtime_setup)
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, OpaqueFunction,
                            RegisterEventHandler)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'cliprt_ros'
PARAMS_FILE = ('config', 'nodes', 'libero_eval.yaml')


def _stop_on_exit(name):
    """Return a handler that stops the launch when ``name`` exits (fails it on an error)."""
    def handler(event, context):
        failure = exit_failure(name, event.returncode)
        if failure is not None:
            raise RuntimeError(failure)  # launch shuts down and exits non-zero
        return [EmitEvent(event=Shutdown(reason=f'{name} finished'))]
    return handler


def _stop_when_all_exit(name, count):
    """Return a handler that stops the launch once ``count`` nodes ``name`` have exited."""
    exited = []

    def handler(event, context):
        failure = exit_failure(name, event.returncode)
        if failure is not None:
            raise RuntimeError(failure)
        exited.append(event)
        if len(exited) < count:
            return []
        return [EmitEvent(event=Shutdown(reason=f'all {count} {name} finished'))]
    return handler


def _node(executable, namespace, parameters, env=None):
    return Node(package=PACKAGE, executable=executable, name=executable, namespace=namespace,
                output='screen', emulate_tty=True, parameters=parameters, additional_env=env)


def _nodes(context):
    given = context.launch_configurations
    params_file = given['params_file']
    namespace = given.get('namespace', '')
    realtime, use_sim_time = realtime_setup(given, params_file)
    policy_params = policy_overrides(given)
    nodes = []
    if realtime:
        policy_params.update(query_mode='on_request', use_sim_time=use_sim_time)
        nodes.append(_node('action_executor', namespace, [
            params_file, {**executor_overrides(given), 'use_sim_time': use_sim_time}]))
    num_envs = num_envs_of(given)
    if realtime and num_envs > 1:
        raise ConfigError('num_envs > 1 needs mode:=lockstep')
    bridge_params = bridge_overrides(given)
    dds_env = large_image_dds_env(num_envs) or None
    if num_envs == 1:
        bridges = [_node('libero_bridge_node', namespace, [params_file, bridge_params])]
    else:
        policy_params['robots'] = ','.join(env_namespaces(num_envs))
        bridges = [_node('libero_bridge_node', f'{namespace.rstrip("/")}/{env}' if namespace
                         else env, [params_file, {**bridge_params, 'shard': f'{i}/{num_envs}'}],
                         dds_env)
                   for i, env in enumerate(env_namespaces(num_envs))]
    nodes.append(_node('policy_node', namespace, [params_file, policy_params], dds_env))
    done = _stop_when_all_exit('libero_bridge_node', num_envs)
    return nodes + bridges + [
        RegisterEventHandler(OnProcessExit(target_action=node,
                                           on_exit=_stop_on_exit(node.kwargs['executable'])))
        for node in nodes] + [
        RegisterEventHandler(OnProcessExit(target_action=bridge, on_exit=done))
        for bridge in bridges]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), *PARAMS_FILE]),
            description='parameter YAML of both nodes'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace of both '
                              'nodes'),
        DeclareLaunchArgument('num_envs', default_value='', description='simulators in '
                              'parallel (lockstep): N bridges env0.., one policy node'),
        *[DeclareLaunchArgument(name, default_value='', description=description)
          for name, description in argument_descriptions(
              EVAL_ARGUMENTS + POLICY_ARGUMENTS + EXECUTOR_ARGUMENTS + LATENCY_ARGUMENTS)],
        OpaqueFunction(function=_nodes),
    ])
