"""policy_node over real DDS on loopback: in-process nodes and the colcon-installed executable."""

import signal
import threading
import time

import numpy as np
import pytest
from ros_utils import (DISCOVERY_S, Driver, NodeProcess, random_image, rclpy_available, spin_for,
                       spin_until, unique_namespace)

pytestmark = pytest.mark.skipif(not rclpy_available(), reason='rclpy wheels not installed')

ANSWER_S = 20.0  # upper bound for one tiny-model answer on a loaded 2-core CI machine


@pytest.fixture
def make_node(rclpy_context, tiny_policy):
    """Create a PolicyNode in a fresh namespace plus a Driver, spun by one executor."""
    from rclpy.parameter import Parameter

    from cliprt_ros.policy_node import PolicyNode
    from cliprt_ros.spin import make_executor

    created = []

    def make(policy=None, executor_kind='single', **params):
        params.setdefault('image_qos', 'reliable')
        params.setdefault('warmup', False)
        namespace = unique_namespace()
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        node = PolicyNode(policy=policy or tiny_policy, namespace=namespace,
                          parameter_overrides=overrides)
        driver = Driver(namespace)
        executor = make_executor(executor_kind)
        executor.add_node(node)
        executor.add_node(driver.node)
        created.append((executor, node, driver))
        assert spin_until(executor, driver.connected, DISCOVERY_S), 'discovery failed'
        return executor, node, driver

    yield make
    for executor, node, driver in created:
        executor.shutdown()
        node.destroy_node()
        driver.destroy()


def _instruct(executor, node, driver, text='put the bowl on the plate'):
    before = node.stats['instructions']
    driver.instruct(text)
    assert spin_until(executor, lambda: node.stats['instructions'] > before, DISCOVERY_S)


def _ask(executor, driver, rgb, stamp=None):
    stamp = driver.send_image(rgb, stamp)
    assert spin_until(executor, lambda: driver.answers_to(stamp), ANSWER_S), 'no answer'
    return stamp, driver.answers_to(stamp)


def _expected(policy, instruction, rgb, low=-1.0, high=1.0):
    policy.reset(instruction)
    return np.clip(policy.act(rgb), low, high)


@pytest.mark.parametrize('executor_kind', ['single', 'events'])
def test_each_image_is_answered_by_one_chunk_equal_to_the_in_process_call(
        make_node, tiny_policy, executor_kind):
    from cliprt_ros.conversions import stamp_to_ns, trajectory_to_chunk

    executor, node, driver = make_node(executor_kind=executor_kind, action_frame_id='tool0',
                                       control_period=0.1)
    _instruct(executor, node, driver)
    sent = []
    for seed in range(3):
        rgb = random_image(seed)
        stamp, answers = _ask(executor, driver, rgb)
        sent.append((stamp, rgb))
        assert len(answers) == 1
        msg = answers[0]
        assert msg.header.frame_id == 'tool0'
        assert list(msg.joint_names) == ['dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper']
        nanoseconds = [p.time_from_start.nanosec for p in msg.points[:3]]
        assert nanoseconds == [100_000_000, 200_000_000, 300_000_000]
    spin_for(executor, 0.2)
    assert len(driver.chunks) == 3  # exactly one chunk per image, no extra
    for stamp, rgb in sent:
        (msg,) = driver.answers_to(stamp)
        chunk = trajectory_to_chunk(msg)
        assert chunk.shape == (8, 7) and np.abs(chunk).max() <= 1.0
        expected = _expected(tiny_policy, 'put the bowl on the plate', rgb)
        np.testing.assert_array_equal(chunk, expected)
    assert [stamp_to_ns(c.header.stamp) for c in driver.chunks] == [
        stamp_to_ns(s) for s, _ in sent]


def test_executor_kinds(rclpy_context):
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

    from cliprt_ros.spin import EXECUTORS, make_executor, shutdown_executor

    assert EXECUTORS[0] == 'events'  # the node programs' default
    made = {kind: make_executor(kind) for kind in EXECUTORS}
    assert type(made['events']).__name__ == 'EventsExecutor'
    assert isinstance(made['single'], SingleThreadedExecutor)
    assert isinstance(made['multi'], MultiThreadedExecutor)
    for executor in made.values():
        shutdown_executor(executor)
    with pytest.raises(ValueError, match='unknown executor'):
        make_executor('fast')


