"""
ROS 2 LIBERO bridge: the LIBERO evaluation of cliprt_core.eval, served over the robot topics.

Publishes (relative names; ``camera/image_raw``, ``wrist/image_raw`` and ``joint_states`` of one
observation share one ``header.stamp``):

* ``camera/image_raw`` (``sensor_msgs/Image`` rgb8, upright agentview; QoS ``image_qos``)
* ``wrist/image_raw`` (``sensor_msgs/Image`` rgb8, upright; only with ``wrist_camera``)
* ``joint_states`` (``sensor_msgs/JointState``: 7 arm joints + 2 finger joints, reliable)
* ``instruction`` (``std_msgs/String``, reliable, transient local: the task's ``language``)

and subscribes ``action_chunk`` (``trajectory_msgs/JointTrajectory``). Lockstep: the simulator
advances only on the chunk whose ``header.stamp`` equals the stamp of the latest observation
(:class:`cliprt_core.safety.Lockstep`); other chunks are counted and ignored. An observation left
unanswered for ``chunk_timeout`` seconds ends the episode as a failure with the reason.

No protocol logic lives here: episodes are :class:`cliprt_core.eval.Episode` objects driven from
ROS callbacks, the run is an :class:`cliprt_core.eval.EvalConfig` built from the parameters, and
results go through :class:`cliprt_core.eval.ResultsDir` - the same files ``cliprt-eval`` writes.
"""

from collections import deque
from concurrent.futures import ThreadPoolExecutor
import sys
import time

from cliprt_core.config import from_dict
from cliprt_core.eval import Episode, EvalConfig, format_error, LiberoEnvFactory, ResultsDir
from cliprt_core.eval.runner import episode_options
from cliprt_core.eval.worker import failure_record
from cliprt_core.safety import Lockstep
from cliprt_ros import conversions
from cliprt_ros.qos import latched_qos, qos_by_name, QOS_NAMES, reliable_qos
from cliprt_ros.spin import run_node, spin_until
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

NODE_NAME = 'libero_bridge_node'
JOINT_NAMES = tuple(f'panda_joint{i}' for i in range(1, 8)) + (
    'panda_finger_joint1', 'panda_finger_joint2')

_EVAL = EvalConfig()
#: Parameters that are EvalConfig fields (ROS has no None: 0 / '' stand for it).
EVAL_PARAMETERS = {
    'suite': (_EVAL.suite, 'LIBERO suite(s): libero_spatial | libero_object | libero_goal | '
                           'libero_10 | libero_90, a comma list, or all'),
    'tasks': (str(_EVAL.tasks), "task ids: 'all', '0-9' or '0,3,5'"),
    'episodes': (_EVAL.episodes, 'episodes (fixed initial states 0..n-1) per task, <= 50'),
    'max_steps': (0, 'cap on the per-suite horizon (smoke runs); 0 = the protocol horizon'),
    'seed': (_EVAL.seed, 'evaluation seed (protocol: 7)'),
    'camera_size': (_EVAL.camera_size, 'camera resolution in pixels (protocol: 256)'),
    'wrist_camera': (True, 'render and publish wrist/image_raw (CLIP-RT+ does not use it)'),
    'num_dummy_steps': (_EVAL.num_dummy_steps, 'settle steps after each reset (protocol: 10)'),
    'clip_actions': (_EVAL.clip_actions, 'clip actions to [-1, 1] before the simulator'),
    'binarize_gripper': (_EVAL.binarize_gripper, 'gripper -> sign(gripper) (OpenVLA-OFT)'),
    'video': (_EVAL.video, 'write an MP4 per episode under <results_dir>/videos'),
    'results_dir': ('', 'results folder (reused = resumed); empty = eval_results/<policy>'),
    'checkpoint': ('', "the policy's checkpoint, for the results' metadata only"),
    'model_config': (_EVAL.model_config, "the policy's model config when checkpoint is empty "
                                         '(metadata only)'),
}
#: Every parameter the node declares: name -> (default, description).
PARAMETERS = {
    **EVAL_PARAMETERS,
    'image_qos': ('reliable', 'QoS of the image topics: reliable (lockstep) | sensor_data'),
    'camera_frame_id': ('agentview_camera', 'header.frame_id of camera/image_raw'),
    'wrist_frame_id': ('wrist_camera', 'header.frame_id of wrist/image_raw'),
    'chunk_timeout': (30.0, 'seconds an observation may stay unanswered before the episode '
                            'ends as a failure'),
    'resend_period': (2.0, 'republish an unanswered observation (same stamp) every this many '
                           'seconds; 0 = never'),
    'discovery_timeout': (60.0, 'seconds to wait for a policy node before giving up'),
    'exit_when_done': (True, 'exit the process after the last episode'),
}
_NONE_IF_EMPTY = {'max_steps': 0, 'results_dir': '', 'checkpoint': ''}


