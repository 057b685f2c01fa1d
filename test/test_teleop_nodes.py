"""teleop_node and recorder_node over real DDS on loopback (in-process nodes, no simulator)."""

import h5py
import numpy as np
import pytest
from ros_utils import DISCOVERY_S, rclpy_available, spin_for, spin_until, unique_namespace

pytestmark = pytest.mark.skipif(not rclpy_available(), reason='rclpy wheels not installed')

LEFT_10 = 'move the arm to the left by ten centimeters'


class Operator:
    """What a person's terminal does: publish commands and robot data, call the services."""

    def __init__(self, namespace):
        import rclpy
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import Float64MultiArray, String
        from std_srvs.srv import Trigger
        from trajectory_msgs.msg import JointTrajectory

        from cliprt_ros import qos

        self.node = rclpy.create_node('cliprt_test_operator', namespace=namespace)
        self.chunks, self.primitives, self.feedback = [], [], []
        self.command_pub = self.node.create_publisher(String, 'motion_command',
                                                      qos.reliable_qos(10))
        self.node.create_subscription(JointTrajectory, 'action_chunk', self.chunks.append,
                                      qos.reliable_qos(10))
        self.node.create_subscription(String, 'primitive', self.primitives.append,
                                      qos.reliable_qos(10))
        self.node.create_subscription(String, 'motion_feedback', self.feedback.append,
                                      qos.reliable_qos(10))
        self.pubs = {
            'camera': self.node.create_publisher(Image, 'camera/image_raw', qos.reliable_qos()),
            'wrist': self.node.create_publisher(Image, 'wrist/image_raw', qos.reliable_qos()),
            'joints': self.node.create_publisher(JointState, 'joint_states', qos.reliable_qos()),
            'pose': self.node.create_publisher(PoseStamped, 'ee_pose', qos.reliable_qos()),
            'action': self.node.create_publisher(Float64MultiArray, 'action', qos.reliable_qos()),
            'primitive': self.node.create_publisher(String, 'primitive', qos.reliable_qos()),
            'instruction': self.node.create_publisher(String, 'instruction', qos.latched_qos()),
        }
        self.services = {name: self.node.create_client(Trigger, f'recorder_node/{name}')
                         for name in ('start', 'stop', 'discard')}

    def command(self, text):
        from std_msgs.msg import String
        self.command_pub.publish(String(data=text))

    def publish_step(self, rng, action):
        """One simulator step as the bridge and the executor publish it."""
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray

        from cliprt_ros.conversions import rgb_to_image

        image = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
        self.pubs['camera'].publish(rgb_to_image(image))
        self.pubs['wrist'].publish(rgb_to_image(image[::-1]))
        self.pubs['joints'].publish(JointState(position=[float(v) for v in range(9)]))
        pose = PoseStamped()
        pose.pose.position.x, pose.pose.orientation.w = 0.5, 1.0
        self.pubs['pose'].publish(pose)
        self.pubs['action'].publish(Float64MultiArray(data=[float(v) for v in action]))

    def call(self, executor, name):
        from std_srvs.srv import Trigger
        client = self.services[name]
        assert spin_until(executor, client.service_is_ready, DISCOVERY_S)
        future = client.call_async(Trigger.Request())
        assert spin_until(executor, future.done, DISCOVERY_S)
        return future.result()


@pytest.fixture
def ros_setup(rclpy_context, tiny_discrete_policy):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    made = []

    def make(node_cls, **params):
        namespace = unique_namespace()
        kwargs = {'policy': tiny_discrete_policy} if node_cls.__name__ == 'TeleopNode' else {}
        node = node_cls(namespace=namespace, parameter_overrides=[
            Parameter(k, value=v) for k, v in params.items()], **kwargs)
        operator = Operator(namespace)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.add_node(operator.node)
        made.append((executor, node, operator))
        return executor, node, operator

    yield make
    for executor, node, operator in made:
        executor.shutdown()
        node.destroy_node()
        operator.node.destroy_node()


