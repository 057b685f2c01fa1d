"""
LIBERO evaluation through ROS 2: ``policy_node`` + ``libero_bridge_node`` over the robot topics.

  ros2 launch cliprt_ros libero_eval.launch.py checkpoint:=PATH suite:=libero_spatial
  ros2 launch cliprt_ros libero_eval.launch.py tasks:=0 episodes:=1 max_steps:=48   # a smoke run

Parameters come from ``config/nodes/libero_eval.yaml`` (``params_file:=`` for another file);
the launch arguments below override them. The launch ends when the bridge has written the
results (``<results_dir>/episodes.jsonl``, ``summary.json``, ``results.md``, ``success.png``).
Without ``ros2 launch`` (pip-only machines): ``python -m cliprt_ros.run_eval`` runs the same two
nodes in one process.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'cliprt_ros'

# name -> (default, description); every argument is declared and used below.
ARGUMENTS = {
    'suite': ('libero_spatial', 'libero_spatial | libero_object | libero_goal | libero_10 | '
                                'libero_90, a comma list, or all'),
    'tasks': ('all', "task ids: 'all', '0-9' or '0,3,5'"),
    'episodes': ('50', 'episodes (fixed initial states) per task, <= 50'),
    'max_steps': ('0', 'cap on the horizon (smoke runs); 0 = the protocol horizon'),
    'checkpoint': ('', 'checkpoint path or hub id; empty = random weights of model_config'),
    'model_config': ('', 'architecture of random weights (empty: cliprt-tiny) or of an '
                         'official checkpoint (empty: ViT-H-14-378)'),
    'backend': ('torch', 'inference backend: torch | compile | onnx | tensorrt'),
    'device': ('', 'policy device (cpu, cuda, cuda:1); empty = cuda if available'),
    'dtype': ('auto', 'policy dtype: auto (bf16 on GPU, fp32 on CPU) | fp32 | fp16 | bf16; '
                      'backend onnx needs fp32 or fp16'),
    'results_dir': ('', 'results folder (reused = resumed); empty = eval_results/<policy>'),
    'video': ('false', 'write an MP4 per episode'),
    'namespace': ('', 'namespace of both nodes'),
}


def generate_launch_description():
    arg = LaunchConfiguration
    params_file = LaunchConfiguration('params_file')
    policy = Node(
        package=PACKAGE, executable='policy_node', name='policy_node',
        namespace=arg('namespace'), output='screen', emulate_tty=True,
        parameters=[params_file, {
            'checkpoint': ParameterValue(arg('checkpoint'), value_type=str),
            'model_config': ParameterValue(arg('model_config'), value_type=str),
            'backend': ParameterValue(arg('backend'), value_type=str),
            'device': ParameterValue(arg('device'), value_type=str),
            'dtype': ParameterValue(arg('dtype'), value_type=str),
        }])
    bridge = Node(
        package=PACKAGE, executable='libero_bridge_node', name='libero_bridge_node',
        namespace=arg('namespace'), output='screen', emulate_tty=True,
        parameters=[params_file, {
            'suite': ParameterValue(arg('suite'), value_type=str),
            'tasks': ParameterValue(arg('tasks'), value_type=str),
            'episodes': ParameterValue(arg('episodes'), value_type=int),
            'max_steps': ParameterValue(arg('max_steps'), value_type=int),
            'checkpoint': ParameterValue(arg('checkpoint'), value_type=str),
            'model_config': ParameterValue(arg('model_config'), value_type=str),
            'results_dir': ParameterValue(arg('results_dir'), value_type=str),
            'video': ParameterValue(arg('video'), value_type=bool),
        }])
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution(
                [FindPackageShare(PACKAGE), 'config', 'nodes', 'libero_eval.yaml']),
            description='parameter YAML of both nodes'),
        *[DeclareLaunchArgument(name, default_value=default, description=description)
          for name, (default, description) in ARGUMENTS.items()],
        policy,
        bridge,
        # The evaluation is over when the bridge exits: stop the policy node too.
        RegisterEventHandler(OnProcessExit(
            target_action=bridge,
            on_exit=[EmitEvent(event=Shutdown(reason='LIBERO evaluation finished'))])),
    ])