def eval_config_from_parameters(values):
    """Return the :class:`EvalConfig` that bridge parameter ``values`` describe."""
    data = {name: values[name] for name in EVAL_PARAMETERS}
    tasks = data['tasks']  # dynamically typed: `-p tasks:=0` arrives as an integer
    data['tasks'] = [int(t) for t in tasks] if isinstance(tasks, (list, tuple)) or \
        type(tasks).__name__ == 'array' else str(tasks)
    for name, empty in _NONE_IF_EMPTY.items():
        if data[name] == empty:
            data[name] = None
    data['workers'] = 1
    data['progress'] = False
    return from_dict(EvalConfig, data)


def eval_config_to_parameters(config):
    """Inverse of :func:`eval_config_from_parameters` (used by run_eval and tests)."""
    values = {}
    for name in EVAL_PARAMETERS:
        value = getattr(config, name)
        if name == 'tasks' and not isinstance(value, str):
            value = ','.join(str(t) for t in value)
        values[name] = _NONE_IF_EMPTY.get(name, value) if value is None else value
    return values


class LiberoBridgeNode(Node):
    """Runs the LIBERO evaluation episodes of an EvalConfig in lockstep with a policy node."""

    def __init__(self, env_factory=None, **node_kwargs):
        """
        Declare parameters, plan the run (resume), create the topics.

        Episodes start once a policy node is connected. ``env_factory(suite, task_id)``
        replaces the LIBERO environment factory (tests, other simulators).
        """
        super().__init__(NODE_NAME, **node_kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(
                description=description, read_only=True, dynamic_typing=name == 'tasks'))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        if p['image_qos'] not in QOS_NAMES:
            raise ValueError(f'image_qos must be one of {QOS_NAMES}, got {p["image_qos"]!r}')
        self.config = eval_config_from_parameters(p)
        self.camera_frame_id = p['camera_frame_id']
        self.wrist_frame_id = p['wrist_frame_id']
        self.resend_period = p['resend_period']
        self.discovery_timeout = p['discovery_timeout']
        self.exit_when_done = p['exit_when_done']

        self.results = ResultsDir(self.config.default_results_dir())
        self.results.check_run(self.config.protocol_settings())
        self.wanted = self.config.episode_keys()
        done = self.results.done_episodes()
        self.todo = deque(key for key in self.wanted if key not in done)
        self.env_factory = env_factory or LiberoEnvFactory(
            camera_size=self.config.camera_size, seed=self.config.seed,
            wrist_camera=self.config.wrist_camera, num_dummy_steps=self.config.num_dummy_steps)
        self.lockstep = Lockstep(timeout=p['chunk_timeout'])
        self.finished_now = []
        self.summary = None
        self.finished = False
        self.exit_code = 0
        self._env = None
        self._env_key = None
        self._episode = None
        self._messages = None
        self._instruction = None
        self._last_stamp_ns = 0
        self._resends = 0
        self._started = time.monotonic()
        self._log_times = {}
        # Every simulator call runs on this one thread, whatever executor thread runs the
        # callback: robosuite renders with the OpenGL context current in the calling thread
        # (created by the env's reset), so an env must stay on one thread.
        self._sim = ThreadPoolExecutor(max_workers=1, thread_name_prefix='libero_sim')
        self._sim_closed = False

        image_qos = qos_by_name(p['image_qos'], 1)
        self.instruction_pub = self.create_publisher(String, 'instruction', latched_qos())
        self.camera_pub = self.create_publisher(Image, 'camera/image_raw', image_qos)
        self.wrist_pub = (self.create_publisher(Image, 'wrist/image_raw', image_qos)
                          if self.config.wrist_camera else None)
        self.joint_pub = self.create_publisher(JointState, 'joint_states', reliable_qos(10))
        self.create_subscription(JointTrajectory, 'action_chunk', self._on_chunk,
                                 reliable_qos(10))
        self.create_timer(0.02, self._on_tick)
        self.get_logger().info(
            f'{len(self.todo)} of {len(self.wanted)} episodes to run '
            f'({len(self.wanted) - len(self.todo)} already in {self.results.episodes_path}); '
            f'waiting for a policy node on {self.resolve_topic_name("camera/image_raw")} -> '
            f'{self.resolve_topic_name("action_chunk")}')

    # --- callbacks -------------------------------------------------------------------------------
    def _on_tick(self):
        if self.finished:
            return
        now = time.monotonic()
        if self._episode is None:  # not started: wait until a policy node is connected
            if not self.todo:
                self._finish()
            elif self._policy_connected():
                self.get_logger().info('policy node connected; starting episodes')
                self._next_episode()
            elif now - self._started > self.discovery_timeout:
                self.get_logger().error(
                    f'no policy node subscribed to {self.camera_pub.topic_name} and publishing '
                    f'{self.resolve_topic_name("action_chunk")} within {self.discovery_timeout}'
                    ' s; giving up')
                self.exit_code = 1
                self._finish()
            return
        if self.lockstep.expired(now):
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
        observation = self._in_sim(self._episode.apply_chunk, chunk, policy_s=waited)
        if observation is None:
            self._end_episode()
        else:
            self._send_observation(observation)

    # --- episodes (the Episode API of cliprt_core.eval) ---------------------------------------
    def _next_episode(self):
        while self.todo:
            spec = self.todo.popleft()
            suite, task_id, init_index = spec
            try:
                env = self._in_sim(self._env_for, suite, task_id)
            except Exception as exc:  # noqa: B902 - no env: this episode fails, the run goes on
                self._record(failure_record(spec, exc))
                continue
            video = str(self.results.video_path(*spec)) if self.config.video else None
            self._episode = Episode(env, init_index, video=video,
                                    **episode_options(self.config))
            self._announce(self._episode.instruction)
            observation = self._in_sim(self._episode.start)
            if observation is not None:
                self.get_logger().info(f'{suite} task {task_id} episode {init_index}: '
                                       f'{self._episode.instruction!r}')
                self._send_observation(observation)
                return
            self._record(self._episode.result().to_record())
        self._episode = None
        self._finish()

    def _end_episode(self, error=None, policy_s=0.0):
        episode = self._episode
        if error is not None:
            self._in_sim(episode.fail, error, policy_s=policy_s)
        self.lockstep.cancel()
        self._messages = None
        self._record(episode.result().to_record())
        self._next_episode()

    def _record(self, record):
        record = self.results.append(record)
        self.finished_now.append(record)
        outcome = 'success' if record['success'] else 'failure'
        reason = f' ({record["error"]})' if record.get('error') else ''
        self.get_logger().info(
            f'{record["suite"]} task {record["task_id"]} episode {record["episode"]}: {outcome} '
            f'after {record["steps"]} steps{reason}')

    def _finish(self):
        self._in_sim(self._drop_env)
        run = {**self.config.run_settings(), 'transport': 'ros2',
               'episodes_this_run': len(self.finished_now),
               'ignored_chunks': {'stale': self.lockstep.stale,
                                  'mismatched': self.lockstep.mismatched}}
        self.summary = self.results.write_summary(expected=self.wanted, run=run)
        self.finished = True
        overall = self.summary['overall']
        self.get_logger().info(
            f'evaluation done: {overall["successes"]}/{overall["episodes"]} successes; results '
            f'in {self.results.path}')

    def _in_sim(self, function, *args, **kwargs):
        """Run ``function`` on the simulator thread and return its result."""
        return self._sim.submit(function, *args, **kwargs).result()

    def _env_for(self, suite, task_id):
        if self._env_key != (suite, task_id):
            self._drop_env()
            self._env = self.env_factory(suite, task_id)
            self._env_key = (suite, task_id)
        return self._env

    def _drop_env(self):
        env, self._env, self._env_key = self._env, None, None
        if env is not None:
            try:
                env.close()
            except Exception as exc:  # noqa: B902 - closing must never stop the run
                self.get_logger().warning(f'closing the env failed: {format_error(exc)}')

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
        now_ns = self.get_clock().now().nanoseconds
        stamp_ns = max(now_ns, self._last_stamp_ns + 1)  # unique: it is the lockstep key
        self._last_stamp_ns = stamp_ns
        stamp = conversions.ns_to_stamp(stamp_ns)
        joints = JointState(name=list(JOINT_NAMES), position=[
            *map(float, observation.joint_states), *map(float, observation.gripper_states)])
        joints.header.stamp = stamp
        wrist = None
        if self.wrist_pub is not None and observation.wrist is not None:
            wrist = conversions.rgb_to_image(observation.wrist, stamp, self.wrist_frame_id)
        camera = conversions.rgb_to_image(observation.agentview, stamp, self.camera_frame_id)
        self._messages = (joints, wrist, camera)
        self._resends = 0
        self.lockstep.expect(stamp_ns, time.monotonic())
        self._publish(self._messages)

    def _publish(self, messages):
        joints, wrist, camera = messages
        self.joint_pub.publish(joints)
        if wrist is not None:
            self.wrist_pub.publish(wrist)
        self.camera_pub.publish(camera)  # last: the policy answers this one

    def _policy_connected(self):
        return (self.camera_pub.get_subscription_count() > 0
                and self.instruction_pub.get_subscription_count() > 0
                and self.count_publishers(self.resolve_topic_name('action_chunk')) > 0)

    def _log(self, kind, text, period=2.0):
        now = time.monotonic()
        if now - self._log_times.get(kind, -period) >= period:
            self._log_times[kind] = now
            self.get_logger().warning(text)

    def destroy_node(self):
        """Close the simulator, then destroy the node."""
        if not self._sim_closed:
            self._sim_closed = True
            self._in_sim(self._drop_env)
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