def test_late_node_receives_the_latched_instruction(rclpy_context, tiny_policy):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from cliprt_ros.policy_node import PolicyNode

    namespace = unique_namespace()
    driver = Driver(namespace)
    driver.instruct('open the drawer')  # before the policy node exists
    node = PolicyNode(policy=tiny_policy, namespace=namespace, parameter_overrides=[
        Parameter('image_qos', value='reliable'), Parameter('warmup', value=False)])
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    executor.add_node(driver.node)
    try:
        assert spin_until(executor, lambda: node.instruction == 'open the drawer', DISCOVERY_S)
        assert spin_until(executor, driver.connected, DISCOVERY_S)
        _ask(executor, driver, random_image(5))
    finally:
        executor.shutdown()
        node.destroy_node()
        driver.destroy()


def test_bad_messages_are_logged_skipped_and_the_node_keeps_running(make_node, tiny_policy):
    from cliprt_ros.conversions import rgb_to_image

    executor, node, driver = make_node()
    # No instruction yet: images are ignored.
    driver.send_image(random_image(0))
    assert spin_until(executor, lambda: node.stats['no_instruction'] == 1, DISCOVERY_S)
    # Empty instruction: rejected with the reason, still no instruction.
    driver.instruct('   ')
    assert spin_until(executor, lambda: node.stats['rejected'] == 1, DISCOVERY_S)
    assert 'instruction is empty' in node.last_reason and node.instruction is None
    _instruct(executor, node, driver, 'pick up the ketchup')
    # Unknown encoding, then a truncated image.
    bad = rgb_to_image(random_image(1), driver.now())
    bad.encoding = '32FC1'
    driver.send(bad)
    assert spin_until(executor, lambda: node.stats['rejected'] == 2, ANSWER_S)
    assert "unsupported image encoding '32FC1'" in node.last_reason
    short = rgb_to_image(random_image(2), driver.now())
    short.data = bytes(short.data)[:1000]
    driver.send(short)
    assert spin_until(executor, lambda: node.stats['rejected'] == 3, ANSWER_S)
    assert 'needs 196608' in node.last_reason
    # Huge instruction: rejected; the previous one stays active.
    driver.instruct('x' * 5000)
    assert spin_until(executor, lambda: node.stats['rejected'] == 4, ANSWER_S)
    assert 'limit' in node.last_reason and node.instruction == 'pick up the ketchup'
    # Still serving.
    rgb = random_image(3)
    stamp, (msg,) = _ask(executor, driver, rgb)
    assert len(driver.chunks) == 1
    from cliprt_ros.conversions import trajectory_to_chunk
    np.testing.assert_array_equal(trajectory_to_chunk(msg),
                                  _expected(tiny_policy, 'pick up the ketchup', rgb))
    # A withheld action (logged as an error), then bad messages (warnings), in both orders:
    # rclpy refuses two severities from one logging call site, which once killed the node.
    wide = rgb_to_image(np.zeros((2, 4097, 3), np.uint8), driver.now())
    for message, counter, total in ((wide, 'withheld', 1), (bad, 'rejected', 5),
                                    (wide, 'withheld', 2)):
        message.header.stamp = driver.now()
        driver.send(message)
        assert spin_until(executor, lambda: node.stats[counter] == total, ANSWER_S)
        node._log_times.clear()  # no throttling: every message reaches the logger
    assert 'too large' in node.last_reason or '4097' in node.last_reason
    _ask(executor, driver, random_image(4))


