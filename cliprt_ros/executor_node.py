"""
ROS 2 action executor: action chunks in, one arm command per control period out.

Topics (relative names, so namespaces and remapping work):

* ``action_chunk`` (``trajectory_msgs/JointTrajectory``) - subscribed. Action ``i`` of a chunk
  runs during ``[header.stamp + i * control_period, header.stamp + (i + 1) * control_period)``
  (the stamp is the image's, so late chunks skip the actions whose time has passed).
* ``chunk_request`` (``std_msgs/Header``) - published when at most ``request_threshold`` actions
  remain: a ``policy_node`` with ``query_mode: on_request`` answers its newest image.
* ``servo_node/delta_twist_cmds`` (``geometry_msgs/TwistStamped``) - the velocity command for
  MoveIt Servo (its default input topic when the node runs without a namespace; remap it).
* ``action`` (``std_msgs/Float64MultiArray``, 7 values) - the executed action, for custom
  drivers, the real-time LIBERO bridge and the recorder; nothing is published while holding.
* ``gripper_command`` (``std_msgs/Float64``) - -1 open .. +1 close, with every executed action.
* ``estop`` (``std_msgs/Bool``) - subscribed (volatile and transient-local): true stops at once
  and drops every chunk until false.
* ``~/enable`` (``std_srvs/SetBool``) and the ``enabled`` parameter - the same switch.
* ``/diagnostics`` (``diagnostic_msgs/DiagnosticArray``) - once per second.

A tick with nothing to execute (disabled, e-stop, empty queue) publishes a zero twist at once.
Parameters are the settings of :class:`cliprt_core.executor.ExecutorConfig`. The timer runs on
the node's clock, so ``use_sim_time:=true`` follows a simulator's ``/clock``.
"""

import sys
import time

from cliprt_core.executor import ActionExecutor, ExecutorConfig
from cliprt_core.runtime_stats import RollingWindow
from cliprt_ros import conversions, diagnostics
from cliprt_ros.parameters import declare_config, read_config
from cliprt_ros.qos import latched_qos, reliable_qos, silent_qos_events
from cliprt_ros.settings import EXECUTOR_NODE_DYNAMIC
from cliprt_ros.spin import run_node
from geometry_msgs.msg import TwistStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import Bool, Float64, Float64MultiArray, Header
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

NODE_NAME = 'action_executor'
TWIST_TOPIC = 'servo_node/delta_twist_cmds'