def test_teleop_node_executes_understood_commands_and_explains_refusals(ros_setup):
    from cliprt_ros.conversions import stamp_to_ns, trajectory_to_chunk
    from cliprt_ros.teleop_node import TeleopNode

    executor, node, op = ros_setup(TeleopNode, action_frame_id='tool0')
    assert spin_until(executor, lambda: op.command_pub.get_subscription_count() > 0,
                      DISCOVERY_S)
    before = node.get_clock().now().nanoseconds
    op.command('move the arm 10 cm to the left')
    assert spin_until(executor, lambda: op.chunks and op.feedback, DISCOVERY_S)
    chunk = op.chunks[0]
    np.testing.assert_allclose(trajectory_to_chunk(chunk), [[0, 1, 0, 0, 0, 0, -1]] * 2)
    assert chunk.header.frame_id == 'tool0'
    assert stamp_to_ns(chunk.header.stamp) >= before + 50_000_000  # due one period later
    assert [p.data for p in op.primitives] == [LEFT_10]
    assert 'executing' in op.feedback[0].data
    for refused in ('move left and up 5 cm', 'move 7 cm left', 'do a backflip'):
        op.command(refused)
    assert spin_until(executor, lambda: len(op.feedback) == 4, DISCOVERY_S)
    spin_for(executor, 0.5)
    assert len(op.chunks) == 1 and len(op.primitives) == 1  # refused: nothing moves
    assert 'more than one direction' in op.feedback[1].data
    assert 'candidates' in op.feedback[2].data
    assert 'unknown command' in op.feedback[3].data  # random weights: similarity < 0.9


def test_recorder_node_records_episodes_between_its_services(ros_setup, tmp_path):
    from cliprt_ros.recorder_node import RecorderNode

    executor, node, op = ros_setup(RecorderNode, output_dir=str(tmp_path), suite='libero_goal',
                                   task_id=8, init_state=0)
    assert spin_until(executor, lambda: op.pubs['action'].get_subscription_count() > 0,
                      DISCOVERY_S)
    rng = np.random.default_rng(0)
    assert not op.call(executor, 'stop').success
    assert op.call(executor, 'start').success
    from std_msgs.msg import String
    op.pubs['instruction'].publish(String(data='open the top drawer'))
    op.pubs['primitive'].publish(String(data=LEFT_10))
    spin_for(executor, 0.3)
    for _ in range(3):
        op.publish_step(rng, [0, 1, 0, 0, 0, 0, -1])
        assert spin_until(executor, lambda: node.recorder.steps or node.recorder.skipped,
                          DISCOVERY_S)
        spin_for(executor, 0.1)
    assert node.recorder.steps >= 2
    response = op.call(executor, 'stop')
    assert response.success and 'demo_0' in response.message
    assert op.call(executor, 'start').success
    op.publish_step(rng, [0, 0, 0, 0, 0, 0, 1])
    assert spin_until(executor, lambda: node.recorder.steps, DISCOVERY_S)
    assert op.call(executor, 'discard').success
    path = tmp_path / 'open_the_top_drawer_demo.hdf5'
    with h5py.File(path, 'r') as handle:
        assert list(handle['data']) == ['demo_0']
        demo = handle['data/demo_0']
        steps = len(demo['actions'])
        assert demo['obs/eye_in_hand_rgb'].shape == (steps, 24, 24, 3)
        assert [p.decode() for p in demo['primitives'][()]] == [LEFT_10] * steps
        np.testing.assert_allclose(demo['obs/ee_pos'][0], [0.5, 0, 0])
        assert handle['data'].attrs['task_id'] == 8


@pytest.mark.slow
def test_installed_nodes_start_stop_and_refuse_bad_parameters(colcon_install, tmp_path):
    from ros_utils import NodeProcess

    recorder = NodeProcess(colcon_install, 'recorder_node',
                           ['-p', f'output_dir:={tmp_path / "rec"}'], tmp_path)
    try:
        assert recorder.wait_for_output('ready: recording into', 60.0), recorder.output()
        assert recorder.terminate() == 0, recorder.output()
    finally:
        recorder.kill()
    for executable, args, message in (
            ('teleop_node', ['-p', 'translator:=nocolon', '-p', 'text_similarity:=false'],
             'package.module:factory'),
            ('recorder_node', ['-p', 'outptu_dir:=x'], 'unknown parameter(s)')):
        node = NodeProcess(colcon_install, executable, args, tmp_path)
        try:
            assert node.proc.wait(timeout=60) == 2, node.output()
            assert message in node.output() and 'Traceback' not in node.output()
        finally:
            node.kill()