def test_instruction_from_a_default_qos_publisher_as_ros2_topic_pub_sends(make_node):
    """`ros2 topic pub` publishes reliable + volatile: it must match the node's subscription."""
    from std_msgs.msg import String

    executor, node, driver = make_node()
    publisher = driver.node.create_publisher(String, 'instruction', 10)  # default QoS
    assert spin_until(executor, lambda: publisher.get_subscription_count() >= 1, DISCOVERY_S)
    publisher.publish(String(data='open the top drawer'))
    assert spin_until(executor, lambda: node.instruction == 'open the top drawer', DISCOVERY_S)
    assert node.stats['instructions'] == 1  # one instruction, however many subscriptions
    _ask(executor, driver, random_image(6))


def test_disabled_node_keeps_watching_its_camera(make_node):
    """While disabled, arriving images still count as fresh: no false 'camera stale'."""
    from rclpy.parameter import Parameter

    executor, node, driver = make_node(stale_image_timeout=0.3)
    _instruct(executor, node, driver)
    _ask(executor, driver, random_image(0))
    node.set_parameters([Parameter('enabled', value=False)])
    for seed in range(8):
        driver.send_image(random_image(seed))
        spin_for(executor, 0.1)
    assert node.stats['disabled'] >= 4
    assert not node.watchdog.stale


def test_stale_and_unstamped_images_are_never_answered(make_node):
    from builtin_interfaces.msg import Time

    from cliprt_ros.conversions import ns_to_stamp, stamp_to_ns

    executor, node, driver = make_node(stale_image_timeout=0.5)
    _instruct(executor, node, driver)
    now_ns = stamp_to_ns(driver.now())
    # One at a time: the node's image subscription keeps only the latest frame (depth 1).
    cases = [(ns_to_stamp(now_ns - 3_000_000_000), 'image is stale: 3.'),
             (Time(), 'no header.stamp'),
             (ns_to_stamp(now_ns + 60_000_000_000), 'in the future')]
    for count, (stamp, reason) in enumerate(cases, start=1):
        driver.send_image(random_image(count), stamp)
        assert spin_until(executor, lambda: node.stats['rejected'] == count, ANSWER_S)
        assert reason in node.last_reason
    old, future = cases[0][0], cases[2][0]
    # Positive control on the same topic (ordered after the stale ones): a fresh image works.
    _ask(executor, driver, random_image(3))
    assert not driver.answers_to(old) and not driver.answers_to(future)
    assert len(driver.chunks) == 1
    # The watchdog notices that the camera went quiet.
    assert spin_until(executor, lambda: node.watchdog.stale, 5.0)


def test_enable_service_and_parameter(make_node):
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter
    from std_srvs.srv import SetBool

    executor, node, driver = make_node()
    _instruct(executor, node, driver)
    client = driver.node.create_client(SetBool, node.get_fully_qualified_name() + '/enable')
    assert spin_until(executor, client.service_is_ready, DISCOVERY_S)

    def call(data):
        future = client.call_async(SetBool.Request(data=data))
        assert spin_until(executor, future.done, DISCOVERY_S)
        return future.result()

    response = call(False)
    assert response.success and response.message == 'disabled'
    assert node.get_parameter('enabled').value is False
    stamp = driver.send_image(random_image(0))
    assert spin_until(executor, lambda: node.stats['disabled'] == 1, ANSWER_S)
    assert call(True).message == 'enabled'
    _ask(executor, driver, random_image(1))
    assert not driver.answers_to(stamp) and len(driver.chunks) == 1
    # Parameters other than `enabled` are read-only at runtime.
    params = driver.node.create_client(SetParameters,
                                       node.get_fully_qualified_name() + '/set_parameters')
    assert spin_until(executor, params.service_is_ready, DISCOVERY_S)
    future = params.call_async(SetParameters.Request(parameters=[
        Parameter('checkpoint', value='other.pt').to_parameter_msg()]))
    assert spin_until(executor, future.done, DISCOVERY_S)
    assert not future.result().results[0].successful
    assert node.get_parameter('checkpoint').value == ''


