"""
The action executor: chunk timing and aggregation (ROS-free), then the node over real DDS.

The ensembling expectation is computed independently (explicit per-offer loop over ACT's
formula), never by the code under test.
"""

import math
import time

from cliprt_core.executor import ActionExecutor, ExecutorConfig, TwistConfig
import numpy as np
import pytest
from ros_utils import rclpy_available, spin_until, unique_namespace

PERIOD = 0.05


def ramp(length=8, offset=0.0):
    """A chunk whose action i is (offset + i / 10) in every dimension but the gripper."""
    chunk = np.zeros((length, 7))
    chunk[:, :6] = offset + np.arange(length)[:, None] / 10
    chunk[:, 6] = 1.0
    return chunk


def run(executor, start, ticks):
    """Tick ``ticks`` times from ``start``; the dx of each executed action (None = hold)."""
    out = []
    for k in range(ticks):
        command = executor.tick(start + k * PERIOD)
        out.append(None if command.action is None else round(float(command.action[0]), 6))
    return out


# --------------------------------------------------------------------------- ROS-free core

def test_latest_chunk_runs_one_action_per_period_then_holds():
    executor = ActionExecutor(ExecutorConfig(request_threshold=-1))
    assert executor.add_chunk(ramp(4), start=10.0, now=10.0) is None
    assert run(executor, 10.0, 6) == [0.0, 0.1, 0.2, 0.3, None, None]
    counters = executor.counters
    assert (counters.executed, counters.underruns, counters.skipped) == (4, 2, 0)


def test_latency_compensation_skips_actions_whose_time_passed():
    executor = ActionExecutor(ExecutorConfig(request_threshold=-1))
    # The image was taken 0.12 s ago: actions 0 and 1 (due at 0.0 and 0.05) are past; 2 is due.
    assert executor.add_chunk(ramp(), start=1.0, now=1.12) is None
    assert run(executor, 1.1, 3) == [0.2, 0.3, 0.4]
    assert executor.counters.skipped == 2
    # Without compensation the same chunk starts at its first action on arrival.
    plain = ActionExecutor(ExecutorConfig(request_threshold=-1, latency_compensation=False))
    plain.add_chunk(ramp(), start=1.0, now=1.12)
    assert run(plain, 1.12, 3) == [0.0, 0.1, 0.2]


def test_a_newer_chunk_supersedes_the_rest_of_the_older_one():
    executor = ActionExecutor(ExecutorConfig(request_threshold=-1))
    executor.add_chunk(ramp(), start=0.0, now=0.0)
    assert run(executor, 0.0, 3) == [0.0, 0.1, 0.2]
    executor.add_chunk(ramp(offset=-0.9), start=0.15, now=0.15)
    assert run(executor, 0.15, 2) == [-0.9, -0.8]
    assert executor.counters.superseded == 5  # actions 3..7 of the first chunk never ran


def test_temporal_ensembling_matches_acts_weighted_average():
    decay = 0.5
    executor = ActionExecutor(ExecutorConfig(aggregation='ensemble', ensemble_decay=decay,
                                             request_threshold=-1))
    chunks = [(ramp(offset=0.0), 0.0), (ramp(offset=-0.3), 0.1), (ramp(offset=-0.6), 0.2)]
    expected, got = [], []
    for k in range(12):
        now = k * PERIOD
        for chunk, start in chunks:
            if math.isclose(start, now):
                assert executor.add_chunk(chunk, start=start, now=now) is None
        # Independent expectation: every chunk received so far that has an action for `now`,
        # oldest first, weighted exp(-decay * i), normalised.
        offers = [chunk[round((now - start) / PERIOD)] for chunk, start in chunks
                  if start <= now + 1e-9 and round((now - start) / PERIOD) < len(chunk)]
        weights = [math.exp(-decay * i) for i in range(len(offers))]
        expected.append(sum(w * o for w, o in zip(weights, offers)) / sum(weights))
        got.append(executor.tick(now).action)
    np.testing.assert_allclose(np.stack(got), np.stack(expected), atol=1e-6)
    assert not np.allclose(got[4], chunks[2][0][2])  # really a blend, not the newest chunk


def test_requests_the_next_chunk_at_the_threshold_once_per_timeout():
    executor = ActionExecutor(ExecutorConfig(request_threshold=2, request_timeout=1.0))
    assert executor.tick(0.0).request  # nothing queued: ask at once
    assert not executor.tick(0.05).request  # asked already, timeout not reached
    executor.add_chunk(ramp(), start=0.1, now=0.1)
    requests = [executor.tick(0.1 + k * PERIOD).request for k in range(8)]
    assert requests == [False] * 5 + [True, False, False]  # 2 actions left after tick 5
    assert executor.tick(0.5 + 1.0).request  # unanswered for the timeout: asked again
    assert executor.counters.requests == 3


