"""
Language teleoperation end to end over real DDS: LIBERO bridge (real time, /clock) as the robot,
action executor, teleop_node, recorder_node; then cliprt-train and cliprt-data inspect on the file.
"""

import json

import h5py
import numpy as np
import pytest
from ros_utils import DISCOVERY_S, rclpy_available, REPO, spin_until, unique_namespace
from sim_helpers import SharedEnv

pytestmark = pytest.mark.skipif(not rclpy_available(), reason='rclpy wheels not installed')

LIBERO_CAMERA = 64
LIBERO_WRIST = True
STEPS = 90  # the episode's horizon (simulated steps); the commands below need ~45
LEFT_10 = 'move the arm to the left by ten centimeters'
UP_5 = 'raise the arm up by five centimeters'


class Operator:
    """The person: types commands, watches the arm (ee_pose), calls the recorder services."""

    def __init__(self, namespace):
        import rclpy
        from geometry_msgs.msg import PoseStamped
        from std_msgs.msg import Float64MultiArray, String
        from std_srvs.srv import Trigger

        from cliprt_ros.qos import reliable_qos

        self.node = rclpy.create_node('operator', namespace=namespace)
        self.poses, self.actions, self.feedback, self.moves = [], [], [], []
        self.node.create_subscription(PoseStamped, 'ee_pose', self.poses.append, reliable_qos(100))
        self.node.create_subscription(Float64MultiArray, 'action', self.actions.append,
                                      reliable_qos(100))
        self.node.create_subscription(String, 'motion_feedback', self.feedback.append,
                                      reliable_qos(10))
        self.command_pub = self.node.create_publisher(String, 'motion_command', reliable_qos(10))
        self.clients = {name: self.node.create_client(Trigger, f'recorder_node/{name}')
                        for name in ('start', 'stop')}

    def position(self):
        p = self.poses[-1].pose.position
        return np.array([p.x, p.y, p.z])

    def call(self, executor, name):
        from std_srvs.srv import Trigger
        client = self.clients[name]
        assert spin_until(executor, client.service_is_ready, DISCOVERY_S)
        future = client.call_async(Trigger.Request())
        assert spin_until(executor, future.done, DISCOVERY_S)
        return future.result()

    def command(self, executor, text, steps, settle):
        """Send ``text``; wait for its ``steps`` executed actions and ``settle`` more poses."""
        from std_msgs.msg import String
        start, acted, answered = self.position(), len(self.actions), len(self.feedback)
        self.command_pub.publish(String(data=text))
        assert spin_until(executor, lambda: len(self.feedback) > answered, DISCOVERY_S)
        assert spin_until(executor, lambda: len(self.actions) >= acted + steps, 60.0), \
            f'{text!r}: {len(self.actions) - acted} of {steps} actions executed'
        seen = len(self.poses)
        assert spin_until(executor, lambda: len(self.poses) >= seen + settle, 60.0)
        moved = self.position() - start
        self.moves.append(f'{text!r}: end-effector moved {np.round(moved * 100, 2)} cm')
        return moved, self.feedback[-1].data