def test_actions_are_clipped_to_the_configured_bounds(make_node, tiny_policy):
    from cliprt_ros.conversions import trajectory_to_chunk

    executor, node, driver = make_node(action_low=[-0.1] * 6 + [-1.0],
                                       action_high=[0.1] * 6 + [1.0])
    _instruct(executor, node, driver, 'turn on the stove')
    rgb = random_image(7)
    _, (msg,) = _ask(executor, driver, rgb)
    chunk = trajectory_to_chunk(msg)
    raw = _expected(tiny_policy, 'turn on the stove', rgb, -np.inf, np.inf)
    assert np.abs(raw[:, :6]).max() > 0.1  # the random model really exceeds the bounds
    assert np.abs(chunk[:, :6]).max() <= np.float32(0.1)
    np.testing.assert_array_equal(chunk, np.clip(raw, node.guard.low, node.guard.high))
    assert node.guard.clipped_values > 0


def test_non_finite_model_output_is_never_published(make_node):
    import torch

    from cliprt_core.inference import Policy

    policy = Policy.from_config('cliprt-tiny', device='cpu')
    with torch.no_grad():
        next(policy.model.parameters()).fill_(float('nan'))  # a corrupted weight
    executor, node, driver = make_node(policy=policy)
    _instruct(executor, node, driver)
    for count in (1, 2):
        driver.send_image(random_image(count))
        assert spin_until(executor, lambda: node.stats['withheld'] == count, ANSWER_S)
        assert 'non-finite' in node.last_reason
    spin_for(executor, 0.2)
    assert driver.chunks == [] and node.stats['answered'] == 0


class GatedPolicy:
    """
    The real tiny policy, except that ``act`` waits until the test opens the gate.

    ``entered`` is set when a query reaches the model, so the test knows the model thread is
    busy without timing anything.
    """

    def __init__(self, policy):
        self._policy = policy
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __getattr__(self, name):
        return getattr(self._policy, name)

    def act(self, image):
        self.entered.set()
        assert self.gate.wait(60.0), 'the test never opened the gate'
        return self._policy.act(image)


def test_frames_arriving_while_busy_are_dropped_not_queued(make_node, tiny_policy):
    from cliprt_ros.conversions import stamp_to_ns

    frames = 10
    policy = GatedPolicy(tiny_policy)
    executor, node, driver = make_node(policy=policy, stale_image_timeout=60.0)
    _instruct(executor, node, driver)
    try:
        stamps = [driver.send_image(random_image(0))]
        assert spin_until(executor, policy.entered.is_set, ANSWER_S), node.stats
        # The model is held busy: every further frame is counted, then dropped. One at a time:
        # the node's image subscription keeps only the latest frame (depth 1).
        for seed in range(1, frames):
            stamps.append(driver.send_image(random_image(seed)))
            assert spin_until(executor, lambda n=seed + 1: node.stats['images'] == n, ANSWER_S)
        assert node.stats['dropped_busy'] == frames - 1 and node.stats['answered'] == 0
    finally:
        policy.gate.set()
    assert spin_until(executor, lambda: len(driver.chunks) == node.stats['answered'] == 1,
                      ANSWER_S), node.stats
    assert node.stats['dropped_busy'] == frames - 1
    assert stamp_to_ns(driver.chunks[0].header.stamp) == stamp_to_ns(stamps[0])
    # Nothing was queued: the next frame after the answer is served, and only it.
    stamp, _ = _ask(executor, driver, random_image(frames))
    assert [stamp_to_ns(c.header.stamp) for c in driver.chunks] == [
        stamp_to_ns(stamps[0]), stamp_to_ns(stamp)]
    assert node.stats['dropped_busy'] == frames - 1


def test_discrete_model_publishes_the_primitive(make_node, tiny_discrete_policy):
    from cliprt_ros.conversions import trajectory_to_chunk

    policy = tiny_discrete_policy
    executor, node, driver = make_node(policy=policy, action_low=[-0.05] * 7,
                                       action_high=[0.05] * 7)
    _instruct(executor, node, driver, 'move the cup left')
    rgb = random_image(4)
    _, (msg,) = _ask(executor, driver, rgb)
    assert spin_until(executor, lambda: driver.primitives, ANSWER_S)
    policy.reset('move the cup left')
    expected = policy.act(rgb)
    assert driver.primitives[0].data == expected.phrase
    chunk = trajectory_to_chunk(msg)
    assert chunk.shape == (1, 7)
    np.testing.assert_array_equal(chunk[0], np.clip(expected.action, -0.05, 0.05))


