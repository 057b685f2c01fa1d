"""
libero_bridge_node over real DDS with real LIBERO.

ROS evaluation == in-process evaluation, lockstep (stale / mismatched chunks never applied),
timeouts, and the installed executable.
"""

import json
import signal

import numpy as np
import pytest
from ros_utils import NodeProcess, rclpy_available, spin_until, unique_namespace
from sim_helpers import SharedEnv

pytestmark = pytest.mark.skipif(not rclpy_available(), reason='rclpy wheels not installed')

LIBERO_CAMERA = 128  # smaller than the protocol's 256 to keep the test fast; same code path
LIBERO_WRIST = True
MAX_STEPS = 16  # two chunks of 8


class Spy:
    """
    Record what the bridge publishes, and inject chunks it must never apply.

    After the first chunk it replays that chunk (stale) and a copy with an unknown stamp
    (mismatched).
    """

    def __init__(self, namespace):
        import rclpy
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import String
        from trajectory_msgs.msg import JointTrajectory

        from cliprt_ros import qos

        self.node = rclpy.create_node('spy', namespace=namespace)
        self.images, self.wrist, self.joints, self.instructions, self.chunks = [], [], [], [], []
        reliable = qos.reliable_qos(100)
        self.node.create_subscription(Image, 'camera/image_raw', self.images.append, reliable)
        self.node.create_subscription(Image, 'wrist/image_raw', self.wrist.append, reliable)
        self.node.create_subscription(JointState, 'joint_states', self.joints.append, reliable)
        self.node.create_subscription(String, 'instruction', self.instructions.append,
                                      qos.latched_qos())
        self.node.create_subscription(JointTrajectory, 'action_chunk', self._on_chunk, reliable)
        self.chunk_pub = self.node.create_publisher(JointTrajectory, 'action_chunk', reliable)

    def _on_chunk(self, msg):
        self.chunks.append(msg)
        if len(self.chunks) == 1:
            from cliprt_ros.conversions import ns_to_stamp, stamp_to_ns
            self.chunk_pub.publish(msg)  # a duplicate: answers an already answered observation
            mismatched = type(msg)(joint_names=msg.joint_names, points=msg.points)
            mismatched.header.frame_id = msg.header.frame_id
            mismatched.header.stamp = ns_to_stamp(stamp_to_ns(msg.header.stamp) + 1)
            self.chunk_pub.publish(mismatched)


