"""Image <-> numpy and JointTrajectory <-> chunk conversions, plus the ROS-free safety logic."""

from cliprt_core.eval.lockstep import Lockstep
from cliprt_core.safety import (ActionBounds, ActionGuard, ActionSafetyConfig, StalenessWatchdog,
                                UnsafeActionError)
import numpy as np
import pytest
from ros_utils import random_image, rclpy_available

ros = pytest.mark.skipif(not rclpy_available(), reason='rclpy / ROS message wheels not installed')


def _padded(rgb, encoding, pad):
    """Build an Image by hand (independently of rgb_to_image) with ``pad`` bytes per row."""
    from sensor_msgs.msg import Image

    if encoding == 'mono8':
        pixels = rgb[:, :, :1]
    else:
        pixels = {'rgb8': rgb, 'bgr8': rgb[:, :, ::-1]}.get(encoding)
        if pixels is None:
            alpha = np.full(rgb.shape[:2] + (1,), 7, np.uint8)
            base = rgb if encoding == 'rgba8' else rgb[:, :, ::-1]
            pixels = np.concatenate([base, alpha], axis=2)
    h, w, c = pixels.shape
    rows = np.zeros((h, w * c + pad), np.uint8)
    rows[:, :w * c] = pixels.reshape(h, w * c)
    rows[:, w * c:] = 0xAB  # garbage in the padding must not leak into the image
    msg = Image(height=h, width=w, encoding=encoding, step=w * c + pad)
    msg.data = rows.tobytes()
    return msg


@ros
@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8'])
@pytest.mark.parametrize('pad', [0, 5])
def test_image_to_rgb_all_encodings_with_step_padding(encoding, pad):
    from cliprt_ros.conversions import image_to_rgb

    rgb = random_image(1, 7)[:, :5].copy()  # non-square: catches height/width swaps
    out = image_to_rgb(_padded(rgb, encoding, pad))
    assert out.shape == (7, 5, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    expected = np.repeat(rgb[:, :, :1], 3, axis=2) if encoding == 'mono8' else rgb
    np.testing.assert_array_equal(out, expected)


@ros
def test_hot_path_conversions_copy_as_little_as_rclpy_allows():
    import array

    from cliprt_ros.conversions import image_to_rgb, rgb_to_image

    rgb = random_image(3, 16)
    msg = rgb_to_image(rgb)
    assert isinstance(msg.data, array.array) and msg.data.typecode == 'B'  # stored as is
    assert bytes(msg.data) == rgb.tobytes()
    out = image_to_rgb(msg)  # rgb8 without padding: a view of the message buffer
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))
    np.testing.assert_array_equal(out, rgb)


@ros
@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8'])
def test_rgb_to_image_round_trips_through_serialization(encoding):
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    from cliprt_ros.conversions import image_to_rgb, ns_to_stamp, rgb_to_image, stamp_to_ns

    rgb = random_image(2, 9)[:, :4].copy()
    stamp = ns_to_stamp(1_700_000_000_123_456_789)
    msg = rgb_to_image(rgb, stamp, 'cam', encoding)
    wire = deserialize_message(serialize_message(msg), Image)  # exactly what DDS carries
    assert wire.encoding == encoding and wire.header.frame_id == 'cam'
    assert stamp_to_ns(wire.header.stamp) == 1_700_000_000_123_456_789
    np.testing.assert_array_equal(image_to_rgb(wire), rgb)


@ros
@pytest.mark.parametrize('mutate, reason', [
    (lambda m: setattr(m, 'encoding', '16UC1'), 'unsupported image encoding'),
    (lambda m: setattr(m, 'encoding', 'yuv422'), 'unsupported image encoding'),
    (lambda m: setattr(m, 'data', bytes(m.data)[:-1]), 'needs'),
    (lambda m: setattr(m, 'height', m.height + 1), 'needs'),
    (lambda m: setattr(m, 'step', m.width * 3 - 1), 'smaller than'),
    (lambda m: (setattr(m, 'width', 0), setattr(m, 'step', 0)), 'empty image'),
])
def test_bad_images_raise_conversion_error_with_reason(mutate, reason):
    from cliprt_ros.conversions import ConversionError, image_to_rgb, rgb_to_image

    msg = rgb_to_image(random_image(3, 6))
    mutate(msg)
    with pytest.raises(ConversionError, match=reason):
        image_to_rgb(msg)


