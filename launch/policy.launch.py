"""
The CLIP-RT policy node alone, for a real robot.

  ros2 launch cliprt_ros policy.launch.py checkpoint:=PATH image_topic:=/wrist_cam/color/image_raw
  ros2 topic pub -t 3 /instruction std_msgs/msg/String "{data: 'pick up the red cup'}"

The node subscribes ``instruction`` and ``camera/image_raw`` (remapped to ``image_topic``) and
publishes ``action_chunk`` (remapped to ``action_topic``); ``~/enable`` (std_srvs/SetBool) stops
and resumes it. Parameters come from ``config/nodes/policy_node.yaml`` (``params_file:=``); a
launch argument overrides the file only when it is given. The launch fails (non-zero exit) when
the node cannot start.
"""

from cliprt_ros.launch_support import (argument_descriptions, exit_failure, POLICY_ARGUMENTS,
                                       policy_overrides)
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'cliprt_ros'
PARAMS_FILE = ('config', 'nodes', 'policy_node.yaml')
TOPICS = {
    'image_topic': ('camera/image_raw', 'camera topic to answer (remaps camera/image_raw)'),
    'instruction_topic': ('instruction', 'instruction topic (remaps instruction)'),
    'action_topic': ('action_chunk', 'action topic (remaps action_chunk)'),
}


def _fail_on_error(event, context):
    """Fail the launch (non-zero exit) when the node exits with an error."""
    failure = exit_failure('policy_node', event.returncode)
    if failure is not None:
        raise RuntimeError(failure)


def _nodes(context):
    given = context.launch_configurations
    policy = Node(
        package=PACKAGE, executable='policy_node', name='policy_node',
        namespace=given.get('namespace', ''), output='screen', emulate_tty=True,
        remappings=[(default, given[name]) for name, (default, _) in TOPICS.items()],
        parameters=[given['params_file'], policy_overrides(given)])
    return [policy,
            RegisterEventHandler(OnProcessExit(target_action=policy, on_exit=_fail_on_error))]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), *PARAMS_FILE]),
            description='parameter YAML of the policy node'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace of the '
                              'node'),
        *[DeclareLaunchArgument(name, default_value=default, description=description)
          for name, (default, description) in TOPICS.items()],
        *[DeclareLaunchArgument(name, default_value='', description=description)
          for name, description in argument_descriptions(POLICY_ARGUMENTS)],
        OpaqueFunction(function=_nodes),
    ])
