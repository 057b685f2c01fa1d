"""
ROS 2 policy node: camera image + instruction in, CLIP-RT action chunks out.

Topics (relative names, so namespaces and remapping work):

* ``instruction`` (``std_msgs/String``) - subscribed twice, so every publisher is accepted: a
  reliable volatile subscription (``ros2 topic pub`` and default-QoS publishers) and a
  transient-local one (a latched instruction reaches a node that starts later).
* ``camera/image_raw`` (``sensor_msgs/Image``, QoS from ``image_qos``) - subscribed.
* ``action_chunk`` (``trajectory_msgs/JointTrajectory``, reliable depth 10) - published, one per
  answered image; ``header.stamp`` = the image's stamp, ``header.frame_id`` = ``action_frame_id``.
* ``primitive`` (``std_msgs/String``, reliable depth 10) - published by the discrete model only.
* ``chunk_request`` (``std_msgs/Header``) - subscribed; with ``query_mode: on_request`` only a
  request (from the ``action_executor``) makes the node answer its newest fresh image.
* ``~/enable`` (``std_srvs/SetBool``) - service; same effect as the ``enabled`` parameter.
* ``/diagnostics`` (``diagnostic_msgs/DiagnosticArray``) - once per second: query latency
  p50/p99, answered / dropped / withheld, answer rate, image age, lifecycle state.

A managed (lifecycle) node: ``configure`` loads the model and creates the topics, ``activate``
starts answering, ``deactivate`` stops, ``cleanup`` frees the model. With ``autostart`` (the
default) it configures and activates itself at start-up; ``autostart:=false`` waits for
``ros2 lifecycle set /policy_node configure`` / ``activate``.

Parameters are the settings of :class:`cliprt_ros.settings.PolicyNodeConfig`; an unknown one is
a start-up error. All model work runs on one model thread: an image that arrives while the model
is busy is dropped (counted), never queued behind it, and the executor stays responsive. All
safety decisions (bounds, finite values, stale images) are made by :mod:`cliprt_core.safety`.
"""

from concurrent.futures import ThreadPoolExecutor
import sys
import threading
import time

from cliprt_core.runtime_stats import RollingWindow
from cliprt_core.safety import ActionGuard, StalenessWatchdog, UnsafeActionError
from cliprt_ros import conversions, diagnostics
from cliprt_ros.parameters import declare_config, read_config
from cliprt_ros.qos import latched_qos, qos_by_name, reliable_qos, silent_qos_events
from cliprt_ros.settings import POLICY_NODE_DYNAMIC, PolicyNodeConfig
from cliprt_ros.spin import run_node
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

NODE_NAME = 'policy_node'
#: Seconds without any image while a camera publisher exists before the node says so.
SILENT_CAMERA_S = 3.0


