"""
ROS 2 teleop node: language motion commands in, motion-primitive action chunks out.

Topics (relative names):

* ``motion_command`` (``std_msgs/String``, reliable) - subscribed: free-form language ("move
  the arm 10 cm to the left", "close the gripper").
* ``gripper_command`` (``std_msgs/Float64``) - subscribed: the executor's gripper command, so
  movement steps keep the gripper as it is.
* ``action_chunk`` (``trajectory_msgs/JointTrajectory``, reliable) - published for an accepted
  command: the primitive's LIBERO actions, ``header.stamp`` = now + ``lead_time`` (when its
  first action is due: the executor's next tick), ``header.frame_id`` = ``action_frame_id``.
* ``primitive`` (``std_msgs/String``, reliable) - the accepted primitive's phrase, published
  just before its chunk (the recorder labels the executed steps with it).
* ``motion_feedback`` (``std_msgs/String``, reliable) - one line per command: what is executed,
  or why nothing is (ambiguous / unknown, with the top candidates).

The mapping is :class:`cliprt_core.teleop.TeleopSession`; parameters are the settings of
:class:`cliprt_ros.settings.TeleopNodeConfig`. No message content stops the node.
"""

import sys

from cliprt_core.teleop import build_mapper, TeleopSession
from cliprt_ros import conversions
from cliprt_ros.parameters import declare_config, read_config
from cliprt_ros.qos import reliable_qos
from cliprt_ros.settings import TELEOP_EXCLUDED, TeleopNodeConfig
from cliprt_ros.spin import run_node
from rclpy.duration import Duration
from rclpy.node import Node
from std_msgs.msg import Float64, String
from trajectory_msgs.msg import JointTrajectory

NODE_NAME = 'teleop_node'


class TeleopNode(Node):
    """Map each motion command to a primitive and publish it as an action chunk."""

    def __init__(self, policy=None, **node_kwargs):
        """Declare parameters, load the text encoder (unless ``policy`` is given), create I/O."""
        super().__init__(NODE_NAME, **node_kwargs)
        declare_config(self, TeleopNodeConfig, exclude=TELEOP_EXCLUDED)
        self.config = config = read_config(self, TeleopNodeConfig, exclude=TELEOP_EXCLUDED,
                                           fixed={'policy': {'backend': 'torch'}})
        if policy is None and config.teleop.text_similarity:
            from cliprt_core.inference.factory import describe_weights, load_policy

            policy = load_policy(config.policy)
            self.get_logger().info(f'text encoder: {describe_weights(policy, config.policy)}')
        mapper = build_mapper(config.teleop, policy)
        self.session = TeleopSession(mapper, config.teleop)
        self.decisions = []
        self.chunk_pub = self.create_publisher(JointTrajectory, 'action_chunk', reliable_qos(10))
        self.primitive_pub = self.create_publisher(String, 'primitive', reliable_qos(10))
        self.feedback_pub = self.create_publisher(String, 'motion_feedback', reliable_qos(10))
        self.create_subscription(String, 'motion_command', self._on_command, reliable_qos(10))
        self.create_subscription(Float64, 'gripper_command', self._on_gripper, reliable_qos(10))
        self.get_logger().info(
            f"ready: vocabulary '{mapper.vocabulary.name}' ({len(mapper.vocabulary)} "
            f"primitives), text similarity {'on' if mapper.similarity else 'off'}"
            f"{', translator ' + config.teleop.translator if mapper.translator else ''}")

    def _on_gripper(self, msg):
        self.session.observe_gripper(float(msg.data))

    def _on_command(self, msg):
        decision, actions = self.session.handle(msg.data)
        self.decisions.append(decision)
        feedback = decision.feedback()
        if actions is None:
            self.get_logger().warning(feedback)
        else:
            self.primitive_pub.publish(String(data=decision.phrase))
            due = self.get_clock().now() + Duration(seconds=self.config.lead_time)
            stamp = due.to_msg()
            self.chunk_pub.publish(conversions.chunk_to_trajectory(
                actions, stamp, self.config.action_frame_id, self.config.control_period))
            self.get_logger().info(f'{feedback}: {len(actions)} steps')
        self.feedback_pub.publish(String(data=feedback))


def main(args=None):
    """Entry point of ``ros2 run cliprt_ros teleop_node``."""
    return run_node(TeleopNode, NODE_NAME, args=args)


if __name__ == '__main__':
    sys.exit(main())