@ros
def test_chunk_trajectory_round_trip():
    from cliprt_ros.conversions import (ACTION_JOINT_NAMES, chunk_to_trajectory, ns_to_stamp,
                                        stamp_to_ns, trajectory_to_chunk)

    chunk = np.random.default_rng(0).uniform(-1, 1, (8, 7)).astype(np.float32)
    msg = chunk_to_trajectory(chunk, ns_to_stamp(5_000_000_001), 'base_link', 0.05)
    assert list(msg.joint_names) == list(ACTION_JOINT_NAMES) == [
        'dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper']
    assert msg.header.frame_id == 'base_link' and stamp_to_ns(msg.header.stamp) == 5_000_000_001
    assert len(msg.points) == 8
    times = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points]
    np.testing.assert_allclose(times, 0.05 * np.arange(1, 9), atol=1e-9)
    np.testing.assert_array_equal(trajectory_to_chunk(msg), chunk)  # float32 -> float64 exact
    single = chunk_to_trajectory(chunk[0], ns_to_stamp(1), 'f', 0.1)
    assert len(single.points) == 1


@ros
def test_trajectory_to_chunk_rejects_bad_trajectories():
    from cliprt_ros.conversions import (ConversionError, chunk_to_trajectory, ns_to_stamp,
                                        trajectory_to_chunk)

    good = chunk_to_trajectory(np.zeros((2, 7)), ns_to_stamp(1), 'f', 0.05)
    bad_names = chunk_to_trajectory(np.zeros((2, 7)), ns_to_stamp(1), 'f', 0.05)
    bad_names.joint_names = ['a'] * 7
    with pytest.raises(ConversionError, match='joint_names'):
        trajectory_to_chunk(bad_names)
    good.points[1].positions = [0.0] * 6
    with pytest.raises(ConversionError, match='6 positions'):
        trajectory_to_chunk(good)
    good.points[1].positions = [float('nan')] * 7
    with pytest.raises(ConversionError, match='non-finite'):
        trajectory_to_chunk(good)
    good.points = []
    with pytest.raises(ConversionError, match='no points'):
        trajectory_to_chunk(good)
    with pytest.raises(ConversionError):
        chunk_to_trajectory(np.zeros((2, 6)), ns_to_stamp(1), 'f', 0.05)


@ros
def test_qos_profiles():
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    from cliprt_ros import qos

    camera = qos.qos_by_name('sensor_data')
    assert camera.reliability == ReliabilityPolicy.BEST_EFFORT and camera.depth == 1
    assert qos.qos_by_name('reliable', 3).reliability == ReliabilityPolicy.RELIABLE
    latched = qos.latched_qos()
    assert latched.durability == DurabilityPolicy.TRANSIENT_LOCAL and latched.depth == 1
    with pytest.raises(ValueError, match='unknown QoS'):
        qos.qos_by_name('fast')


