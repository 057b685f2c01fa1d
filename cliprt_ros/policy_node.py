"""
ROS 2 policy node: camera image + instruction in, CLIP-RT action chunks out.

Topics (relative names, so namespaces and remapping work):

* ``instruction`` (``std_msgs/String``, reliable, transient local, depth 1) - subscribed.
* ``camera/image_raw`` (``sensor_msgs/Image``, QoS from ``image_qos``) - subscribed.
* ``action_chunk`` (``trajectory_msgs/JointTrajectory``, reliable depth 10) - published, one per
  answered image; ``header.stamp`` = the image's stamp, ``header.frame_id`` = ``action_frame_id``.
* ``primitive`` (``std_msgs/String``, reliable depth 10) - published by the discrete model only.
* ``~/enable`` (``std_srvs/SetBool``) - service; same effect as the ``enabled`` parameter.

All model work runs on one model thread: an image that arrives while the model is busy is
dropped (counted), never queued behind it, and the executor stays responsive. All safety decisions
(bounds, finite values, stale images) are made by :mod:`cliprt_core.safety`.
"""

from concurrent.futures import ThreadPoolExecutor
import sys
import threading
import time

from cliprt_core.safety import (ActionGuard, ActionSafetyConfig, StalenessWatchdog,
                                UnsafeActionError)
from cliprt_ros import conversions
from cliprt_ros.qos import latched_qos, qos_by_name, QOS_NAMES, reliable_qos
from cliprt_ros.spin import run_node
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

NODE_NAME = 'policy_node'

#: Every parameter the node declares: name -> (default, description). Launch files and
#: config/nodes/policy_node.yaml are checked against this dict by the tests.
PARAMETERS = {
    'checkpoint': ('', 'cliprt checkpoint path, official CLIP-RT file or Hugging Face hub id; '
                       'empty = random weights from model_config (demos and tests)'),
    'model_config': ('', 'model config name/path: the architecture of the random weights '
                         '(empty = cliprt-tiny) or of an official checkpoint (empty = the '
                         'published ViT-H-14-378 one); cliprt checkpoints carry their own'),
    'seed': (0, 'seed of the random weights when checkpoint is empty'),
    'backend': ('torch', 'inference backend: torch | compile | onnx | tensorrt'),
    'device': ('', 'torch device (cpu, cuda, cuda:1); empty = cuda if available, else cpu'),
    'dtype': ('auto', 'model dtype: auto (bf16/fp16 on GPU, fp32 on CPU) | fp32 | bf16 | '
                      'fp16'),
    'image_qos': ('sensor_data', 'camera QoS: sensor_data (best effort, depth 1; cameras) | '
                                 'reliable (simulator lockstep)'),
    'action_frame_id': ('base_link', 'header.frame_id of action_chunk: the frame the deltas are '
                                     'expressed in'),
    'control_period': (0.05, 'seconds between the points of a chunk (time_from_start)'),
    'action_low': ([-1.0] * 7, 'lower bounds of dx, dy, dz, droll, dpitch, dyaw, gripper '
                               '(actions are clipped)'),
    'action_high': ([1.0] * 7, 'upper bounds of the 7 action dimensions (actions are clipped)'),
    'stale_image_timeout': (0.5, 'seconds; an image older than this (header.stamp vs the node '
                                 'clock) is never answered; <= 0 disables'),
    'enabled': (True, 'publish actions (also the ~/enable service); false = answer nothing'),
    'warmup': (True, 'run one dummy query at startup so the first real answer is fast'),
}
_DYNAMIC = {'enabled'}