@pytest.mark.slow
def test_ros_evaluation_equals_in_process_evaluation(libero_env, rclpy_context, tiny_policy,
                                                     tmp_path):
    from cliprt_core.eval import EvalConfig, run_episode
    from cliprt_ros.conversions import image_to_rgb
    from cliprt_ros.run_eval import create_nodes, run_nodes

    config = EvalConfig(suite='libero_spatial', tasks='0', episodes=1, max_steps=MAX_STEPS,
                        camera_size=LIBERO_CAMERA, wrist_camera=True,
                        results_dir=str(tmp_path / 'ros'), progress=False)
    namespace = unique_namespace()
    policy = tiny_policy
    policy_node, bridge, _ = create_nodes(config, namespace=namespace, policy=policy,
                                          env_factory=lambda suite, task: SharedEnv(libero_env))
    spy = Spy(namespace)
    try:
        summary = run_nodes(policy_node, bridge, extra_nodes=[spy.node])
    finally:
        policy_node.destroy_node()
        bridge.destroy_node()
    assert summary['overall']['episodes'] == 1 and summary['complete']
    assert (bridge.lockstep.stale, bridge.lockstep.mismatched) >= (1, 1), 'nothing was injected'

    # The same episode in-process, through the same Episode protocol and the same policy.
    seen = []

    def chunk_fn(image, instruction):
        seen.append(image)
        policy.reset(instruction)
        return policy.act(image)

    expected = run_episode(libero_env, 0, chunk_fn, max_steps=MAX_STEPS).to_record()
    (record,) = [json.loads(line) for line in
                 (tmp_path / 'ros' / 'episodes.jsonl').read_text().splitlines()]
    for key in ('suite', 'task_id', 'task', 'episode', 'success', 'steps', 'queries', 'error',
                'seed', 'state_hash'):
        assert record[key] == expected[key], key
    assert record['steps'] == MAX_STEPS and record['queries'] == 2 and record['error'] is None
    for name in ('run.json', 'summary.json', 'results.md', 'success.png'):
        assert (tmp_path / 'ros' / name).is_file(), name
    assert json.loads((tmp_path / 'ros' / 'run.json').read_text())['policy'] == \
        'random:cliprt-tiny'

    # What went over the topics: upright agentview (== what the in-process policy saw), wrist,
    # joint states with the same stamp, the task's language.
    assert len(spy.images) >= 2 and len(spy.chunks) >= 2
    np.testing.assert_array_equal(image_to_rgb(spy.images[0]), seen[0])
    np.testing.assert_array_equal(image_to_rgb(spy.images[1]), seen[1])
    assert spy.images[0].header.frame_id == 'agentview_camera'
    assert image_to_rgb(spy.wrist[0]).shape == (LIBERO_CAMERA, LIBERO_CAMERA, 3)
    assert spy.wrist[0].header.stamp == spy.images[0].header.stamp == spy.joints[0].header.stamp
    assert len(spy.joints[0].name) == len(spy.joints[0].position) == 9
    assert [m.data for m in spy.instructions] == [libero_env.language]

    # The same run on one rclpy MultiThreadedExecutor for both nodes (run_eval --executor multi).
    multi = EvalConfig(**{**config.__dict__, 'results_dir': str(tmp_path / 'multi')})
    policy_node, bridge, _ = create_nodes(multi, namespace=unique_namespace(), policy=policy,
                                          env_factory=lambda suite, task: SharedEnv(libero_env))
    try:
        assert run_nodes(policy_node, bridge, executor='multi')['complete']
    finally:
        policy_node.destroy_node()
        bridge.destroy_node()
    (again,) = [json.loads(line) for line in
                (tmp_path / 'multi' / 'episodes.jsonl').read_text().splitlines()]
    assert again['state_hash'] == expected['state_hash'] and again['steps'] == MAX_STEPS


@pytest.mark.slow
def test_unanswered_observation_times_out_as_a_failure_with_the_reason(
        libero_env, rclpy_context, tmp_path):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    from trajectory_msgs.msg import JointTrajectory

    from cliprt_ros import qos
    from cliprt_ros.conversions import chunk_to_trajectory, ns_to_stamp
    from cliprt_ros.libero_bridge_node import LiberoBridgeNode, spin_until_finished

    namespace = unique_namespace()
    params = {'tasks': '0', 'episodes': 1, 'camera_size': LIBERO_CAMERA,
              'max_steps': MAX_STEPS,
              'results_dir': str(tmp_path), 'chunk_timeout': 1.5, 'resend_period': 0.5}
    bridge = LiberoBridgeNode(env_factory=lambda suite, task: SharedEnv(libero_env),
                              namespace=namespace,
                              parameter_overrides=[Parameter(k, value=v)
                                                   for k, v in params.items()])
    # A policy that never answers: it only sends a chunk for an observation that never existed.
    silent = __import__('rclpy').create_node('silent_policy', namespace=namespace)
    images = []
    wrong = silent.create_publisher(JointTrajectory, 'action_chunk', qos.reliable_qos())

    def on_image(msg):
        images.append(msg)
        if len(images) == 1:
            wrong.publish(chunk_to_trajectory(np.zeros((8, 7)), ns_to_stamp(123), 'f', 0.05))

    silent.create_subscription(Image, 'camera/image_raw', on_image, qos.reliable_qos())
    silent.create_subscription(String, 'instruction', lambda msg: None, qos.latched_qos())
    executor = SingleThreadedExecutor()
    executor.add_node(bridge)
    executor.add_node(silent)
    try:
        spin_until_finished(executor, bridge)
    finally:
        executor.shutdown()
        bridge.destroy_node()
        silent.destroy_node()
    (record,) = bridge.finished_now
    assert not record['success'] and record['steps'] == 0 and record['queries'] == 0
    assert record['error'].startswith(
        'timeout: no action chunk answered the observation within 1.5 s (0 stale and 1 '
        'mismatched')
    assert len(images) >= 3  # the observation was resent while waiting (same stamp)
    assert len({(m.header.stamp.sec, m.header.stamp.nanosec) for m in images}) == 1
    assert bridge.summary['overall']['errors'] == 1


