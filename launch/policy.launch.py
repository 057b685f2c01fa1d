"""
The CLIP-RT policy node alone, for a real robot.

  ros2 launch cliprt_ros policy.launch.py checkpoint:=PATH image_topic:=/wrist_cam/color/image_raw
  ros2 topic pub --once /instruction std_msgs/msg/String "{data: 'pick up the red cup'}"

The node subscribes ``instruction`` and ``camera/image_raw`` (remapped to ``image_topic``) and
publishes ``action_chunk`` (remapped to ``action_topic``); ``~/enable`` (std_srvs/SetBool) stops
and resumes it. Parameters come from ``config/nodes/policy_node.yaml`` (``params_file:=``).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'cliprt_ros'

# name -> (default, description); every argument is declared and used below.
ARGUMENTS = {
    'checkpoint': ('', 'checkpoint path or hub id; empty = random weights of model_config'),
    'model_config': ('', 'architecture of random weights (empty: cliprt-tiny) or of an '
                         'official checkpoint (empty: ViT-H-14-378)'),
    'backend': ('torch', 'inference backend: torch | compile | onnx | tensorrt'),
    'device': ('', 'policy device (cpu, cuda, cuda:1); empty = cuda if available'),
    'dtype': ('auto', 'policy dtype: auto (bf16 on GPU, fp32 on CPU) | fp32 | fp16 | bf16; '
                      'backend onnx needs fp32 or fp16'),
    'image_topic': ('camera/image_raw', 'camera topic to answer (remaps camera/image_raw)'),
    'instruction_topic': ('instruction', 'instruction topic (remaps instruction)'),
    'action_topic': ('action_chunk', 'action topic (remaps action_chunk)'),
    'namespace': ('', 'namespace of the node'),
}


def generate_launch_description():
    arg = LaunchConfiguration
    policy = Node(
        package=PACKAGE, executable='policy_node', name='policy_node',
        namespace=arg('namespace'), output='screen', emulate_tty=True,
        remappings=[('camera/image_raw', arg('image_topic')),
                    ('instruction', arg('instruction_topic')),
                    ('action_chunk', arg('action_topic'))],
        parameters=[LaunchConfiguration('params_file'), {
            'checkpoint': ParameterValue(arg('checkpoint'), value_type=str),
            'model_config': ParameterValue(arg('model_config'), value_type=str),
            'backend': ParameterValue(arg('backend'), value_type=str),
            'device': ParameterValue(arg('device'), value_type=str),
            'dtype': ParameterValue(arg('dtype'), value_type=str),
        }])
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution(
                [FindPackageShare(PACKAGE), 'config', 'nodes', 'policy_node.yaml']),
            description='parameter YAML of the policy node'),
        *[DeclareLaunchArgument(name, default_value=default, description=description)
          for name, (default, description) in ARGUMENTS.items()],
        policy,
    ])