@pytest.mark.slow
def test_language_commands_move_the_simulated_arm_and_become_training_data(
        libero_env, rclpy_context, tiny_discrete_policy, tmp_path, capsys):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from cliprt_core.cli.data import main as data_main
    from cliprt_core.cli.train import main as train_main
    from cliprt_ros.executor_node import ActionExecutorNode
    from cliprt_ros.libero_bridge_node import LiberoBridgeNode
    from cliprt_ros.recorder_node import RecorderNode
    from cliprt_ros.teleop_node import TeleopNode

    namespace = unique_namespace()
    cli_args = ['--ros-args', '--params-file', str(REPO / 'config' / 'nodes' / 'teleop.yaml')]

    def params(**values):
        return [Parameter(k, value=v) for k, v in values.items()]

    sim_time = {'use_sim_time': True}
    bridge = LiberoBridgeNode(
        env_factory=lambda suite, task: SharedEnv(libero_env), log_report=False,
        namespace=namespace, cli_args=cli_args, parameter_overrides=params(
            suite='libero_spatial', tasks='0', episodes=1, max_steps=STEPS,
            camera_size=LIBERO_CAMERA, results_dir=str(tmp_path / 'results')))
    nodes = [bridge]
    try:
        nodes.append(ActionExecutorNode(namespace=namespace, cli_args=cli_args,
                                        parameter_overrides=params(**sim_time)))
        nodes.append(TeleopNode(policy=tiny_discrete_policy, namespace=namespace,
                                cli_args=cli_args, parameter_overrides=params(**sim_time)))
        recorder = RecorderNode(namespace=namespace, cli_args=cli_args, parameter_overrides=params(
            output_dir=str(tmp_path / 'teleop'), suite='libero_spatial', task_id=0, **sim_time))
        nodes.append(recorder)
        operator = Operator(namespace)
        nodes.append(operator.node)
        executor = SingleThreadedExecutor()
        for node in nodes:
            executor.add_node(node)
        # the bridge starts the episode once the recorder listens and the executor publishes
        assert spin_until(executor, lambda: operator.poses, 60.0), 'the episode did not start'
        assert operator.call(executor, 'start').success

        moved, feedback = operator.command(executor, 'move the arm 10 cm to the left', 8, 6)
        assert LEFT_10 in feedback
        assert 0.06 <= moved[1] <= 0.14 and np.abs(moved[[0, 2]]).max() < 0.02, moved

        acted, idle_start = len(operator.actions), operator.position()
        for refused in ('move left and up 5 cm', 'move 7 cm to the left', 'do a backflip'):
            from std_msgs.msg import String
            operator.command_pub.publish(String(data=refused))
        assert spin_until(executor, lambda: len(operator.feedback) == 4, DISCOVERY_S)
        seen = len(operator.poses)
        assert spin_until(executor, lambda: len(operator.poses) >= seen + 4, 60.0)
        assert len(operator.actions) == acted  # refused commands move nothing
        assert np.abs(operator.position() - idle_start).max() < 0.003
        assert all('not executed' in f.data for f in operator.feedback[1:])

        _, feedback = operator.command(executor, 'close the gripper', 10, 2)
        moved, feedback = operator.command(executor, 'raise the arm up by 5 cm', 4, 6)
        assert UP_5 in feedback
        assert 0.03 <= moved[2] <= 0.07 and np.abs(moved[:2]).max() < 0.015, moved
        recorded_actions = len(operator.actions)
        response = operator.call(executor, 'stop')
        assert response.success, response.message
        (path, demo, steps), = recorder.recorder.saved
        with capsys.disabled():  # the numbers the README quotes
            print('\n' + '\n'.join(operator.moves))
    finally:
        for node in nodes:
            node.destroy_node()

    assert steps == recorded_actions == 8 + 10 + 4
    with h5py.File(path, 'r') as handle:
        group = handle['data'][demo]
        phrases = [p.decode() for p in group['primitives'][()]]
        assert phrases == [LEFT_10] * 8 + ['close the gripper'] * 10 + [UP_5] * 4
        assert group['obs/eye_in_hand_rgb'].shape == (steps, LIBERO_CAMERA, LIBERO_CAMERA, 3)
        ee_pos = group['obs/ee_pos'][()]
        assert ee_pos[8, 1] - ee_pos[0, 1] > 0.04  # the recorded poses show the motion
        assert handle['data'].attrs['suite'] == 'libero_spatial'

    run_dir = tmp_path / 'runs'
    code = train_main(['--config', 'tiny', 'model=cliprt-tiny-discrete', f'data.paths=[{path}]',
                       'train.max_steps=2', 'train.global_batch_size=3',
                       f'log.output_dir={run_dir}', 'log.run_name=teleop', 'log.progress=false',
                       'log.tensorboard=false'])
    assert code == 0
    metrics = [json.loads(line) for line in
               (run_dir / 'teleop' / 'metrics.jsonl').read_text().splitlines()]
    assert metrics and all(np.isfinite(m['loss']) for m in metrics)
    assert (run_dir / 'teleop' / 'checkpoints' / 'last.pt').is_file()
    capsys.readouterr()
    assert data_main(['inspect', str(path), '--labels']) == 0
    out = capsys.readouterr().out
    assert 'recorded phrases (3 commands in 1 demos)' in out
    for phrase in (LEFT_10, 'close the gripper', UP_5):
        assert f'1  {phrase}' in out
