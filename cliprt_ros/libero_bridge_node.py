"""
ROS 2 LIBERO bridge: the LIBERO evaluation of cliprt_core.eval, served over the robot topics.

Publishes (relative names; ``camera/image_raw``, ``wrist/image_raw`` and ``joint_states`` of one
observation share one ``header.stamp``):

* ``camera/image_raw`` (``sensor_msgs/Image`` rgb8, upright agentview; QoS ``image_qos``)
* ``wrist/image_raw`` (``sensor_msgs/Image`` rgb8, upright; only with ``wrist_camera``)
* ``joint_states`` (``sensor_msgs/JointState``: 7 arm joints + 2 finger joints, reliable)
* ``ee_pose`` (``geometry_msgs/PoseStamped``: the end effector in the ``world`` frame, reliable)
* ``instruction`` (``std_msgs/String``, reliable, transient local: the task's ``language``)
* ``/clock`` (``rosgraph_msgs/Clock``; ``mode: realtime`` with ``publish_clock`` only)

``mode: lockstep`` (default, the benchmark protocol) subscribes ``action_chunk``
(``trajectory_msgs/JointTrajectory``): the simulator advances only on the chunk whose
``header.stamp`` equals the stamp of the latest observation
(:class:`cliprt_core.eval.lockstep.Lockstep`); other chunks are counted and ignored. An
observation left unanswered for ``chunk_timeout`` seconds ends the episode as a failure with the
reason; a policy node that goes away stops the run (exit code 1, finished episodes kept).

``mode: realtime`` subscribes ``action`` (``std_msgs/Float64MultiArray``, from the
``action_executor``): the simulator steps every control period (``real_time_factor`` x wall
time; with ``publish_clock`` the stamps and ``/clock`` are simulated time) with the newest action,
holding still when none came (:mod:`cliprt_core.eval.realtime`). Each episode's record gets a
``realtime`` entry: held steps, overruns, the policy's chunk count and chunk latency.

No protocol logic lives here: episodes run on the :class:`cliprt_core.eval.EpisodeHost` the
in-process evaluation uses, driven from ROS callbacks; the run is the
:class:`cliprt_core.eval.EvalConfig` of the parameters (:class:`cliprt_ros.settings.BridgeConfig`),
and results go through :class:`cliprt_core.eval.ResultsDir` - the same files ``cliprt-eval``
writes.
"""

from collections import deque
from concurrent.futures import ThreadPoolExecutor
import sys
import time

from cliprt_core.actions.space import CONTROL_PERIOD
from cliprt_core.eval import EpisodeHost, failure_record, ResultsDir
from cliprt_core.eval.lockstep import Lockstep
from cliprt_core.eval.realtime import ActionLatch, Pacer, RealtimeStats
from cliprt_core.eval.report import report
from cliprt_ros import conversions
from cliprt_ros.parameters import declare_config, read_config
from cliprt_ros.qos import latched_qos, qos_by_name, reliable_qos
from cliprt_ros.settings import BRIDGE_EXCLUDED, BridgeConfig
from cliprt_ros.spin import run_node, spin_until
from geometry_msgs.msg import PoseStamped
from rclpy.duration import Duration
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

NODE_NAME = 'libero_bridge_node'
JOINT_NAMES = tuple(f'panda_joint{i}' for i in range(1, 8)) + (
    'panda_finger_joint1', 'panda_finger_joint2')
#: Exit code when the run stopped before its end (no policy node, or it went away).
EXIT_INCOMPLETE = 1
#: Simulated seconds skipped at each real-time episode start: the executor's chunks from the
#: previous episode are then past due (more than its max_chunk_age) and never run in this one.
EPISODE_GAP_S = 2.0


def read_bridge_config(node):
    """Declare the bridge's parameters on ``node`` and return its :class:`BridgeConfig`."""
    declare_config(node, BridgeConfig, exclude=BRIDGE_EXCLUDED)
    return read_config(node, BridgeConfig, exclude=BRIDGE_EXCLUDED,
                       fixed={'evaluation': {'workers': 1, 'progress': False}})