@ros
def test_silent_camera_hint_names_the_qos_mismatch(rclpy_context):
    """The policy node's "no image arrived" warning says why, from the publishers' real QoS."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from cliprt_ros import qos
    from ros_utils import spin_until, unique_namespace

    node = rclpy.create_node('qos_hint', namespace=unique_namespace())
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        topic = node.resolve_topic_name('camera/image_raw')
        node.create_publisher(Image, topic, qos.reliable_qos(1))
        assert spin_until(executor, lambda: node.count_publishers(topic) == 1, 10.0)
        assert 'not published yet' in qos.silent_publisher_hint(node, topic, 'reliable')
        assert 'try image_qos:=reliable' in qos.silent_publisher_hint(node, topic, 'sensor_data')
        node.create_publisher(Image, topic, qos.sensor_data_qos())
        assert spin_until(executor, lambda: node.count_publishers(topic) == 2, 10.0)
        assert 'set image_qos:=sensor_data' in qos.silent_publisher_hint(node, topic, 'reliable')
    finally:
        executor.shutdown()
        node.destroy_node()


# --------------------------------------------------------------------------- cliprt_core.safety

def test_action_guard_clips_and_refuses_non_finite():
    guard = ActionGuard(ActionBounds(action_low=(-1.0,) * 6 + (-0.5,), action_high=(1.0,) * 7))
    chunk = np.zeros((8, 7), np.float32)
    chunk[0, 0], chunk[1, 6] = 3.0, -2.0
    out = guard(chunk)
    assert out.dtype == np.float32 and out[0, 0] == 1.0 and out[1, 6] == -0.5
    assert guard.clipped_values == 2
    assert chunk[0, 0] == 3.0  # input untouched
    for bad in (np.nan, np.inf, -np.inf):
        chunk[3, 3] = bad
        with pytest.raises(UnsafeActionError, match='non-finite'):
            guard(chunk)
    with pytest.raises(UnsafeActionError, match='7 configured'):
        guard(np.zeros((8, 6)))
    assert guard.withheld == 4


@pytest.mark.parametrize('cls, kwargs, match', [
    ('bounds', {'action_low': (0.0,) * 7, 'action_high': (1.0,) * 6}, 'same length'),
    ('bounds', {'action_low': (2.0,) * 7}, 'dimension'),
    ('bounds', {'action_high': (float('inf'),) * 7}, 'finite'),
    ('safety', {'stale_image_timeout': float('nan')}, 'finite'),
])
def test_safety_config_validation(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        (ActionBounds if cls == 'bounds' else ActionSafetyConfig)(**kwargs)


def test_safety_config_loads_through_the_config_system():
    from cliprt_core.config import ConfigError, from_dict

    cfg = from_dict(ActionSafetyConfig, {'bounds': {'action_low': [-0.5] * 7},
                                         'stale_image_timeout': 1})
    assert cfg.bounds.action_low == (-0.5,) * 7 and cfg.stale_image_timeout == 1.0
    with pytest.raises(ConfigError, match='unknown'):
        from_dict(ActionSafetyConfig, {'action_low': [-0.5] * 7})


def test_staleness_watchdog():
    dog = StalenessWatchdog(0.5)
    assert dog.check(100.0, 100.2) is None
    assert 'stale' in dog.check(100.0, 100.6)
    assert 'no header.stamp' in dog.check(0.0, 100.0)
    assert 'future' in dog.check(101.0, 100.0)
    assert dog.rejected == 3
    assert dog.tick(100.4) == (False, False)
    assert dog.tick(100.8) == (True, True)  # no fresh input since 100.2
    assert dog.tick(100.9) == (True, False)
    assert dog.check(100.9, 100.95) is None
    assert dog.tick(101.0) == (False, True)
    off = StalenessWatchdog(0.0)
    assert off.check(0.0, 1e9) is None and off.tick(1e9) == (False, False)


def test_lockstep_accepts_only_the_answer_to_the_latest_observation():
    gate = Lockstep(timeout=2.0)
    gate.expect(1, now=10.0)
    assert not gate.offer(99)  # never issued
    assert gate.offer(1)
    assert not gate.offer(1)  # duplicate answer: stale
    gate.expect(2, now=11.0)
    gate.expect(3, now=11.5)  # 2 superseded (e.g. resent)
    assert not gate.offer(2)
    assert not gate.expired(13.0) and gate.expired(13.6)
    assert gate.waited(12.5) == pytest.approx(1.0)
    assert gate.offer(3)
    assert (gate.accepted, gate.stale, gate.mismatched) == (2, 2, 1)
    assert not gate.expired(100.0)  # nothing pending
    with pytest.raises(ValueError, match='already used'):
        gate.expect(3, now=20.0)
    gate.expect(4, now=20.0)
    gate.cancel()
    assert not gate.offer(4) and gate.stale == 3