@pytest.mark.slow
def test_a_policy_node_that_goes_away_stops_the_run_and_keeps_the_episode_for_resume(
        libero_env, rclpy_context, tmp_path):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    from trajectory_msgs.msg import JointTrajectory

    from cliprt_ros import qos
    from cliprt_ros.libero_bridge_node import LiberoBridgeNode, spin_until_finished

    namespace = unique_namespace()
    params = {'tasks': '0', 'episodes': 1, 'camera_size': LIBERO_CAMERA, 'max_steps': MAX_STEPS,
              'results_dir': str(tmp_path), 'chunk_timeout': 60.0, 'policy_lost_timeout': 1.0}
    bridge = LiberoBridgeNode(env_factory=lambda suite, task: SharedEnv(libero_env),
                              namespace=namespace,
                              parameter_overrides=[Parameter(k, value=v)
                                                   for k, v in params.items()])
    policy = __import__('rclpy').create_node('dying_policy', namespace=namespace)
    images = []
    policy.create_publisher(JointTrajectory, 'action_chunk', qos.reliable_qos())
    policy.create_subscription(Image, 'camera/image_raw', images.append, qos.reliable_qos())
    policy.create_subscription(String, 'instruction', lambda msg: None, qos.latched_qos())
    executor = SingleThreadedExecutor()
    executor.add_node(bridge)
    executor.add_node(policy)
    try:
        assert spin_until(executor, lambda: images, 60.0), 'the episode never started'
        executor.remove_node(policy)
        policy.destroy_node()  # the policy process dies mid-episode
        spin_until_finished(executor, bridge)
    finally:
        executor.shutdown()
        bridge.destroy_node()
    assert bridge.exit_code == 1 and bridge.finished_now == []
    assert 'went away' in bridge.summary['run']['stopped']
    assert bridge.summary['missing_episodes'] == 1  # not recorded: it reruns on resume


# --------------------------------------------------------------------------- installed executable

@pytest.mark.slow
def test_installed_bridge_validates_parameters_waits_for_a_policy_and_stops_on_sigterm(
        colcon_install, tmp_path):
    prefix = colcon_install
    common = ['-p', 'tasks:=0', '-p', 'episodes:=1']
    waiting = NodeProcess(prefix, 'libero_bridge_node', [
        '-r', f'__ns:={unique_namespace()}', '-p', f'results_dir:={tmp_path / "a"}', *common],
        tmp_path)
    alone = NodeProcess(prefix, 'libero_bridge_node', [
        '-r', f'__ns:={unique_namespace()}', '-p', f'results_dir:={tmp_path / "b"}',
        '-p', 'discovery_timeout:=0.5', *common], tmp_path)
    invalid = NodeProcess(prefix, 'libero_bridge_node', [
        '-r', f'__ns:={unique_namespace()}', '-p', 'suite:=libero_100', *common], tmp_path)
    try:
        assert waiting.wait_for_output('waiting for a policy node', 60), waiting.output()
        assert waiting.terminate(signal.SIGTERM, repeat=2) == 0, waiting.output()
        assert alone.proc.wait(timeout=60) == 1, alone.output()
        assert 'no policy node' in alone.output() and 'stopping' in alone.output()
        summary = json.loads((tmp_path / 'b' / 'summary.json').read_text())
        assert summary['missing_episodes'] == 1 and not summary['complete']
        assert 'no policy node' in summary['run']['stopped']
        assert '# LIBERO evaluation' in alone.output()  # the launch log shows the table
        assert invalid.proc.wait(timeout=60) == 2, invalid.output()
        assert "unknown LIBERO suite 'libero_100'" in invalid.output()
        for proc in (waiting, alone, invalid):
            assert 'Traceback' not in proc.output(), proc.output()
    finally:
        for proc in (waiting, alone, invalid):
            proc.kill()