def test_stale_invalid_and_refused_chunks_never_run():
    executor = ActionExecutor(ExecutorConfig(max_chunk_age=0.3))
    assert 'stale' in executor.add_chunk(ramp(), start=0.0, now=0.5)
    assert 'past due' in executor.add_chunk(ramp(2), start=0.0, now=0.2)
    bad = ramp()
    bad[3, 1] = np.nan
    assert 'non-finite' in executor.add_chunk(bad, start=1.0, now=1.0)
    assert 'action dimensions' in executor.add_chunk(np.zeros((8, 6)), start=1.0, now=1.0)
    assert executor.tick(1.0).action is None
    counters = executor.counters
    assert (counters.dropped_stale, counters.dropped_invalid, counters.chunks) == (2, 2, 0)


def test_disable_and_estop_drop_chunks_and_hold_with_zero_velocity():
    executor = ActionExecutor(ExecutorConfig(request_threshold=-1))
    executor.add_chunk(ramp(offset=0.5), start=0.0, now=0.0)
    assert executor.tick(0.0).twist.any()
    executor.set_estop(True)
    command = executor.tick(0.05)
    assert command.action is None and not command.twist.any()
    assert command.hold_reason == 'estop' and command.gripper == 1.0
    assert 'e-stop' in executor.add_chunk(ramp(), start=0.1, now=0.1)
    executor.set_estop(False)
    assert executor.tick(0.1).hold_reason == 'empty'  # the chunk was dropped, not paused
    executor.add_chunk(ramp(), start=0.15, now=0.15)
    executor.set_enabled(False)
    assert executor.tick(0.15).hold_reason == 'disabled'
    assert 'disabled' in executor.add_chunk(ramp(), start=0.2, now=0.2)


def test_twist_is_delta_over_period_clipped_per_axis():
    config = ExecutorConfig(twist=TwistConfig(velocity_limits=(0.5, 0.5, 0.5, 2.0, 2.0, 2.0)),
                            request_threshold=-1)
    executor = ActionExecutor(config)
    chunk = np.array([[0.2, -1.0, 0.0, 0.1, 0.0, -0.5, -1.0]])
    executor.add_chunk(chunk, start=0.0, now=0.0)
    twist = executor.tick(0.0).twist
    # 0.2 * 5 cm / 50 ms = 0.2 m/s; -1 -> -1 m/s clipped to -0.5; 0.1 * 0.5 rad / 50 ms = 1 rad/s;
    # -0.5 -> -5 rad/s clipped to -2.
    np.testing.assert_allclose(twist, [0.2, -0.5, 0.0, 1.0, 0.0, -2.0])


@pytest.mark.parametrize('kwargs, match', [
    ({'control_period': 0}, 'control_period'),
    ({'ensemble_decay': -1}, 'ensemble_decay'),
    ({'aggregation': 'mean'}, 'aggregation'),
    ({'twist': {'velocity_limits': [1, 1, 1]}}, 'velocity_limits'),
])
def test_executor_config_rejects_bad_values(kwargs, match):
    from cliprt_core.config import ConfigError, from_dict

    with pytest.raises(ConfigError, match=match):
        from_dict(ExecutorConfig, kwargs)


# --------------------------------------------------------------------------- the node over DDS

