r"""
CLIP-RT on a real arm: camera -> ``policy_node`` -> ``action_executor`` -> MoveIt Servo.

  ros2 launch cliprt_ros robot.launch.py checkpoint:=PATH \
      image_topic:=/camera/color/image_raw twist_topic:=/servo_node/delta_twist_cmds
  ros2 topic pub --once --qos-durability transient_local --qos-reliability reliable \
      /instruction std_msgs/msg/String "{data: 'put the cup on the plate'}"
  ros2 topic pub --once /estop std_msgs/msg/Bool "{data: true}"      # stop at once

The executor asks the policy for a chunk when ``request_threshold`` actions remain (the policy
answers its newest camera image), executes one action per control period as a
``geometry_msgs/TwistStamped`` for MoveIt Servo (``twist_topic``), the gripper command on
``gripper_topic`` and the raw 7-D action on ``action``. Parameters come from
``config/nodes/robot.yaml`` (``params_file:=``); a launch argument overrides the file only when
given. MoveIt Servo itself (and the arm's driver) are started by the robot's own launch files;
see the README's wiring notes. The launch fails (non-zero exit) when a node cannot start.
"""

from cliprt_ros.launch_support import (argument_descriptions, EXECUTOR_ARGUMENTS,
                                       executor_overrides, exit_failure, POLICY_ARGUMENTS,
                                       policy_overrides)
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'cliprt_ros'
PARAMS_FILE = ('config', 'nodes', 'robot.yaml')
#: launch argument -> (the node's topic it remaps, description), per node.
TOPICS = {
    'policy_node': {
        'image_topic': ('camera/image_raw', 'camera topic (remaps camera/image_raw)'),
        'instruction_topic': ('instruction', 'instruction topic (remaps instruction)'),
    },
    'action_executor': {
        'twist_topic': ('servo_node/delta_twist_cmds', 'MoveIt Servo twist command topic '
                        '(remaps servo_node/delta_twist_cmds)'),
        'gripper_topic': ('gripper_command', 'gripper command topic (std_msgs/Float64, -1 '
                          'open .. +1 close)'),
        'estop_topic': ('estop', 'e-stop topic (std_msgs/Bool)'),
    },
}


def _fail_on_error(event, context):
    """Fail the launch (non-zero exit) when a node exits with an error."""
    failure = exit_failure('a cliprt node', event.returncode)
    if failure is not None:
        raise RuntimeError(failure)


def _nodes(context):
    given = context.launch_configurations
    overrides = {'policy_node': policy_overrides(given),
                 'action_executor': executor_overrides(given)}
    nodes = [Node(package=PACKAGE, executable=name, name=name,
                  namespace=given.get('namespace', ''), output='screen', emulate_tty=True,
                  remappings=[(topic, given[arg]) for arg, (topic, _) in TOPICS[name].items()],
                  parameters=[given['params_file'], overrides[name]])
             for name in TOPICS]
    return nodes + [RegisterEventHandler(OnProcessExit(target_action=node,
                                                       on_exit=_fail_on_error))
                    for node in nodes]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), *PARAMS_FILE]),
            description='parameter YAML of the policy node and the executor'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace of both '
                              'nodes'),
        *[DeclareLaunchArgument(arg, default_value=topic, description=description)
          for topics in TOPICS.values() for arg, (topic, description) in topics.items()],
        *[DeclareLaunchArgument(name, default_value='', description=description)
          for name, description in argument_descriptions(POLICY_ARGUMENTS + EXECUTOR_ARGUMENTS)],
        OpaqueFunction(function=_nodes),
    ])