def test_run_eval_rejects_a_bad_config_before_starting_ros(capsys):
    from cliprt_ros.run_eval import main

    assert main(['--suite', 'libero_100', '--no-progress']) == 2
    assert 'libero_100' in capsys.readouterr().err


@pytest.mark.slow
def test_realtime_episode_runs_on_the_simulated_clock_through_the_executor(
        libero_env, rclpy_context, tiny_policy, tmp_path):
    """Bridge (realtime, /clock) + executor (ensemble) + policy (on_request, +0.1 s latency)."""
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from rosgraph_msgs.msg import Clock
    from std_msgs.msg import Float64MultiArray

    from cliprt_core.eval import EvalConfig
    from cliprt_ros.conversions import stamp_to_ns
    from cliprt_ros.run_eval import create_nodes, run_nodes

    steps = 24
    config = EvalConfig(suite='libero_spatial', tasks='0', episodes=1, max_steps=steps,
                        camera_size=LIBERO_CAMERA, wrist_camera=True,
                        results_dir=str(tmp_path / 'rt'), progress=False)
    runtime = ({'mode': 'realtime', 'real_time_factor': 0.5, 'publish_clock': True},
               {'aggregation': 'ensemble'}, {'added_latency': 0.1})
    namespace = unique_namespace()
    policy_node, bridge, extra = create_nodes(
        config, namespace=namespace, policy=tiny_policy, runtime=runtime,
        env_factory=lambda suite, task: SharedEnv(libero_env))
    spy = rclpy.create_node('realtime_spy', namespace=namespace)
    clock, actions, poses = [], [], []
    spy.create_subscription(Clock, '/clock', lambda m: clock.append(stamp_to_ns(m.clock)), 100)
    spy.create_subscription(Float64MultiArray, 'action', actions.append, 100)
    spy.create_subscription(PoseStamped, 'ee_pose', poses.append, 100)
    (executor_node,) = extra
    try:
        summary = run_nodes(policy_node, bridge, extra_nodes=[executor_node, spy])
        counters = executor_node.runtime.counters
    finally:
        for node in (policy_node, bridge, executor_node, spy):
            node.destroy_node()
    assert summary['complete'] and summary['overall']['episodes'] == 1
    (record,) = [json.loads(line) for line in
                 (tmp_path / 'rt' / 'episodes.jsonl').read_text().splitlines()]
    realtime = record['realtime']
    assert record['error'] is None and record['steps'] == realtime['steps'] == steps
    assert record['queries'] == realtime['chunks'] >= 2
    # The first chunk needs a request, an image and 0.1 s of (simulated) latency: held steps.
    assert 2 <= realtime['holds'] < steps
    assert realtime['chunk_latency_ms']['p50'] >= 100.0  # the added latency, on the sim clock
    assert counters.executed >= steps - realtime['holds'] and counters.requests >= 2
    assert policy_node.get_parameter('use_sim_time').value
    assert clock == sorted(clock) and len(clock) >= steps  # simulated time only moves forward
    assert clock[-1] - clock[0] >= int((steps - 1) * 0.05e9)
    assert len(actions) >= steps - realtime['holds'] - 1
    assert poses and poses[0].header.frame_id == 'world'