class ActionExecutorNode(Node):
    """Runs :class:`cliprt_core.executor.ActionExecutor` from a control-period timer."""

    def __init__(self, **node_kwargs):
        """Declare parameters, create the I/O and the control timer."""
        super().__init__(NODE_NAME, **node_kwargs)
        declare_config(self, ExecutorConfig, dynamic=EXECUTOR_NODE_DYNAMIC)
        self.config = config = read_config(self, ExecutorConfig)
        self.runtime = ActionExecutor(config)
        self.tick_intervals = RollingWindow(400)  # wall-clock seconds between ticks
        self.last_reason = None
        self._last_wall = None
        self._last_counters = self.runtime.counters.as_dict()

        self.create_subscription(JointTrajectory, 'action_chunk', self._on_chunk,
                                 reliable_qos(10))
        self.create_subscription(Bool, 'estop', self._on_estop, reliable_qos(10))
        self.create_subscription(Bool, 'estop', self._on_estop, latched_qos(),
                                 event_callbacks=silent_qos_events())
        self.request_pub = self.create_publisher(Header, 'chunk_request', reliable_qos(10))
        self.twist_pub = (self.create_publisher(TwistStamped, TWIST_TOPIC, reliable_qos(10))
                          if config.publish_twist else None)
        self.action_pub = (self.create_publisher(Float64MultiArray, 'action', reliable_qos(10))
                           if config.publish_action else None)
        self.gripper_pub = (self.create_publisher(Float64, 'gripper_command', reliable_qos(10))
                            if config.publish_gripper else None)
        self.diagnostics_pub = diagnostics.create_diagnostics_publisher(self)
        self.create_service(SetBool, '~/enable', self._on_enable)
        self.add_post_set_parameters_callback(self._on_parameters)
        self.create_timer(config.control_period, self._on_tick)
        self.create_timer(1.0, self._on_diagnostics)
        self.get_logger().info(
            f'ready: {1 / config.control_period:.1f} Hz, aggregation={config.aggregation}, '
            f'request_threshold={config.request_threshold}, enabled={self.runtime.enabled}')

    # --- callbacks -------------------------------------------------------------------------------
    def _on_chunk(self, msg):
        try:
            chunk = conversions.trajectory_to_chunk(msg)
        except conversions.ConversionError as exc:
            self._refuse(f'chunk ignored: {exc}')
            return
        start = conversions.stamp_to_ns(msg.header.stamp) / 1e9
        reason = self.runtime.add_chunk(chunk, start, self._now())
        if reason is not None:
            self._refuse(reason)

    def _on_tick(self):
        wall = time.monotonic()
        if self._last_wall is not None:
            self.tick_intervals.add(wall - self._last_wall, wall)
        self._last_wall = wall
        now = self.get_clock().now()
        command = self.runtime.tick(now.nanoseconds / 1e9)
        self._send(command, now.to_msg())
        if command.request:
            self.request_pub.publish(Header(stamp=now.to_msg(), frame_id=self.get_name()))

    def _on_estop(self, msg):
        if bool(msg.data) == self.runtime.estopped:
            return
        self.runtime.set_estop(msg.data)
        if msg.data:
            self._send_zero()
            self.get_logger().error('e-stop engaged: zero command sent, chunks dropped')
        else:
            self.get_logger().warning('e-stop released')

    def _on_enable(self, request, response):
        self.set_parameters([Parameter('enabled', Parameter.Type.BOOL, bool(request.data))])
        response.success = True
        response.message = 'enabled' if self.runtime.enabled else 'disabled'
        return response

    def _on_parameters(self, parameters):
        for param in parameters:
            if param.name == 'enabled':
                self.runtime.set_enabled(param.value)
                if not param.value:
                    self._send_zero()
                self.get_logger().info(f'execution {"enabled" if param.value else "disabled"}')
        return SetParametersResult(successful=True)

    def _on_diagnostics(self):
        counters = self.runtime.counters.as_dict()
        new = {k: counters[k] - self._last_counters[k] for k in counters}
        self._last_counters = counters
        latency = self.runtime.scheduler.latency.summary()
        ticks = self.tick_intervals.summary(time.monotonic())
        if self.runtime.estopped:
            level, message = 'warn', 'e-stop engaged'
        elif not self.runtime.enabled:
            level, message = 'ok', 'disabled'
        elif new['underruns'] or new['dropped_stale'] or new['dropped_invalid']:
            level, message = 'warn', (f'{new["underruns"]} underruns, {new["dropped_stale"]} '
                                      f'stale and {new["dropped_invalid"]} invalid chunks in '
                                      'the last second')
        else:
            level, message = 'ok', 'executing' if new['executed'] else 'idle'
        jitter = {'tick_period_p50_ms': None, 'tick_period_p99_ms': None}
        if ticks.count:
            jitter = {'tick_period_p50_ms': round(ticks.p50 * 1e3, 2),
                      'tick_period_p99_ms': round(ticks.p99 * 1e3, 2)}
        first = self.runtime.scheduler.first_action_latency.summary()
        values = {**counters, **diagnostics.latency_values('chunk_age', latency),
                  **diagnostics.latency_values('image_to_action', first), **jitter,
                  'queued_chunks': len(self.runtime.scheduler.chunks),
                  'last_reason': self.last_reason}
        diagnostics.publish(self, self.diagnostics_pub, [diagnostics.status(
            f'{self.get_fully_qualified_name()}: executor', 'cliprt', level, message, values)])

    # --- output ----------------------------------------------------------------------------------
    def _send(self, command, stamp):
        if self.twist_pub is not None:
            twist = TwistStamped()
            twist.header.stamp = stamp
            twist.header.frame_id = self.config.twist.twist_frame_id
            vx, vy, vz, wx, wy, wz = (float(v) for v in command.twist)
            twist.twist.linear.x, twist.twist.linear.y, twist.twist.linear.z = vx, vy, vz
            twist.twist.angular.x, twist.twist.angular.y, twist.twist.angular.z = wx, wy, wz
            self.twist_pub.publish(twist)
        if command.action is None:
            return
        if self.action_pub is not None:
            self.action_pub.publish(Float64MultiArray(data=command.action.tolist()))
        if self.gripper_pub is not None:
            self.gripper_pub.publish(Float64(data=command.gripper))

    def _send_zero(self):
        now = self.get_clock().now()
        self._send(self.runtime.hold(), now.to_msg())

    def _now(self):
        return self.get_clock().now().nanoseconds / 1e9

    def _refuse(self, reason):
        self.last_reason = reason
        self.get_logger().warning(reason, throttle_duration_sec=2.0)


def main(args=None):
    """Entry point of ``ros2 run cliprt_ros action_executor``; SIGINT/SIGTERM exit cleanly."""
    return run_node(ActionExecutorNode, NODE_NAME, args=args)


if __name__ == '__main__':
    sys.exit(main())