class PolicyNode(LifecycleNode):
    """Answer fresh camera images with action chunks once an instruction is known."""

    def __init__(self, policy=None, **node_kwargs):
        """Declare parameters; with ``autostart`` configure (load ``policy``) and activate."""
        super().__init__(NODE_NAME, **node_kwargs)
        declare_config(self, PolicyNodeConfig, dynamic=POLICY_NODE_DYNAMIC)
        self.config = read_config(self, PolicyNodeConfig)
        self._given_policy = policy
        self.policy = None
        self.active = False
        self.configure_error = None
        # Every torch call (load, warm-up, instruction encoding, queries) runs on this one thread:
        # model work stays serialized, the executor stays responsive, and torch keeps a single
        # OpenMP thread team (a second team from another thread costs ~3x per query on CPU).
        self._model = ThreadPoolExecutor(max_workers=1, thread_name_prefix='policy_model')
        self._cond = threading.Condition()
        self._busy = False
        self._io = []  # subscriptions, publishers, services and timers made by configure
        self.stats = dict.fromkeys(('images', 'answered', 'dropped_busy', 'rejected', 'withheld',
                                    'disabled', 'no_instruction', 'instructions', 'inactive',
                                    'requests'), 0)
        self.query_latency = RollingWindow()  # seconds of model time per answered query
        self.image_age = RollingWindow()  # seconds from the image stamp to the published chunk
        self.last_reason = None
        self._log_times = {}
        self.diagnostics_pub = diagnostics.create_diagnostics_publisher(self)
        self.create_timer(1.0, self._on_diagnostics)
        if self.config.autostart:
            self._autostart()

    def _autostart(self):
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            self._model.shutdown(wait=False, cancel_futures=True)
            raise self.configure_error or RuntimeError('configure failed')
        self.trigger_activate()

    # --- lifecycle -------------------------------------------------------------------------------
    def on_configure(self, state):
        """Read the parameters, load the model, create the topics."""
        try:
            self._configure()
        except Exception as exc:  # noqa: B902 - a failed transition reports, never raises
            self.configure_error = exc
            self._destroy_io()
            self.get_logger().error(f'configure failed: {exc}')
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state):
        """Start answering images."""
        self.active = True
        self.watchdog.reset()
        self._last_image = time.monotonic()
        self.get_logger().info(f'ready: active, answering images on {self._camera_topic} '
                               f'({self.config.query_mode})')
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state):
        """Stop answering (a query in flight is not published)."""
        self.active = False
        self.get_logger().info('inactive: not answering images')
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state):
        """Destroy the topics and free the model."""
        self._destroy_io()
        self._on_model(self._free_model)
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state):
        """Stop answering and free everything."""
        self.active = False
        return self.on_cleanup(state)

    def _configure(self):
        self.config = config = read_config(self, PolicyNodeConfig)
        self.guard = ActionGuard(config.safety.bounds)
        self.watchdog = StalenessWatchdog(config.safety.stale_image_timeout)
        self.frame_id = config.action_frame_id
        self.period = config.control_period
        self.enabled = config.enabled
        self.instruction = None  # set once an instruction has been accepted by the policy
        self._instruction_text = None  # the last instruction message seen
        self._latest = None  # (rgb, stamp msg, stamp s) of the newest fresh unanswered image
        self._request_pending = False
        self._last_image = time.monotonic()
        self._set_policy(self._given_policy)

        # Instruction first: with both ready, the executor handles it before an image. The
        # volatile subscription matches every publisher (ros2 topic pub); the transient-local
        # one gets a latched instruction published before this node started (its QoS mismatch
        # with volatile publishers is expected, so that event is not logged).
        self._io = [
            self.create_subscription(String, 'instruction', self._on_instruction,
                                     reliable_qos(10)),
            self.create_subscription(String, 'instruction', self._on_instruction, latched_qos(),
                                     event_callbacks=silent_qos_events()),
            self.create_subscription(Image, 'camera/image_raw', self._on_image,
                                     qos_by_name(config.image_qos, 1)),
            self.create_subscription(Header, 'chunk_request', self._on_request,
                                     reliable_qos(10)),
            self.create_service(SetBool, '~/enable', self._on_enable),
            self.create_timer(0.1, self._on_watchdog),
        ]
        self.chunk_pub = self.create_publisher(JointTrajectory, 'action_chunk', reliable_qos(10))
        self.primitive_pub = (self.create_publisher(String, 'primitive', reliable_qos(10))
                              if self.discrete else None)
        self._io += [pub for pub in (self.chunk_pub, self.primitive_pub) if pub is not None]
        if not getattr(self, '_parameters_callback', False):
            self.add_post_set_parameters_callback(self._on_parameters)
            self._parameters_callback = True
        self._camera_topic = self.resolve_topic_name('camera/image_raw')
        self.get_logger().info(
            f'configured: {"discrete" if self.discrete else "chunk"} policy, image_qos='
            f'{config.image_qos}, query_mode={config.query_mode}, bounds '
            f'{list(self.guard.low)}..{list(self.guard.high)}, stale_image_timeout='
            f'{self.watchdog.timeout} s, enabled={self.enabled}')

    def _destroy_io(self):
        destroy = {'Subscription': self.destroy_subscription, 'Publisher': self.destroy_publisher,
                   'Service': self.destroy_service, 'Timer': self.destroy_timer}
        for entity in self._io:
            destroy[type(entity).__name__](entity)
        self._io = []

    def _free_model(self):
        self.policy = None
        self.instruction = None
        self._instruction_text = None

    def _set_policy(self, policy):
        if policy is None and self.policy is not None:
            policy = self.policy  # reconfigured without cleanup: keep the loaded model
        if policy is None:
            started = time.monotonic()
            # torch loads here
            from cliprt_core.inference.factory import describe_weights, load_policy

            settings = self.config.policy
            policy = self._on_model(load_policy, settings)
            loaded = self._on_model(describe_weights, policy, settings)
            log = self.get_logger()
            message = (f'loaded {policy.config.name} ({policy.head.name} head) on '
                       f'{policy.device} in {time.monotonic() - started:.1f} s: {loaded}')
            if settings.checkpoint:
                log.info(message)
            else:
                log.warning(message)
        self.policy = policy
        self.discrete = policy.head.outputs_phrases
        if policy.action_dim != self.guard.action_dim:
            raise ValueError(f'the model outputs {policy.action_dim}-D actions but action_low/'
                             f'high have {self.guard.action_dim} values')
        if self.config.warmup:
            self._on_model(self._warmup)

    # --- callbacks (executor thread) -------------------------------------------------------------
    def _on_instruction(self, msg):
        from cliprt_core.inference import PolicyInputError

        if msg.data == self._instruction_text:
            return  # the same message through the second subscription (or a repeat)
        self._instruction_text = msg.data
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
        self._last_image = time.monotonic()
        try:
            rgb = conversions.image_to_rgb(msg)
        except conversions.ConversionError as exc:  # malformed: never counts as a fresh image
            self._reject('image', f'image ignored: {exc}')
            return
        stamp = conversions.stamp_to_ns(msg.header.stamp) / 1e9
        reason = self.watchdog.check(stamp, self._now())
        if not self.active:
            self.stats['inactive'] += 1
            return
        if not self.enabled:
            self.stats['disabled'] += 1
            return
        if reason is not None:
            self._reject('stale', f'image ignored: {reason}')
            return
        if self.instruction is None:
            self.stats['no_instruction'] += 1
            self._log('no_instruction', 'image ignored: no instruction received yet on '
                      f'{self.resolve_topic_name("instruction")}')
            return
        image = (rgb, msg.header.stamp, stamp)
        if self.config.query_mode == 'every_image':
            self._query(image, count_busy=True)
            return
        with self._cond:
            self._latest = image
        if self._request_pending:
            self._answer_request()

    def _on_request(self, msg):
        if self.config.query_mode != 'on_request':
            return
        self.stats['requests'] += 1
        self._request_pending = True
        self._answer_request()

    def _answer_request(self):
        """Query the newest fresh image for a pending request (or wait for the next one)."""
        with self._cond:
            image, busy = self._latest, self._busy
        if image is None or busy or not self.watchdog.is_fresh(image[2], self._now()):
            return  # the next image (or the end of the running query) answers the request
        if self._query(image, count_busy=False):
            self._request_pending = False
            with self._cond:
                if self._latest is image:
                    self._latest = None

    def _query(self, image, count_busy):
        """Start a model query unless one is running; True when it started."""
        with self._cond:
            if self._busy:  # never queued behind the model: dropped
                if count_busy:
                    self.stats['dropped_busy'] += 1
                return False
            self._busy = True
        try:
            self._model.submit(self._work, *image)
        except RuntimeError:  # the node is being destroyed
            self._busy = False
            return False
        return True

    def _on_enable(self, request, response):
        self.set_parameters([Parameter('enabled', Parameter.Type.BOOL, bool(request.data))])
        response.success = True
        response.message = 'enabled' if self.enabled else 'disabled'
        return response

    def _on_parameters(self, parameters):
        for param in parameters:
            if param.name == 'enabled':
                self.enabled = bool(param.value)
                self.watchdog.reset()
                self.get_logger().info(f'actions {"enabled" if self.enabled else "disabled"}')
        return SetParametersResult(successful=True)

    def _on_watchdog(self):
        if self.watchdog.enabled and self.enabled:
            stale, changed = self.watchdog.tick(self._now())
            if changed and stale:
                self.get_logger().warning(
                    f'camera stale: no fresh image for {self.watchdog.timeout} s; not '
                    'publishing actions')
            elif changed:
                self.get_logger().info('camera fresh again')
        silent = time.monotonic() - self._last_image
        if silent > SILENT_CAMERA_S and self.count_publishers(self._camera_topic) > 0:
            self._log('silent_camera', (
                f'a publisher exists on {self._camera_topic} but no image arrived for '
                f'{silent:.0f} s; with image_qos {self.config.image_qos!r} DDS drops large '
                'frames it cannot deliver whole (e.g. over a lossy link): try '
                'image_qos:=reliable, or check the camera QoS'), period=30.0)

    # --- inference (model thread) ----------------------------------------------------------------
    def _on_model(self, function, *args):
        """Run ``function`` on the model thread and return its result (or raise its error)."""
        return self._model.submit(function, *args).result()

    def _reset(self, instruction):
        self.policy.reset(instruction)
        return self.policy.instruction

    def _work(self, rgb, stamp_msg, stamp):
        reply = None
        started = time.monotonic()
        try:
            reply = self._answer(rgb, stamp_msg, stamp)
        except Exception as exc:  # noqa: B902 - keep serving; report the reason
            self._reject('error', f'query failed: {type(exc).__name__}: {exc}')
        finally:
            with self._cond:
                self._busy = False  # before publishing: the answer's reply is not dropped
        if reply is None:
            return
        self.query_latency.add(time.monotonic() - started, time.monotonic())
        if self.config.added_latency > 0:
            self._publish_later(reply, stamp)
        else:
            self._publish(reply, stamp)

    def _publish_later(self, reply, stamp):
        """Publish ``reply`` after ``added_latency`` seconds of the node's clock."""
        def fire():
            self.destroy_timer(timer)
            self._publish(reply, stamp)

        timer = self.create_timer(self.config.added_latency, fire)

    def _publish(self, reply, stamp):
        if not (self.active and self.enabled):
            self.stats['disabled'] += 1
            return
        trajectory, phrase = reply
        try:
            self.chunk_pub.publish(trajectory)
            if phrase is not None:
                self.primitive_pub.publish(String(data=phrase))
        except Exception as exc:  # noqa: B902 - e.g. ROS shut down by a signal meanwhile
            if rclpy.ok(context=self.context):
                self._reject('error', f'publishing failed: {type(exc).__name__}: {exc}')
            return
        self.stats['answered'] += 1
        self.image_age.add(self._now() - stamp, time.monotonic())

    def _on_diagnostics(self):
        state = self._state_machine.current_state[1]
        stats = dict(self.stats)
        if state != 'active':
            level, message = ('error', f'configure failed: {self.configure_error}') \
                if self.configure_error and state == 'unconfigured' else ('ok', state)
        elif not self.enabled:
            level, message = 'ok', 'disabled'
        elif self.instruction is None:
            level, message = 'warn', 'no instruction yet'
        elif self.watchdog.stale:
            level, message = 'warn', f'camera stale (no fresh image for {self.watchdog.timeout} s)'
        else:
            level, message = 'ok', 'answering'
        answers = self.query_latency.summary(time.monotonic())
        values = {'state': state, 'query_mode': self.config.query_mode, **stats,
                  **diagnostics.latency_values('query_latency', answers),
                  **diagnostics.latency_values('image_age', self.image_age.summary()),
                  'answer_rate_hz': round(answers.rate, 2), 'last_reason': self.last_reason}
        diagnostics.publish(self, self.diagnostics_pub, [diagnostics.status(
            f'{self.get_fully_qualified_name()}: policy', 'cliprt', level, message, values)])

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
        if not (self.active and self.enabled):
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
        # One call site per severity: rclpy refuses a second severity from the same line.
        if error:
            self.get_logger().error(reason)
        else:
            self.get_logger().warning(reason)

    def destroy_node(self):
        """Let a running query finish (queued work is dropped), then destroy the node."""
        self._model.shutdown(wait=True, cancel_futures=True)
        return super().destroy_node()


def main(args=None):
    """Entry point of ``ros2 run cliprt_ros policy_node``; SIGINT/SIGTERM exit cleanly (0)."""
    return run_node(PolicyNode, NODE_NAME, args=args,
                    executor_kind=lambda node: node.config.executor)


if __name__ == '__main__':
    sys.exit(main())