# --------------------------------------------------------------------------- installed executable

@pytest.mark.slow
def test_installed_executable_serves_survives_bad_input_and_stops_on_signals(
        colcon_install, rclpy_context, tmp_path):
    """What a user does: `ros2 run cliprt_ros policy_node`, then `ros2 topic pub` at it."""
    from rclpy.executors import SingleThreadedExecutor

    from cliprt_ros.conversions import rgb_to_image

    params = colcon_install / 'share' / 'cliprt_ros' / 'config' / 'nodes' / 'policy_node.yaml'
    assert params.is_file()
    namespace = unique_namespace()
    main = NodeProcess(colcon_install, 'policy_node', [
        '-r', f'__ns:={namespace}', '--params-file', str(params),
        '-p', 'image_qos:=reliable', '-p', 'stale_image_timeout:=5.0'], tmp_path)
    # Started in parallel (startup is torch import + model load): SIGINT and a broken checkpoint.
    other = NodeProcess(colcon_install, 'policy_node', ['-r', f'__ns:={unique_namespace()}'],
                        tmp_path)
    broken = NodeProcess(colcon_install, 'policy_node', [
        '-r', f'__ns:={unique_namespace()}', '-p', f'checkpoint:={tmp_path / "missing.pt"}'],
        tmp_path)
    typo = NodeProcess(colcon_install, 'policy_node', [  # a misspelled parameter never falls back
        '-r', f'__ns:={unique_namespace()}', '-p', f'chekpoint:={tmp_path / "model.pt"}'],
        tmp_path)
    driver = Driver(namespace)
    executor = SingleThreadedExecutor()
    executor.add_node(driver.node)
    try:
        assert main.wait_for_output('ready:', 90), main.output()
        assert spin_until(executor, driver.connected, DISCOVERY_S), main.output()
        driver.instruct('pick up the black bowl')
        # The latched instruction may arrive after the first image: retry until answered.
        deadline = time.monotonic() + ANSWER_S
        first = None
        while first is None and time.monotonic() < deadline:
            stamp = driver.send_image(random_image(0))
            if spin_until(executor, lambda: driver.answers_to(stamp), 1.0):
                first = stamp
        assert first is not None, main.output()
        bad = rgb_to_image(random_image(1), driver.now())
        bad.encoding = 'yuv422'
        driver.send(bad)
        assert main.wait_for_output("unsupported image encoding 'yuv422'", ANSWER_S)
        _ask(executor, driver, random_image(2))
        assert main.proc.poll() is None
        for seed in range(30):  # SIGTERM while images are pouring in (a shutdown race)
            driver.send_image(random_image(seed))
            executor.spin_once(timeout_sec=0.002)
        assert main.terminate(signal.SIGTERM, repeat=2) == 0, main.output()

        assert other.wait_for_output('ready:', 90), other.output()
        assert 'RANDOM weights of cliprt-tiny' in other.output()  # loud, never silent
        # Ctrl-C in a terminal under ros2 launch: SIGINT twice in quick succession
        assert other.terminate(signal.SIGINT, repeat=2) == 0, other.output()

        assert broken.proc.wait(timeout=90) == 2, broken.output()
        assert 'missing.pt' in broken.output()
        assert typo.proc.wait(timeout=90) == 2, typo.output()
        assert 'unknown parameter(s) for policy_node: chekpoint' in typo.output()
        for proc in (main, other, broken, typo):
            assert 'Traceback' not in proc.output(), proc.output()
    finally:
        executor.shutdown()
        driver.destroy()
        for proc in (main, other, broken, typo):
            proc.kill()


