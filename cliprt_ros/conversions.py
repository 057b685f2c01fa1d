"""
Message <-> numpy conversions (no cv_bridge needed).

Images: ``sensor_msgs/Image`` in rgb8, bgr8, rgba8, bgra8 or mono8 (row ``step`` padding
handled) <-> upright ``HxWx3`` uint8 RGB arrays. Action chunks: ``(T, 7)`` float arrays <->
``trajectory_msgs/JointTrajectory`` with the joint names of :data:`ACTION_JOINT_NAMES`, one point
per chunk step and ``time_from_start`` at multiples of the control period.

The hot path copies as little as rclpy allows: an outgoing image is one copy from the numpy
buffer into the message's ``array('B')`` (no intermediate ``bytes``), an incoming rgb8 image is
a zero-copy numpy view of the message's buffer (bgr8 / mono8 / rgba8 / padded rows need one).
"""

import array

from builtin_interfaces.msg import Duration, Time
from cliprt_core.actions.space import ACTION_NAMES
import numpy as np
from sensor_msgs.msg import Image
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

ACTION_JOINT_NAMES = ACTION_NAMES
ENCODING_CHANNELS = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1}


class ConversionError(ValueError):
    """A message cannot be converted (unknown encoding, inconsistent size, wrong layout)."""


def image_to_rgb(msg):
    """Return an ``HxWx3`` uint8 RGB array of a ``sensor_msgs/Image`` (rgb8: a view of it)."""
    channels = ENCODING_CHANNELS.get(msg.encoding)
    if channels is None:
        raise ConversionError(f'unsupported image encoding {msg.encoding!r}; expected one of '
                              f'{", ".join(ENCODING_CHANNELS)}')
    height, width, step = msg.height, msg.width, msg.step
    row_bytes = width * channels
    if height == 0 or width == 0:
        raise ConversionError(f'empty image ({width}x{height})')
    if step < row_bytes:
        raise ConversionError(f'step {step} is smaller than width*channels = {row_bytes}')
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != step * height:
        raise ConversionError(f'image data has {data.size} bytes; {msg.encoding} {width}x{height}'
                              f' with step {step} needs {step * height}')
    pixels = data.reshape(height, step)[:, :row_bytes].reshape(height, width, channels)
    if msg.encoding == 'mono8':
        return np.repeat(pixels, 3, axis=2)
    if msg.encoding.startswith('bgr'):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return np.ascontiguousarray(pixels[:, :, :3])


def rgb_to_image(rgb, stamp=None, frame_id='', encoding='rgb8'):
    """Return a ``sensor_msgs/Image`` (no padding) from an ``HxWx3`` uint8 RGB array."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ConversionError(f'expected an HxWx3 uint8 RGB array, got {rgb.shape} {rgb.dtype}')
    if encoding in ('bgr8', 'bgra8'):
        pixels = rgb[:, :, ::-1]
    elif encoding in ('rgb8', 'rgba8'):
        pixels = rgb
    elif encoding == 'mono8':
        pixels = rgb.mean(axis=2, keepdims=True).round().astype(np.uint8)
    else:
        raise ConversionError(f'unsupported image encoding {encoding!r}')
    if ENCODING_CHANNELS[encoding] == 4:
        alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
        pixels = np.concatenate([pixels, alpha], axis=2)
    pixels = np.ascontiguousarray(pixels)
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
                is_bigendian=0, step=pixels.shape[1] * pixels.shape[2])
    data = array.array('B')
    data.frombytes(pixels)  # one copy from the numpy buffer (tobytes() would add another)
    msg.data = data
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


def chunk_to_trajectory(actions, stamp, frame_id, period):
    """Return a ``JointTrajectory``: one point per row of ``actions`` (``(T, 7)`` or ``(7,)``)."""
    actions = np.asarray(actions, dtype=np.float64)
    if actions.ndim == 1:
        actions = actions[None]
    if actions.ndim != 2 or actions.shape[1] != len(ACTION_JOINT_NAMES):
        raise ConversionError(f'expected (T, {len(ACTION_JOINT_NAMES)}) actions, '
                              f'got {actions.shape}')
    msg = JointTrajectory()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.joint_names = list(ACTION_JOINT_NAMES)
    for step, row in enumerate(actions, start=1):
        msg.points.append(JointTrajectoryPoint(
            positions=array.array('d', row.tobytes()),
            time_from_start=seconds_to_duration(step * period)))
    return msg


def trajectory_to_chunk(msg):
    """Return the ``(T, 7)`` float32 chunk of an action ``JointTrajectory`` (validated)."""
    if list(msg.joint_names) != list(ACTION_JOINT_NAMES):
        raise ConversionError(f'joint_names {list(msg.joint_names)} != {list(ACTION_JOINT_NAMES)}')
    if not msg.points:
        raise ConversionError('trajectory has no points')
    rows = [np.asarray(point.positions, dtype=np.float64) for point in msg.points]
    for i, row in enumerate(rows):
        if row.shape != (len(ACTION_JOINT_NAMES),):
            raise ConversionError(f'point {i} has {row.size} positions, expected '
                                  f'{len(ACTION_JOINT_NAMES)}')
    chunk = np.stack(rows).astype(np.float32)
    if not np.isfinite(chunk).all():
        raise ConversionError('trajectory contains non-finite positions')
    return chunk


def stamp_to_ns(stamp):
    """``builtin_interfaces/Time`` -> integer nanoseconds (exact, usable as a key)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns):
    """Integer nanoseconds -> ``builtin_interfaces/Time``."""
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def seconds_to_duration(seconds):
    """Float seconds -> ``builtin_interfaces/Duration`` (rounded to whole nanoseconds)."""
    ns = int(round(seconds * 1e9))
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
