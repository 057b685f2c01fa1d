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

Many robots (``robots: env0,env1``): the topics above except ``~/enable`` and ``/diagnostics``
exist once per robot under its namespace (``env0/camera/image_raw``, ``env0/action_chunk`` ...),
each robot with its own instruction, staleness watchdog and request flag
(:class:`cliprt_ros.robot_port.RobotPort`). The pending images of all robots are answered in
ONE ``policy.act_batch`` forward; each chunk is checked (bounds, staleness) and published on its
own robot's topic. An image that arrives while the model is busy waits for the next batch, unless
its robot's previous image is in the running batch (then it is dropped and counted, as for one
robot: never queued behind its own query).

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
from cliprt_core.safety import ActionGuard, UnsafeActionError
from cliprt_ros import conversions, diagnostics
from cliprt_ros.parameters import declare_config, read_config
from cliprt_ros.qos import (latched_qos, qos_by_name, reliable_qos, silent_publisher_hint,
                            silent_qos_events)
from cliprt_ros.robot_port import parse_robots, RobotPort, STAT_KEYS
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
        self.stats = dict.fromkeys(STAT_KEYS, 0)  # summed over the robots
        self.ports = [RobotPort('', self.config.safety.stale_image_timeout)]
        self.batch_sizes = RollingWindow()  # images per model forward
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

    @property
    def instruction(self):
        """Return the accepted instruction of the (first) robot."""
        return self.ports[0].instruction

    @property
    def watchdog(self):
        """Return the staleness watchdog of the (first) robot."""
        return self.ports[0].watchdog

    def on_activate(self, state):
        """Start answering images."""
        self.active = True
        for port in self.ports:
            port.watchdog.reset()
            port.last_image = time.monotonic()
        topics = ', '.join(port.camera_topic for port in self.ports)
        self.get_logger().info(f'ready: active, answering images on {topics} '
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
        self.frame_id = config.action_frame_id
        self.period = config.control_period
        self.enabled = config.enabled
        self.ports = [RobotPort(namespace, config.safety.stale_image_timeout)
                      for namespace in (parse_robots(config.robots) or ('',))]
        self._set_policy(self._given_policy)
        self._io = [self.create_service(SetBool, '~/enable', self._on_enable),
                    self.create_timer(0.1, self._on_watchdog)]
        for port in self.ports:
            self._create_port_io(port)
        if not getattr(self, '_parameters_callback', False):
            self.add_post_set_parameters_callback(self._on_parameters)
            self._parameters_callback = True
        robots = f', robots {config.robots}' if config.robots else ''
        self.get_logger().info(
            f'configured: {"discrete" if self.discrete else "chunk"} policy, image_qos='
            f'{config.image_qos}, query_mode={config.query_mode}, bounds '
            f'{list(self.guard.low)}..{list(self.guard.high)}, stale_image_timeout='
            f'{self.watchdog.timeout} s, enabled={self.enabled}{robots}')

    def _create_port_io(self, port):
        """Create one robot's subscriptions and publishers."""
        # Instruction first: with both ready, the executor handles it before an image. The
        # volatile subscription matches every publisher (ros2 topic pub); the transient-local
        # one gets a latched instruction published before this node started (its QoS mismatch
        # with volatile publishers is expected, so that event is not logged).
        def on_instruction(msg):
            self._on_instruction(port, msg)

        topic = port.topic
        port.chunk_pub = self.create_publisher(JointTrajectory, topic('action_chunk'),
                                               reliable_qos(10))
        port.primitive_pub = (self.create_publisher(String, topic('primitive'),
                                                    reliable_qos(10)) if self.discrete else None)
        self._io += [
            self.create_subscription(String, topic('instruction'), on_instruction,
                                     reliable_qos(10)),
            self.create_subscription(String, topic('instruction'), on_instruction,
                                     latched_qos(), event_callbacks=silent_qos_events()),
            self.create_subscription(Image, topic('camera/image_raw'),
                                     lambda msg: self._on_image(port, msg),
                                     qos_by_name(self.config.image_qos, 1)),
            self.create_subscription(Header, topic('chunk_request'),
                                     lambda msg: self._on_request(port, msg), reliable_qos(10)),
            *(pub for pub in (port.chunk_pub, port.primitive_pub) if pub is not None)]
        port.camera_topic = self.resolve_topic_name(topic('camera/image_raw'))

    def _destroy_io(self):
        destroy = {'Subscription': self.destroy_subscription, 'Publisher': self.destroy_publisher,
                   'Service': self.destroy_service, 'Timer': self.destroy_timer}
        for entity in self._io:
            destroy[type(entity).__name__](entity)
        self._io = []

    def _free_model(self):
        self.policy = None
        for port in self.ports:
            port.instruction = port.instruction_text = None

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
    def _on_instruction(self, port, msg):
        from cliprt_core.inference import PolicyInputError

        if msg.data == port.instruction_text:
            return  # the same message through the second subscription (or a repeat)
        port.instruction_text = msg.data
        try:
            instruction = self._on_model(self._reset, msg.data)
        except RuntimeError as exc:  # the node is being destroyed
            if 'shutdown' in str(exc):
                return
            raise
        except PolicyInputError as exc:
            self._reject(port, 'instruction', f'instruction ignored: {exc}')
            return
        port.instruction = instruction
        self._count(port, 'instructions')
        self.get_logger().info(f'{port.label()}instruction: {instruction!r}')

    def _on_image(self, port, msg):
        self._count(port, 'images')
        port.last_image = time.monotonic()
        try:
            rgb = conversions.image_to_rgb(msg)
        except conversions.ConversionError as exc:  # malformed: never counts as a fresh image
            self._reject(port, 'image', f'image ignored: {exc}')
            return
        stamp = conversions.stamp_to_ns(msg.header.stamp) / 1e9
        reason = port.watchdog.check(stamp, self._now())
        if not self.active:
            self._count(port, 'inactive')
            return
        if not self.enabled:
            self._count(port, 'disabled')
            return
        if reason is not None:
            self._reject(port, 'stale', f'image ignored: {reason}')
            return
        if port.instruction is None:
            self._count(port, 'no_instruction')
            self._log(f'no_instruction{port.namespace}', 'image ignored: no instruction '
                      f'received yet on {self.resolve_topic_name(port.topic("instruction"))}')
            return
        with self._cond:
            every_image = self.config.query_mode == 'every_image'
            if every_image and (port.in_flight or port.pending is not None):
                self._count(port, 'dropped_busy')  # never queued behind its own query
                if port.in_flight:
                    return
            port.pending = (rgb, msg.header.stamp, stamp)
        self._dispatch()

    def _on_request(self, port, msg):
        if self.config.query_mode != 'on_request':
            return
        self._count(port, 'requests')
        port.request_pending = True
        self._dispatch()

    def _dispatch(self):
        """Start one model batch with every robot's answerable image, unless one is running."""
        with self._cond:
            if self._busy:
                return  # the end of the running batch dispatches again
            now = self._now()
            batch = []
            for port in self.ports:
                image = port.take(self.config.query_mode, now)
                if image is not None:
                    batch.append((port, port.instruction, image))
            if not batch:
                return
            self._busy = True
        try:
            self._model.submit(self._work, batch)
        except RuntimeError:  # the node is being destroyed
            with self._cond:
                self._busy = False
                for port, _, _ in batch:
                    port.in_flight = False

    def _on_enable(self, request, response):
        self.set_parameters([Parameter('enabled', Parameter.Type.BOOL, bool(request.data))])
        response.success = True
        response.message = 'enabled' if self.enabled else 'disabled'
        return response

    def _on_parameters(self, parameters):
        for param in parameters:
            if param.name == 'enabled':
                self.enabled = bool(param.value)
                for port in self.ports:
                    port.watchdog.reset()
                self.get_logger().info(f'actions {"enabled" if self.enabled else "disabled"}')
        return SetParametersResult(successful=True)

    def _on_watchdog(self):
        for port in self.ports:
            self._watch(port)

    def _watch(self, port):
        watchdog = port.watchdog
        if watchdog.enabled and self.enabled:
            stale, changed = watchdog.tick(self._now())
            if changed and stale:
                self.get_logger().warning(
                    f'{port.label()}camera stale: no fresh image for {watchdog.timeout} s; not '
                    'publishing actions')
            elif changed:
                self.get_logger().info(f'{port.label()}camera fresh again')
        silent = time.monotonic() - port.last_image
        if silent > SILENT_CAMERA_S and self.count_publishers(port.camera_topic) > 0:
            self._log(f'silent_camera{port.namespace}', lambda: (  # built only when logged
                f'a publisher exists on {port.camera_topic} but no image arrived for '
                f'{silent:.0f} s: '
                + silent_publisher_hint(self, port.camera_topic, self.config.image_qos)),
                period=30.0)

    # --- inference (model thread) ----------------------------------------------------------------
    def _on_model(self, function, *args):
        """Run ``function`` on the model thread and return its result (or raise its error)."""
        return self._model.submit(function, *args).result()

    def _reset(self, instruction):
        self.policy.reset(instruction)
        return self.policy.instruction

    def _work(self, batch):
        """Answer ``batch`` [(port, instruction, image)] in one forward; publish per robot."""
        replies = []
        started = time.monotonic()
        try:
            outputs = self._infer(batch)
            for (port, _, image), output in zip(batch, outputs):
                reply = self._answer(port, output, image)
                if reply is not None:
                    replies.append((port, reply, image[2]))
        except Exception as exc:  # noqa: B902 - keep serving; report the reason
            self._reject(batch[0][0], 'error', f'query failed: {type(exc).__name__}: {exc}')
        finally:
            with self._cond:
                self._busy = False  # before publishing: the answer's reply is not dropped
                for port, _, _ in batch:
                    port.in_flight = False
        now = time.monotonic()
        self.batch_sizes.add(len(batch), now)
        for port, reply, stamp in replies:
            self.query_latency.add(now - started, now)
            if self.config.added_latency > 0:
                self._publish_later(port, reply, stamp)
            else:
                self._publish(port, reply, stamp)
        self._dispatch()  # images that arrived meanwhile (other robots, pending requests)

    def _infer(self, batch):
        """One model output per entry (or the PolicyInputError/NonFiniteActionError it raised)."""
        from cliprt_core.inference import NonFiniteActionError, PolicyInputError

        if len(batch) > 1:
            try:
                outputs = self.policy.act_batch([image[0] for _, _, image in batch],
                                                [text for _, text, _ in batch])
                return list(outputs)
            except (PolicyInputError, NonFiniteActionError):
                pass  # one robot's input or output: find it, one query each
        outputs = []
        for _, instruction, image in batch:
            try:
                if self.policy.instruction != instruction:  # another robot, or a shared Policy
                    self.policy.reset(instruction)
                outputs.append(self.policy.act(image[0]))
            except (PolicyInputError, NonFiniteActionError) as exc:
                outputs.append(exc)
        return outputs

    def _publish_later(self, port, reply, stamp):
        """Publish ``reply`` after ``added_latency`` seconds of the node's clock."""
        def fire():
            self.destroy_timer(timer)
            self._publish(port, reply, stamp)

        timer = self.create_timer(self.config.added_latency, fire)

    def _publish(self, port, reply, stamp):
        if not (self.active and self.enabled):
            self._count(port, 'disabled')
            return
        trajectory, phrase = reply
        try:
            port.chunk_pub.publish(trajectory)
            if phrase is not None:
                port.primitive_pub.publish(String(data=phrase))
        except Exception as exc:  # noqa: B902 - e.g. ROS shut down by a signal meanwhile
            if rclpy.ok(context=self.context):
                self._reject(port, 'error', f'publishing failed: {type(exc).__name__}: {exc}')
            return
        self._count(port, 'answered')
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
        if len(self.ports) > 1:
            values['robots'] = self.config.robots
            sizes = self.batch_sizes.values()
            values['batch_size_mean'] = round(sum(sizes) / len(sizes), 2) if sizes else 0.0
        name = f'{self.get_fully_qualified_name()}: policy'
        statuses = [diagnostics.status(name, 'cliprt', level, message, values)]
        for port in self.ports if len(self.ports) > 1 else ():
            statuses.append(diagnostics.status(
                f'{name} {port.namespace}', 'cliprt', 'warn' if port.watchdog.stale else 'ok',
                'camera stale' if port.watchdog.stale else 'ok',
                {'instruction': port.instruction, **port.stats}))
        diagnostics.publish(self, self.diagnostics_pub, statuses)

    def _answer(self, port, output, image):
        """Check one robot's model output; return ``(trajectory, phrase)`` or None (withheld)."""
        _, stamp_msg, stamp = image
        if isinstance(output, Exception):
            self._withhold(port, f'no action: {output}')
            return None
        phrase = None
        if self.discrete:
            phrase, actions = output.phrase, output.action
        else:
            actions = output
        try:
            actions = self.guard(actions)
        except UnsafeActionError as exc:
            self._withhold(port, f'action withheld: {exc}')
            return None
        if not (self.active and self.enabled):
            self._count(port, 'disabled')
            return None
        if not port.watchdog.is_fresh(stamp, self._now()):
            self._withhold(port, f'action withheld: the image went stale during inference (> '
                           f'{port.watchdog.timeout} s)')
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

    def _count(self, port, key):
        port.stats[key] += 1
        self.stats[key] += 1

    def _reject(self, port, kind, reason):
        self._count(port, 'rejected')
        self.last_reason = reason = port.label() + reason
        self._log(kind + port.namespace, reason)

    def _withhold(self, port, reason):
        self._count(port, 'withheld')
        self.last_reason = reason = port.label() + reason
        self._log('withheld' + port.namespace, reason, error=True)

    def _log(self, kind, reason, error=False, period=2.0):
        """Log ``reason`` (text, or a function making it); one per ``period`` s per ``kind``."""
        now = time.monotonic()
        if now - self._log_times.get(kind, -period) < period:
            return
        self._log_times[kind] = now
        reason = reason() if callable(reason) else reason
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