class PolicyNode(Node):
    """Answer each fresh camera image with one action chunk once an instruction is known."""

    def __init__(self, policy=None, **node_kwargs):
        """Declare parameters, load the model (unless ``policy`` is given), create the I/O."""
        super().__init__(NODE_NAME, **node_kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(
                description=description, read_only=name not in _DYNAMIC))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        if p['image_qos'] not in QOS_NAMES:
            raise ValueError(f'image_qos must be one of {QOS_NAMES}, got {p["image_qos"]!r}')
        if p['control_period'] <= 0:
            raise ValueError(f'control_period must be > 0, got {p["control_period"]}')
        safety = ActionSafetyConfig(action_low=tuple(p['action_low']),
                                    action_high=tuple(p['action_high']),
                                    stale_image_timeout=p['stale_image_timeout'])
        self.guard = ActionGuard(safety)
        self.watchdog = StalenessWatchdog(safety.stale_image_timeout)
        self.frame_id = p['action_frame_id']
        self.period = p['control_period']
        self.enabled = p['enabled']
        self.instruction = None  # set once an instruction has been accepted by the policy
        # Every torch call (load, warm-up, instruction encoding, queries) runs on this one thread:
        # model work stays serialized, the executor stays responsive, and torch keeps a single
        # OpenMP thread team (a second team from another thread costs ~3x per query on CPU).
        self._model = ThreadPoolExecutor(max_workers=1, thread_name_prefix='policy_model')
        self._cond = threading.Condition()
        self._busy = False

        try:
            self._set_policy(policy, p)
        except BaseException:
            self._model.shutdown(wait=False, cancel_futures=True)
            raise

        self.stats = {'images': 0, 'answered': 0, 'dropped_busy': 0, 'rejected': 0,
                      'withheld': 0, 'disabled': 0, 'no_instruction': 0, 'instructions': 0}
        self.last_reason = None
        self._log_times = {}

        # Instruction first: with both ready, the executor handles it before an image.
        self.create_subscription(String, 'instruction', self._on_instruction, latched_qos())
        self.create_subscription(Image, 'camera/image_raw', self._on_image,
                                 qos_by_name(p['image_qos'], 1))
        self.chunk_pub = self.create_publisher(JointTrajectory, 'action_chunk', reliable_qos(10))
        self.primitive_pub = (self.create_publisher(String, 'primitive', reliable_qos(10))
                              if self.discrete else None)
        self.create_service(SetBool, '~/enable', self._on_enable)
        self.add_post_set_parameters_callback(self._on_parameters)
        if self.watchdog.enabled:
            self.create_timer(min(0.1, self.watchdog.timeout / 2), self._on_watchdog)
        self.get_logger().info(
            f'ready: {"discrete" if self.discrete else "chunk"} policy, image_qos='
            f'{p["image_qos"]}, bounds {list(self.guard.low)}..{list(self.guard.high)}, '
            f'stale_image_timeout={self.watchdog.timeout} s, enabled={self.enabled}')

    def _set_policy(self, policy, p):
        if policy is None:
            started = time.monotonic()
            from cliprt_core.inference.factory import build_policy  # torch loads here

            policy = self._on_model(lambda: build_policy(
                p['checkpoint'], p['model_config'], device=p['device'], dtype=p['dtype'],
                backend=p['backend'], seed=p['seed']))
            self.get_logger().info(
                f'loaded {policy.config.name} ({policy.config.head} head) on {policy.device} '
                f'in {time.monotonic() - started:.1f} s')
        self.policy = policy
        self.discrete = policy.config.head == 'discrete'
        action_dim = (len(policy.vocabulary.dimensions) if self.discrete
                      else policy.config.action_dim)
        if action_dim != self.guard.action_dim:
            raise ValueError(f'the model outputs {action_dim}-D actions but action_low/high '
                             f'have {self.guard.action_dim} values')
        if p['warmup']:
            self._on_model(self._warmup)

    # --- callbacks (executor thread) -------------------------------------------------------------
    def _on_instruction(self, msg):
        from cliprt_core.inference import PolicyInputError

        try:
            self.instruction = self._on_model(self._reset, msg.data)
        except RuntimeError as exc:  # the node is being destroyed
            if 'shutdown' in str(exc):
                return
            raise
        except PolicyInputError as exc:
            self._reject('instruction', f'instruction ignored: {exc}')
            return
        self.stats['instructions'] += 1
        self.get_logger().info(f'instruction: {self.instruction!r}')

    def _on_image(self, msg):
        self.stats['images'] += 1
        if not self.enabled:
            self.stats['disabled'] += 1
            return
        if self.instruction is None:
            self.stats['no_instruction'] += 1
            self._log('no_instruction', 'image ignored: no instruction received yet on '
                      f'{self.resolve_topic_name("instruction")}')
            return
        stamp = conversions.stamp_to_ns(msg.header.stamp) / 1e9
        reason = self.watchdog.check(stamp, self._now())
        if reason is not None:
            self._reject('stale', f'image ignored: {reason}')
            return
        try:
            rgb = conversions.image_to_rgb(msg)
        except conversions.ConversionError as exc:
            self._reject('image', f'image ignored: {exc}')
            return
        with self._cond:
            if self._busy:  # never queued behind the model: dropped
                self.stats['dropped_busy'] += 1
                return
            self._busy = True
        try:
            self._model.submit(self._work, rgb, msg.header.stamp, stamp)
        except RuntimeError:  # the node is being destroyed
            self._busy = False

    def _on_enable(self, request, response):
        self.set_parameters([Parameter('enabled', Parameter.Type.BOOL, bool(request.data))])
        response.success = True
        response.message = 'enabled' if self.enabled else 'disabled'
        return response

    def _on_parameters(self, parameters):
        for param in parameters:
            if param.name == 'enabled':
                self.enabled = bool(param.value)
                self.get_logger().info(f'actions {"enabled" if self.enabled else "disabled"}')
        return SetParametersResult(successful=True)

    def _on_watchdog(self):
        stale, changed = self.watchdog.tick(self._now())
        if changed and stale:
            self.get_logger().warning(
                f'camera stale: no fresh image for {self.watchdog.timeout} s; not publishing '
                'actions')
        elif changed:
            self.get_logger().info('camera fresh again')

    # --- inference (model thread) ----------------------------------------------------------------
    def _on_model(self, function, *args):
        """Run ``function`` on the model thread and return its result (or raise its error)."""
        return self._model.submit(function, *args).result()

    def _reset(self, instruction):
        self.policy.reset(instruction)
        return self.policy.instruction

    def _work(self, rgb, stamp_msg, stamp):
        reply = None
        try:
            reply = self._answer(rgb, stamp_msg, stamp)
        except Exception as exc:  # noqa: B902 - keep serving; report the reason
            self._reject('error', f'query failed: {type(exc).__name__}: {exc}')
        finally:
            with self._cond:
                self._busy = False  # before publishing: the answer's reply is not dropped
        if reply is not None:
            try:
                self._publish(*reply)
            except Exception as exc:  # noqa: B902 - e.g. ROS shut down by a signal meanwhile
                if rclpy.ok(context=self.context):
                    self._reject('error', f'publishing failed: {type(exc).__name__}: {exc}')

    def _publish(self, trajectory, phrase):
        self.chunk_pub.publish(trajectory)
        if phrase is not None:
            self.primitive_pub.publish(String(data=phrase))
        self.stats['answered'] += 1

    def _answer(self, rgb, stamp_msg, stamp):
        """Query the model; return ``(trajectory, phrase)`` to publish, or None (withheld)."""
        from cliprt_core.inference import NonFiniteActionError, PolicyInputError

        try:
            if self.policy.instruction != self.instruction:  # a Policy shared with others
                self.policy.reset(self.instruction)
            output = self.policy.act(rgb)
        except (PolicyInputError, NonFiniteActionError) as exc:
            self._withhold(f'no action: {exc}')
            return None
        phrase = None
        if self.discrete:
            phrase, actions = output.phrase, output.action
        else:
            actions = output
        try:
            actions = self.guard(actions)
        except UnsafeActionError as exc:
            self._withhold(f'action withheld: {exc}')
            return None
        if not self.enabled:
            self.stats['disabled'] += 1
            return None
        if not self.watchdog.is_fresh(stamp, self._now()):
            self._withhold(f'action withheld: the image went stale during inference (> '
                           f'{self.watchdog.timeout} s)')
            return None
        trajectory = conversions.chunk_to_trajectory(actions, stamp_msg, self.frame_id,
                                                     self.period)
        return trajectory, phrase

    # --- helpers ---------------------------------------------------------------------------------
    def _warmup(self):
        import numpy as np

        size = self.policy.model.image_size
        self.policy.act_batch([np.zeros((size, size, 3), np.uint8)], ['warm up'])

    def _now(self):
        return self.get_clock().now().nanoseconds / 1e9

    def _reject(self, kind, reason):
        self.stats['rejected'] += 1
        self.last_reason = reason
        self._log(kind, reason)

    def _withhold(self, reason):
        self.stats['withheld'] += 1
        self.last_reason = reason
        self._log('withheld', reason, error=True)

    def _log(self, kind, reason, error=False, period=2.0):
        """Log ``reason``; repeats of the same kind are throttled to one per ``period`` s."""
        now = time.monotonic()
        if now - self._log_times.get(kind, -period) < period:
            return
        self._log_times[kind] = now
        (self.get_logger().error if error else self.get_logger().warning)(reason)

    def destroy_node(self):
        """Let a running query finish (queued work is dropped), then destroy the node."""
        self._model.shutdown(wait=True, cancel_futures=True)
        return super().destroy_node()


def main(args=None):
    """Entry point of ``ros2 run cliprt_ros policy_node``; SIGINT/SIGTERM exit cleanly (0)."""
    return run_node(PolicyNode, NODE_NAME, args=args)


if __name__ == '__main__':
    sys.exit(main())