class LiberoBridgeNode(Node):
    """Runs the LIBERO evaluation episodes of an EvalConfig in lockstep with a policy node."""

    def __init__(self, env_factory=None, log_report=True, **node_kwargs):
        """
        Declare parameters, plan the run (resume), create the topics.

        Episodes start once a policy node is connected. ``env_factory(suite, task_id)``
        replaces the LIBERO environment factory (tests, other simulators). ``log_report``: log
        the success table at the end (a program that prints it itself turns this off).
        """
        super().__init__(NODE_NAME, **node_kwargs)
        bridge = read_bridge_config(self)
        self.config = config = bridge.evaluation
        self.camera_frame_id = bridge.camera_frame_id
        self.wrist_frame_id = bridge.wrist_frame_id
        self.resend_period = bridge.resend_period
        self.discovery_timeout = bridge.discovery_timeout
        self.policy_lost_timeout = bridge.policy_lost_timeout
        self.exit_when_done = bridge.exit_when_done
        self.log_report = log_report
        self.bridge = bridge
        self.realtime = bridge.mode == 'realtime'
        self.latch = ActionLatch()
        self._realtime_run = None  # the future of the real-time episode loop
        self._realtime_stats = None
        self._stop_requested = False
        self._sim_ns = 0  # realtime with publish_clock: the simulated time

        self.results = ResultsDir(config.default_results_dir())
        self.results.check_run(config.protocol_settings())
        self.wanted = config.episode_keys()
        done = self.results.done_episodes()
        # A shard runs its share; the summary still expects the whole list (one folder).
        self.todo = deque(key for key in bridge.shard_of(self.wanted) if key not in done)
        self.host = EpisodeHost(env_factory or config.env_factory(), config.episode_options())
        self.lockstep = Lockstep(timeout=bridge.chunk_timeout)
        self.finished_now = []
        self.summary = None
        self.finished = False
        self.exit_code = 0
        self.stop_reason = None
        self._spec = None  # the episode in progress
        self._messages = None
        self._instruction = None
        self._last_stamp_ns = 0
        self._resends = 0
        self._started = time.monotonic()
        self._policy_seen = time.monotonic()
        self._log_times = {}
        # Every simulator call runs on this one thread, whatever executor thread runs the
        # callback: robosuite renders with the OpenGL context current in the calling thread
        # (created by the env's reset), so an env must stay on one thread.
        self._sim = ThreadPoolExecutor(max_workers=1, thread_name_prefix='libero_sim')
        self._sim_closed = False

        image_qos = qos_by_name(bridge.image_qos, 1)
        self.instruction_pub = self.create_publisher(String, 'instruction', latched_qos())
        self.camera_pub = self.create_publisher(Image, 'camera/image_raw', image_qos)
        self.wrist_pub = (self.create_publisher(Image, 'wrist/image_raw', image_qos)
                          if config.wrist_camera else None)
        self.joint_pub = self.create_publisher(JointState, 'joint_states', reliable_qos(10))
        self.pose_pub = self.create_publisher(PoseStamped, 'ee_pose', reliable_qos(10))
        self.create_subscription(JointTrajectory, 'action_chunk', self._on_chunk,
                                 reliable_qos(10))
        self.action_topic = 'action' if self.realtime else 'action_chunk'
        if self.realtime:
            self.create_subscription(Float64MultiArray, 'action', self._on_action,
                                     reliable_qos(10))
        self.clock_pub = (self.create_publisher(Clock, '/clock', reliable_qos(1))
                          if self.realtime and bridge.publish_clock else None)
        self.create_timer(0.02, self._on_tick)
        self.get_logger().info(
            f'{len(self.todo)} of {len(self.wanted)} episodes to run '
            f'{"(shard " + bridge.shard + ") " if bridge.shard else ""}'
            f'({len(done & set(self.wanted))} already in {self.results.episodes_path}); '
            f'{bridge.mode}; waiting for a policy node on '
            f'{self.resolve_topic_name("camera/image_raw")}'
            f' -> {self.resolve_topic_name(self.action_topic)}')

    # --- callbacks -------------------------------------------------------------------------------
    def _on_tick(self):
        if self.finished:
            return
        now = time.monotonic()
        connected = self._policy_connected()
        if connected:
            self._policy_seen = now
        if self._realtime_run is not None:
            if self._realtime_run.done():
                self._realtime_run.result()  # re-raise a bug in the loop
                self._finish()
            elif now - self._policy_seen > self.policy_lost_timeout:
                self._stop(f'the policy went away during {self._spec} (no subscriber on '
                           f'{self.camera_pub.topic_name} or no publisher on '
                           f'{self.resolve_topic_name(self.action_topic)} for '
                           f'{self.policy_lost_timeout} s)')
            return
        if self._spec is None:  # not started: wait until a policy node is connected
            if not self.todo:
                self._finish()
            elif connected:
                self.get_logger().info('policy node connected; starting episodes')
                if self.realtime:
                    self._realtime_run = self._sim.submit(self._run_realtime)
                else:
                    self._next_episode()
            elif now - self._started > self.discovery_timeout:
                self._stop(f'no policy node subscribed to {self.camera_pub.topic_name} and '
                           f'publishing {self.resolve_topic_name(self.action_topic)} within '
                           f'{self.discovery_timeout} s')
            return
        if now - self._policy_seen > self.policy_lost_timeout:
            # Not the policy's failure in this episode: it is not recorded and reruns on resume.
            self._stop(f'the policy node went away during {self._spec} (no subscriber on '
                       f'{self.camera_pub.topic_name} for {self.policy_lost_timeout} s)')
        elif self.lockstep.expired(now):
            self._end_episode(error=(
                f'timeout: no action chunk answered the observation within '
                f'{self.lockstep.timeout} s ({self.lockstep.stale} stale and '
                f'{self.lockstep.mismatched} mismatched chunks ignored so far; '
                f'{self.camera_pub.get_subscription_count()} subscriber(s) on '
                f'{self.camera_pub.topic_name})'))
        elif (self.resend_period > 0 and self._messages is not None
              and self.lockstep.waited(now) > self.resend_period * (self._resends + 1)):
            self._resends += 1
            self._publish(self._messages)

    def _on_chunk(self, msg):
        if self.realtime:
            stats = self._realtime_stats
            if stats is not None:
                stats.chunk((self._stamp_ns() - conversions.stamp_to_ns(msg.header.stamp)) / 1e9)
            return
        waited = self.lockstep.waited(time.monotonic())
        key = conversions.stamp_to_ns(msg.header.stamp)
        if not self.lockstep.offer(key):
            self._log('ignored', f'ignored an action chunk that does not answer the latest '
                      f'observation (stamp {key}); stale: {self.lockstep.stale}, mismatched: '
                      f'{self.lockstep.mismatched}')
            return
        try:
            chunk = conversions.trajectory_to_chunk(msg)
        except conversions.ConversionError as exc:
            self._end_episode(error=f'invalid action chunk: {exc}', policy_s=waited)
            return
        self._handle(self._in_sim(self.host.handle, 'chunk', chunk, waited))

    def _on_action(self, msg):
        try:
            self.latch.offer(msg.data)
        except ValueError:
            self._log('action', f'ignored an action with {len(msg.data)} values (expected 7)')

    # --- real time (runs on the simulator thread) ----------------------------------------------
    def _run_realtime(self):
        """Run the remaining episodes with the simulator on the clock."""
        period = CONTROL_PERIOD
        every = max(1, round(self.bridge.camera_period / period))
        pacer = Pacer(period, self.bridge.real_time_factor)
        self._sim_ns = self.get_clock().now().nanoseconds
        while self.todo and not self._stop_requested:
            spec = self._spec = self.todo.popleft()
            video = str(self.results.video_path(*spec)) if self.config.video else None
            reply = self.host.handle('start', spec, video)
            if reply[0] != 'obs':
                self._record(reply[1])
                continue
            self.get_logger().info(f'{spec[0]} task {spec[1]} episode {spec[2]}: {reply[2]!r}')
            self._announce(reply[2])
            self.latch.clear()
            self._sim_ns += int(EPISODE_GAP_S * 1e9)
            stats = self._realtime_stats = RealtimeStats(self.bridge.real_time_factor)
            pacer.restart()
            overruns = pacer.overruns
            while reply[0] == 'obs':
                self._tick_clock()
                if stats.steps % every == 0:
                    self._send_observation(self.host.observation)
                pacer.wait()
                if self._stop_requested:  # not the policy's failure: reruns on resume
                    return
                action, fresh = self.latch.take()
                stats.step(fresh)
                reply = self.host.handle('chunk', action[None], 0.0, False)
                self._sim_ns += int(round(period * 1e9))
            record = dict(reply[1], queries=stats.chunks,
                          realtime=stats.record(period, pacer.overruns - overruns))
            self._realtime_stats = None
            self._record(record)
        self._spec = None

    def _tick_clock(self):
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=conversions.ns_to_stamp(self._sim_ns)))

    def _stamp_ns(self):
        """Now on the clock the observations are stamped with."""
        if self.clock_pub is not None:
            return self._sim_ns
        return self.get_clock().now().nanoseconds

    # --- episodes (the EpisodeHost of cliprt_core.eval, as the in-process runner uses) ---------
    def _next_episode(self):
        while self.todo:
            spec = self._spec = self.todo.popleft()
            video = str(self.results.video_path(*spec)) if self.config.video else None
            try:
                reply = self._in_sim(self.host.handle, 'start', spec, video)
            except Exception as exc:  # noqa: B902 - the simulator thread failed: record, go on
                reply = ('done', failure_record(spec, exc))
            if reply[0] == 'obs':
                self.get_logger().info(f'{spec[0]} task {spec[1]} episode {spec[2]}: '
                                       f'{reply[2]!r}')
                self._announce(reply[2])
                self._send_observation(self.host.observation)
                return
            self._record(reply[1])
        self._spec = None
        self._finish()

    def _handle(self, reply):
        """Publish the next observation, or record the finished episode and start the next."""
        if reply[0] == 'obs':
            self._send_observation(self.host.observation)
            return
        self.lockstep.cancel()
        self._messages = None
        self._record(reply[1])
        self._next_episode()

    def _end_episode(self, error, policy_s=0.0):
        self._handle(self._in_sim(self.host.handle, 'abort', error, policy_s))

    def _record(self, record):
        record = self.results.append(record)
        self.finished_now.append(record)
        outcome = 'success' if record['success'] else 'failure'
        reason = f' ({record["error"]})' if record.get('error') else ''
        self.get_logger().info(
            f'{record["suite"]} task {record["task_id"]} episode {record["episode"]}: {outcome} '
            f'after {record["steps"]} steps{reason}')

    def _stop(self, reason):
        """End the run early: keep what finished, say why, exit non-zero."""
        self.get_logger().error(f'{reason}; stopping (finished episodes are kept; rerun to '
                                'resume)')
        self.stop_reason = reason
        self.exit_code = EXIT_INCOMPLETE
        self.lockstep.cancel()
        self._messages = None
        if self._realtime_run is not None:
            self._stop_requested = True  # the loop ends at its next step; _on_tick finishes
        else:
            self._finish()

    def _finish(self):
        self._in_sim(self.host.close)
        run = {**self.config.run_settings(), 'transport': 'ros2',
               'episodes_this_run': len(self.finished_now),
               'ignored_chunks': {'stale': self.lockstep.stale,
                                  'mismatched': self.lockstep.mismatched}}
        if self.stop_reason:
            run['stopped'] = self.stop_reason
        self.summary = self.results.write_summary(expected=self.wanted, run=run)
        self.finished = True
        overall = self.summary['overall']
        done = f'evaluation done: {overall["successes"]}/{overall["episodes"]} successes'
        self.get_logger().info(f'{done}:\n{report(self.summary, self.results)}'
                               if self.log_report else f'{done}; results in {self.results.path}')

    def _in_sim(self, function, *args, **kwargs):
        """Run ``function`` on the simulator thread and return its result."""
        return self._sim.submit(function, *args, **kwargs).result()

    # --- ROS I/O ---------------------------------------------------------------------------------
    def _announce(self, instruction):
        """
        Publish the instruction when it changes, and wait until the policy acknowledged it.

        The acknowledgement makes the policy process it before the first image of the episode.
        """
        if instruction == self._instruction:
            return
        self._instruction = instruction
        self.instruction_pub.publish(String(data=instruction))
        if not self.instruction_pub.wait_for_all_acked(Duration(seconds=5.0)):
            self.get_logger().warning('the instruction was not acknowledged within 5 s')

    def _send_observation(self, observation):
        stamp_ns = max(self._stamp_ns(), self._last_stamp_ns + 1)  # unique: the lockstep key
        self._last_stamp_ns = stamp_ns
        stamp = conversions.ns_to_stamp(stamp_ns)
        joints = JointState(name=list(JOINT_NAMES), position=[
            *map(float, observation.joint_states), *map(float, observation.gripper_states)])
        joints.header.stamp = stamp
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, 'world'
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (
            float(v) for v in observation.eef_pos)
        orientation = pose.pose.orientation
        orientation.x, orientation.y, orientation.z, orientation.w = (
            float(v) for v in observation.eef_quat)
        wrist = None
        if self.wrist_pub is not None and observation.wrist is not None:
            wrist = conversions.rgb_to_image(observation.wrist, stamp, self.wrist_frame_id)
        camera = conversions.rgb_to_image(observation.agentview, stamp, self.camera_frame_id)
        self._messages = (joints, pose, wrist, camera)
        self._resends = 0
        if not self.realtime:
            self.lockstep.expect(stamp_ns, time.monotonic())
        self._publish(self._messages)

    def _publish(self, messages):
        joints, pose, wrist, camera = messages
        self.joint_pub.publish(joints)
        self.pose_pub.publish(pose)
        if wrist is not None:
            self.wrist_pub.publish(wrist)
        self.camera_pub.publish(camera)  # last: the policy answers this one

    def _policy_connected(self):
        return (self.camera_pub.get_subscription_count() > 0
                and self.instruction_pub.get_subscription_count() > 0
                and self.count_publishers(self.resolve_topic_name(self.action_topic)) > 0)

    def _log(self, kind, text, period=2.0):
        now = time.monotonic()
        if now - self._log_times.get(kind, -period) >= period:
            self._log_times[kind] = now
            self.get_logger().warning(text)

    def destroy_node(self):
        """Close the simulator, then destroy the node."""
        self._stop_requested = True  # a real-time loop ends at its next step
        if not self._sim_closed:
            self._sim_closed = True
            self._in_sim(self.host.close)
            self._sim.shutdown(wait=True)
        return super().destroy_node()


def spin_until_finished(executor, bridge):
    """Spin ``executor`` until ``bridge`` has finished its run (or ROS shuts down)."""
    return spin_until(executor, lambda: bridge.finished)


def main(args=None):
    """Entry point of ``ros2 run cliprt_ros libero_bridge_node``; exit code 1 on a bad setup."""
    return run_node(LiberoBridgeNode, NODE_NAME, _spin_evaluation, args)


def _spin_evaluation(executor, node):
    if not node.exit_when_done:
        spin_until(executor)
        return 0
    return node.exit_code if spin_until_finished(executor, node) else 0


if __name__ == '__main__':
    sys.exit(main())
