"""policy_node serving several robots over real DDS: one batch, each answer on its own robot."""

import threading

import numpy as np
import pytest
from ros_utils import (DISCOVERY_S, Driver, random_image, rclpy_available, spin_for, spin_until,
                       unique_namespace)

pytestmark = pytest.mark.skipif(not rclpy_available(), reason='rclpy wheels not installed')

ANSWER_S = 20.0
ROBOTS = ('r0', 'r1', 'r2')
TEXTS = ('open the drawer', 'close the drawer', 'pick up the bowl')


class GatedPolicy:
    """The real tiny policy; each model call records its batch and waits for the gate."""

    def __init__(self, policy):
        self._policy = policy
        self.calls = []  # (kind, instructions)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __getattr__(self, name):
        return getattr(self._policy, name)

    def _wait(self, kind, texts):
        self.calls.append((kind, tuple(texts)))
        self.entered.set()
        assert self.gate.wait(60.0), 'the test never opened the gate'

    def act(self, image):
        self._wait('act', [self._policy.instruction])
        return self._policy.act(image)

    def act_batch(self, images, instructions):
        self._wait('batch', instructions)
        return self._policy.act_batch(images, instructions)


@pytest.fixture
def multi(rclpy_context, tiny_policy):
    """A policy node serving ROBOTS in a fresh namespace, a Driver per robot, one executor."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from cliprt_ros.policy_node import PolicyNode

    made = []

    def make(policy=None, **params):
        params = {'image_qos': 'reliable', 'warmup': False, 'robots': ','.join(ROBOTS),
                  **params}
        namespace = unique_namespace()
        node = PolicyNode(policy=policy or tiny_policy, namespace=namespace,
                          parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        drivers = [Driver(f'{namespace}/{robot}', name=f'driver_{robot}') for robot in ROBOTS]
        executor = SingleThreadedExecutor()
        for each in (node, *(d.node for d in drivers)):
            executor.add_node(each)
        made.append((executor, node, drivers))
        assert spin_until(executor, lambda: all(d.connected() for d in drivers), DISCOVERY_S)
        for driver, text in zip(drivers, TEXTS):
            driver.instruct(text)
        assert spin_until(executor, lambda: all(p.instruction for p in node.ports), DISCOVERY_S)
        return executor, node, drivers

    yield make
    for executor, node, drivers in made:
        executor.shutdown()
        node.destroy_node()
        for driver in drivers:
            driver.destroy()


def _expected(policy, text, rgb):
    policy.reset(text)
    return np.clip(policy.act(rgb), -1.0, 1.0)


def test_pending_images_of_all_robots_are_answered_in_one_batch_each_on_its_own_topic(
        multi, tiny_policy):
    from cliprt_ros.conversions import stamp_to_ns, trajectory_to_chunk

    gated = GatedPolicy(tiny_policy)
    executor, node, drivers = multi(policy=gated, stale_image_timeout=60.0)
    assert [p.instruction for p in node.ports] == list(TEXTS)
    images = [random_image(seed) for seed in range(len(ROBOTS))]
    try:
        first = drivers[0].send_image(images[0])
        assert spin_until(executor, gated.entered.is_set, ANSWER_S)
        # The model is busy with robot 0: the other robots' images wait for the next batch.
        stamps = [first] + [d.send_image(img) for d, img in zip(drivers[1:], images[1:])]
        assert spin_until(executor, lambda: node.stats['images'] == 3, ANSWER_S), node.stats
    finally:
        gated.gate.set()
    assert spin_until(executor, lambda: all(d.chunks for d in drivers), ANSWER_S), node.stats
    spin_for(executor, 0.3)
    assert gated.calls == [('act', (TEXTS[0],)), ('batch', TEXTS[1:])]
    for driver, stamp, text, rgb in zip(drivers, stamps, TEXTS, images):
        (msg,) = driver.chunks  # one answer per robot, none of another robot's
        assert stamp_to_ns(msg.header.stamp) == stamp_to_ns(stamp)
        np.testing.assert_array_equal(trajectory_to_chunk(msg), _expected(tiny_policy, text, rgb))
    assert node.stats['answered'] == 3 and node.stats['dropped_busy'] == 0
    assert [p.stats['answered'] for p in node.ports] == [1, 1, 1]


def test_a_stale_or_uninstructed_robot_gets_nothing_while_the_others_are_answered(
        multi, tiny_policy):
    from cliprt_ros.conversions import stamp_to_ns
    from std_msgs.msg import String

    executor, node, drivers = multi(stale_image_timeout=0.5)
    stale = drivers[1].node.get_clock().now().to_msg()
    stale.sec -= 10
    drivers[1].send_image(random_image(1), stale)
    drivers[2].instruct('')  # rejected: robot 2 keeps its previous instruction
    fresh = drivers[0].send_image(random_image(0))
    assert spin_until(executor, lambda: drivers[0].chunks, ANSWER_S)
    spin_for(executor, 0.3)
    assert [stamp_to_ns(c.header.stamp) for c in drivers[0].chunks] == [stamp_to_ns(fresh)]
    assert not drivers[1].chunks and node.ports[1].stats['rejected'] == 1
    assert node.ports[0].stats['rejected'] == 0 and node.ports[2].instruction == TEXTS[2]
    assert 'r2' in node.last_reason or node.ports[2].stats['rejected'] == 1
    drivers[2].instruction_pub.publish(String(data=TEXTS[0]))
    assert spin_until(executor, lambda: node.ports[2].instruction == TEXTS[0], DISCOVERY_S)
    assert node.ports[0].instruction == TEXTS[0] and node.ports[1].instruction == TEXTS[1]


@pytest.mark.parametrize('robots', ['env0,env0', 'env 1', 'env0,,env1', '1robot'])
def test_invalid_robot_lists_are_config_errors(robots):
    from cliprt_core.config import ConfigError
    from cliprt_ros.settings import PolicyNodeConfig

    with pytest.raises(ConfigError, match='robots'):
        PolicyNodeConfig(robots=robots)
    assert PolicyNodeConfig(robots=' env0, /sim/env1 ').robots == ' env0, /sim/env1 '
