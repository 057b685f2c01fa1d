"""
ROS 2 recorder node: teleoperated (or any executed) episodes as LIBERO-layout HDF5 files.

Subscribes (relative names): ``camera/image_raw`` and ``wrist/image_raw`` (``sensor_msgs/
Image``, QoS ``image_qos``), ``joint_states`` (``sensor_msgs/JointState``: 7 arm joints, then
the 2 finger joints), ``ee_pose`` (``geometry_msgs/PoseStamped``), ``action`` (``std_msgs/
Float64MultiArray``: each executed 7-D action), ``instruction`` (``std_msgs/String``, volatile
and latched) and ``primitive`` (``std_msgs/String``: the phrase of each new command).

Services: ``~/start``, ``~/stop`` (saves the episode) and ``~/discard`` (``std_srvs/Trigger``).
While recording, every executed action becomes one step with the latest observation and the
current phrase (:class:`cliprt_core.teleop.recorder.EpisodeRecorder`); ``stop`` writes it
crash-safely into ``output_dir/{instruction}_demo.hdf5``
(:class:`cliprt_core.data.episode_store.EpisodeStore`). A kill loses at most the episode in
progress; so does a shutdown while recording (logged).
"""

import sys

from cliprt_core.atomic import DiskFullError
from cliprt_core.data.libero_hdf5 import DataError
from cliprt_core.teleop.recorder import EpisodeRecorder
from cliprt_ros import conversions
from cliprt_ros.parameters import declare_config, read_config
from cliprt_ros.qos import latched_qos, qos_by_name, reliable_qos, silent_qos_events
from cliprt_ros.settings import RecorderNodeConfig
from cliprt_ros.spin import run_node
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger

NODE_NAME = 'recorder_node'


class RecorderNode(Node):
    """Record steps between ``~/start`` and ``~/stop``; see the module docstring."""

    def __init__(self, **node_kwargs):
        """Declare parameters, open the output folder (recovering saved parts), create I/O."""
        super().__init__(NODE_NAME, **node_kwargs)
        declare_config(self, RecorderNodeConfig)
        self.config = config = read_config(self, RecorderNodeConfig)
        self.recorder = EpisodeRecorder(config.recorder)
        image_qos = qos_by_name(config.image_qos, 1)
        self.create_subscription(Image, 'camera/image_raw',
                                 lambda m: self._on_image('camera', m), image_qos)
        if config.recorder.wrist:
            self.create_subscription(Image, 'wrist/image_raw',
                                     lambda m: self._on_image('wrist', m), image_qos)
        self.create_subscription(JointState, 'joint_states', self._on_joints, reliable_qos(10))
        self.create_subscription(PoseStamped, 'ee_pose', self._on_pose, reliable_qos(10))
        self.create_subscription(Float64MultiArray, 'action', self._on_action, reliable_qos(50))
        self.create_subscription(String, 'primitive', self._on_primitive, reliable_qos(10))
        self.create_subscription(String, 'instruction', self._on_instruction, reliable_qos(10))
        self.create_subscription(String, 'instruction', self._on_instruction, latched_qos(),
                                 event_callbacks=silent_qos_events())
        self.create_service(Trigger, '~/start', self._service(self.recorder.start))
        self.create_service(Trigger, '~/stop', self._service(self._stop))
        self.create_service(Trigger, '~/discard', self._service(self.recorder.discard))
        recovered = self.recorder.store.recovered
        self.get_logger().info(
            f'ready: recording into {self.recorder.store.folder}'
            f'{f" ({recovered} episode(s) saved before a crash assembled)" if recovered else ""}'
            f'; call {self.resolve_service_name("~/start")} to start an episode')

    # --- inputs ----------------------------------------------------------------------------------
    def _on_image(self, part, msg):
        try:
            self.recorder.observe(part, conversions.image_to_rgb(msg))
        except conversions.ConversionError as exc:
            self.get_logger().warning(f'{part} image ignored: {exc}',
                                      throttle_duration_sec=2.0)

    def _on_joints(self, msg):
        positions = [float(p) for p in msg.position]
        if len(positions) < 7:
            self.get_logger().warning(f'joint_states with {len(positions)} positions ignored '
                                      f'(7 arm joints + 2 fingers expected)',
                                      throttle_duration_sec=2.0)
            return
        self.recorder.observe('joints', (positions + [0.0, 0.0])[:9])

    def _on_pose(self, msg):
        p, q = msg.pose.position, msg.pose.orientation
        self.recorder.observe('pose', ((p.x, p.y, p.z), (q.x, q.y, q.z, q.w)))

    def _on_instruction(self, msg):
        self.recorder.set_instruction(msg.data)

    def _on_primitive(self, msg):
        self.recorder.set_primitive(msg.data)

    def _on_action(self, msg):
        reason = self.recorder.add_action(list(msg.data))
        if reason is not None:
            self.get_logger().warning(f'executed action not recorded: {reason}',
                                      throttle_duration_sec=2.0)
        elif self.recorder.full:
            ok, message = self._stop()
            self.get_logger().info(f'max_episode_steps reached: {message}')

    # --- services --------------------------------------------------------------------------------
    def _stop(self):
        try:
            return self.recorder.stop()
        except (DataError, DiskFullError, OSError) as exc:
            return False, f'could not save (still recording; retry ~/stop or ~/discard): {exc}'

    def _service(self, action):
        def handle(request, response):
            response.success, response.message = action()
            if response.success:
                self.get_logger().info(response.message)
            else:
                self.get_logger().warning(response.message)
            return response
        return handle

    def destroy_node(self):
        """Say what is lost when the node stops while recording."""
        if self.recorder.recording:
            self.get_logger().warning(f'shutting down while recording: the episode in progress '
                                      f'({self.recorder.steps} steps) is not saved')
        return super().destroy_node()


def main(args=None):
    """Entry point of ``ros2 run cliprt_ros recorder_node``."""
    return run_node(RecorderNode, NODE_NAME, args=args)


if __name__ == '__main__':
    sys.exit(main())
