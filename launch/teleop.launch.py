"""
Language-supervised teleoperation and recording: robot + ``teleop_node`` + ``recorder_node``.

  ros2 launch cliprt_ros teleop.launch.py suite:=libero_goal tasks:=8 output_dir:=data/teleop
  ros2 topic pub --once /motion_command std_msgs/msg/String "{data: 'move the arm 10 cm left'}"
  ros2 service call /recorder_node/start std_srvs/srv/Trigger    # ... /stop saves, /discard

``robot:=libero`` (default) runs the LIBERO bridge in real-time mode as the robot plus the action
executor; ``robot:=real`` runs only the executor, teleop and recorder: bring your camera and arm
driver (camera/image_raw, joint_states, ee_pose; the executor's action / twist outputs).
Parameters come from ``config/nodes/teleop.yaml`` (``params_file:=``); a launch argument
overrides the file only when given. The bridge's task (suite, tasks, first_episode) is also
recorded with the episodes. The launch fails when a node exits with an error.
"""

from cliprt_ros.launch_support import (argument_descriptions, exit_failure, realtime_setup,
                                       RECORDER_ARGUMENTS, recorder_overrides,
                                       TELEOP_ARGUMENTS, TELEOP_BRIDGE_ARGUMENTS,
                                       teleop_bridge_overrides, teleop_overrides)
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'cliprt_ros'
PARAMS_FILE = ('config', 'nodes', 'teleop.yaml')
EXECUTOR = 'action_executor'


def _fail_on_error(name):
    def handler(event, context):
        failure = exit_failure(name, event.returncode)
        if failure is not None:
            raise RuntimeError(failure)
    return handler


def _nodes(context):
    given = context.launch_configurations
    params_file = given['params_file']
    namespace = given.get('namespace', '')
    robot = given.get('robot', 'libero')
    if robot not in ('libero', 'real'):
        raise RuntimeError(f"launch argument robot:={robot!r}: expected 'libero' or 'real'")

    def node(executable, overrides):
        return executable, Node(package=PACKAGE, executable=executable, name=executable,
                                namespace=namespace, output='screen', emulate_tty=True,
                                parameters=[params_file, overrides])

    # With the bridge's simulated /clock, every other node runs on it.
    sim_time = {'use_sim_time': robot == 'libero' and realtime_setup(given, params_file)[1]}
    nodes = [node(EXECUTOR, sim_time),
             node('teleop_node', {**teleop_overrides(given), **sim_time}),
             node('recorder_node', {**recorder_overrides(given), **sim_time})]
    if robot == 'libero':
        nodes.insert(0, node('libero_bridge_node', teleop_bridge_overrides(given)))
    return [n for _, n in nodes] + [
        RegisterEventHandler(OnProcessExit(target_action=n, on_exit=_fail_on_error(name)))
        for name, n in nodes]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), *PARAMS_FILE]),
            description='parameter YAML of the nodes'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace of the '
                              'nodes'),
        DeclareLaunchArgument('robot', default_value='libero', description='libero (the '
                              'simulator bridge in real time) | real (bring camera and arm)'),
        *[DeclareLaunchArgument(name, default_value='', description=description)
          for name, description in argument_descriptions(
              TELEOP_BRIDGE_ARGUMENTS + TELEOP_ARGUMENTS + RECORDER_ARGUMENTS)],
        OpaqueFunction(function=_nodes),
    ])