@pytest.mark.skipif(not rclpy_available(), reason='rclpy wheels not installed')
def test_executor_node_over_dds(rclpy_context):
    """One action per period, a request at the threshold, stale chunks dropped, zero on disable."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import TwistStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from std_msgs.msg import Float64MultiArray, Header
    from std_srvs.srv import SetBool
    from trajectory_msgs.msg import JointTrajectory

    from cliprt_ros.conversions import chunk_to_trajectory
    from cliprt_ros.executor_node import ActionExecutorNode, TWIST_TOPIC

    namespace = unique_namespace()
    node = ActionExecutorNode(namespace=namespace, parameter_overrides=[
        Parameter('request_threshold', value=2)])
    client = rclpy.create_node('executor_client', namespace=namespace)
    actions, twists, requests, diagnostics = [], [], [], []
    client.create_subscription(Float64MultiArray, 'action',
                               lambda m: actions.append((time.monotonic(), list(m.data))), 50)
    client.create_subscription(TwistStamped, TWIST_TOPIC, twists.append, 50)
    client.create_subscription(Header, 'chunk_request',
                               lambda m: requests.append(time.monotonic()), 50)
    client.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 50)
    chunk_pub = client.create_publisher(JointTrajectory, 'action_chunk', 10)
    enable = client.create_client(SetBool, f'{node.get_fully_qualified_name()}/enable')
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    executor.add_node(client)
    try:
        assert spin_until(executor, lambda: requests and chunk_pub.get_subscription_count(), 15)
        stale = client.get_clock().now().nanoseconds - int(2e9)  # 2 s old > max_chunk_age
        chunk_pub.publish(chunk_to_trajectory(ramp(), _stamp(stale), 'base', PERIOD))
        assert spin_until(executor, lambda: node.runtime.counters.dropped_stale == 1, 5)
        requested = len(requests)
        sent = time.monotonic()
        soon = client.get_clock().now().nanoseconds + int(0.2e9)  # due in 0.2 s: no skips
        chunk_pub.publish(chunk_to_trajectory(ramp(), _stamp(soon), 'base', PERIOD))
        assert spin_until(executor, lambda: len(actions) >= 8 and node.runtime.counters.underruns,
                          5), (actions, node.runtime.counters)
        values = [round(a[0], 6) for _, a in actions]
        assert values == [round(v, 6) for v in ramp()[:, 0]]  # each action once, in order
        gaps = np.diff([t for t, _ in actions])
        assert len(actions) == 8 and np.median(gaps) == pytest.approx(PERIOD, abs=0.02)
        # Asked again when 2 actions remained: 0.2 s + 6 periods after the chunk was sent.
        asked = [t - sent for t in requests[requested:]]
        assert asked and 0.4 < asked[0] < 0.65, asked
        # Disabled mid-chunk: an immediate zero twist, the rest of the chunk dropped.
        chunk_pub.publish(chunk_to_trajectory(ramp(offset=1.0), client.get_clock().now().to_msg(),
                                              'base', PERIOD))
        assert spin_until(executor, lambda: len(actions) >= 10, 5)
        future = enable.call_async(SetBool.Request(data=False))
        assert spin_until(executor, future.done, 5) and future.result().success
        count, twist_count = len(actions), len(twists)
        assert spin_until(executor, lambda: len(twists) > twist_count + 3, 5)
        assert len(actions) <= count + 1  # at most one tick raced the service call
        assert not any(_twist_values(t) for t in twists[-3:])
        assert spin_until(executor, lambda: any(
            s.name.endswith('executor') and any(kv.key == 'underruns' for kv in s.values)
            for d in diagnostics for s in d.status), 3)
    finally:
        executor.shutdown()
        node.destroy_node()
        client.destroy_node()


def _stamp(ns):
    from cliprt_ros.conversions import ns_to_stamp

    return ns_to_stamp(ns)


def _twist_values(msg):
    t = msg.twist
    return [v for v in (t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y,
                        t.angular.z) if v]


def test_a_chunk_stamped_ahead_waits_until_its_first_action_is_due():
    executor = ActionExecutor(ExecutorConfig(request_threshold=-1))
    executor.add_chunk(ramp(3), start=1.0, now=0.9)
    assert run(executor, 0.9, 5) == [None, None, 0.0, 0.1, 0.2]


# --------------------------------------------------------------------------- real-time LIBERO core

def test_pacer_spaces_steps_by_period_over_factor_and_counts_overruns():
    from cliprt_core.eval.realtime import Pacer

    now = [100.0]
    slept = []

    def sleep(seconds):
        slept.append(round(seconds, 6))
        now[0] += seconds

    pacer = Pacer(0.05, 0.25, clock=lambda: now[0], sleep=sleep)
    pacer.wait()
    now[0] += 0.05  # a 50 ms step: sleeps the rest of its 200 ms
    pacer.wait()
    assert slept == [0.2, 0.15] and pacer.overruns == 0
    now[0] += 0.5  # a step of 500 ms: late by more than half a period, no sleep
    pacer.wait()
    assert pacer.overruns == 1 and len(slept) == 2
    now[0] += 0.01  # paced anew from the late step, not rushed to catch up
    pacer.wait()
    assert slept[-1] == pytest.approx(0.19)


def test_action_latch_applies_each_action_once_and_holds_the_gripper():
    from cliprt_core.eval.realtime import ActionLatch

    latch = ActionLatch()
    hold, fresh = latch.take()
    assert not fresh and list(hold) == [0, 0, 0, 0, 0, 0, -1]  # nothing yet: still, open
    latch.offer([0.1, 0, 0, 0, 0, 0, 1.0])
    latch.offer([0.2, 0, 0, 0, 0, 0, 1.0])  # the newest wins
    action, fresh = latch.take()
    assert fresh and action[0] == 0.2
    hold, fresh = latch.take()
    assert not fresh and list(hold) == [0, 0, 0, 0, 0, 0, 1.0]  # holds the closed gripper
    with pytest.raises(ValueError):
        latch.offer([1.0, 2.0])
    latch.clear()
    assert latch.take()[0][-1] == -1