def _change_state(executor, client_node, node_name, transition):
    """What ``ros2 lifecycle set <node> <transition>`` does: call ~/change_state."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    client = client_node.create_client(ChangeState, f'{node_name}/change_state')
    assert spin_until(executor, client.service_is_ready, DISCOVERY_S)
    request = ChangeState.Request()
    request.transition.id = getattr(Transition, f'TRANSITION_{transition.upper()}')
    future = client.call_async(request)
    assert spin_until(executor, future.done, ANSWER_S)
    client_node.destroy_client(client)
    return future.result().success


def test_managed_node_answers_only_while_active_and_frees_the_model_on_cleanup(
        rclpy_context, tiny_policy):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from cliprt_ros.policy_node import PolicyNode

    namespace = unique_namespace()
    node = PolicyNode(policy=tiny_policy, namespace=namespace, parameter_overrides=[
        Parameter('autostart', value=False), Parameter('image_qos', value='reliable'),
        Parameter('warmup', value=False)])
    driver = Driver(namespace)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    executor.add_node(driver.node)
    name = node.get_fully_qualified_name()
    try:
        assert node.policy is None and node.count_subscribers(
            node.resolve_topic_name('camera/image_raw')) == 0  # unconfigured: no topics yet
        assert _change_state(executor, driver.node, name, 'configure')
        assert node.policy is tiny_policy
        assert spin_until(executor, driver.connected, DISCOVERY_S)
        _instruct(executor, node, driver)
        stamp = driver.send_image(random_image(1))
        assert spin_until(executor, lambda: node.stats['inactive'] == 1, ANSWER_S)
        assert not driver.answers_to(stamp)  # configured but inactive: nothing published
        assert _change_state(executor, driver.node, name, 'activate')
        _ask(executor, driver, random_image(2))
        assert _change_state(executor, driver.node, name, 'deactivate')
        stamp = driver.send_image(random_image(3))
        assert spin_until(executor, lambda: node.stats['inactive'] == 2, ANSWER_S)
        assert _change_state(executor, driver.node, name, 'cleanup')
        assert node.policy is None and node.count_subscribers(
            node.resolve_topic_name('camera/image_raw')) == 0
        assert not driver.answers_to(stamp) and node.stats['answered'] == 1
        assert _change_state(executor, driver.node, name, 'configure')  # and back again
        assert node.policy is tiny_policy
    finally:
        executor.shutdown()
        node.destroy_node()
        driver.destroy()


def test_on_request_mode_answers_the_newest_image_per_request_and_reports_diagnostics(
        make_node):
    from diagnostic_msgs.msg import DiagnosticArray
    from std_msgs.msg import Header

    executor, node, driver = make_node(query_mode='on_request')
    request_pub = driver.node.create_publisher(Header, 'chunk_request', 10)
    reports = []
    driver.node.create_subscription(DiagnosticArray, '/diagnostics', reports.append, 10)
    _instruct(executor, node, driver)
    first = driver.send_image(random_image(1))
    assert spin_until(executor, lambda: node.stats['images'] == 1, ANSWER_S)
    newest = driver.send_image(random_image(2))
    assert spin_until(executor, lambda: node.stats['images'] == 2, ANSWER_S)
    spin_for(executor, 0.3)
    assert not driver.chunks  # images alone are not answered in this mode
    assert spin_until(executor, lambda: request_pub.get_subscription_count() > 0, DISCOVERY_S)
    request_pub.publish(Header(stamp=driver.now()))
    assert spin_until(executor, lambda: driver.answers_to(newest), ANSWER_S)
    assert not driver.answers_to(first)  # the newest image, not a queue of old ones
    # A request with no unanswered image waits for the next image.
    request_pub.publish(Header(stamp=driver.now()))
    assert spin_until(executor, lambda: node.stats['requests'] == 2, ANSWER_S)
    spin_for(executor, 0.2)
    assert len(driver.chunks) == 1
    later = driver.send_image(random_image(3))
    assert spin_until(executor, lambda: driver.answers_to(later), ANSWER_S)

    def policy_status():
        for array in reports:
            for status in array.status:
                if status.name.endswith(': policy'):
                    values = {kv.key: kv.value for kv in status.values}
                    if values.get('answered') == '2':
                        return status, values
        return None

    assert spin_until(executor, policy_status, 5)
    status, values = policy_status()
    assert values['state'] == 'active' and values['query_mode'] == 'on_request'
    assert float(values['query_latency_p50_ms']) > 0 and values['requests'] == '2'
