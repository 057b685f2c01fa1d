"""Helpers for the ROS 2 tests: isolated DDS, deadline loops, a topic driver, colcon builds.

Importing this module isolates DDS for the whole test session: discovery stays on localhost and
the session gets its own ``ROS_DOMAIN_ID`` (from the pid, 1..100; ``CLIPRT_TEST_DOMAIN_ID``
overrides). Every test additionally uses its own namespace, so two sessions that happen to share
a domain still never see each other's messages.
"""

import os
from pathlib import Path
import signal
import subprocess
import sys
import time
import uuid

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PKG = 'cliprt_ros'
DOMAIN_ID = int(os.environ.get('CLIPRT_TEST_DOMAIN_ID', 1 + os.getpid() % 100))
os.environ['ROS_DOMAIN_ID'] = str(DOMAIN_ID)
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.pop('ROS_LOCALHOST_ONLY', None)  # deprecated; conflicts with the range above

DISCOVERY_S = 15.0  # generous upper bound; typical discovery on loopback is 0.5-2 s


def rclpy_available():
    try:
        import rclpy  # noqa: F401
        from sensor_msgs.msg import Image  # noqa: F401
        from std_srvs.srv import SetBool  # noqa: F401
        from trajectory_msgs.msg import JointTrajectory  # noqa: F401
    except ImportError:
        return False
    return True


def unique_namespace():
    return f'/cliprt_test_{uuid.uuid4().hex[:10]}'


def spin_until(executor, predicate, timeout, step=0.02):
    """Spin ``executor`` until ``predicate()`` is true or ``timeout`` s pass; return the result."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return bool(predicate())
        executor.spin_once(timeout_sec=step)


def spin_for(executor, seconds, step=0.02):
    """
    Spin for ``seconds``.

    Used only to give a message the chance to arrive before asserting that it did NOT; the
    positive control of each such test uses :func:`spin_until`.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=step)


def random_image(seed=0, size=256):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


class Driver:
    """What ``ros2 topic pub`` / ``ros2 topic echo`` do: feed a policy node, collect its output."""

    def __init__(self, namespace, image_qos='reliable', name='cliprt_test_driver'):
        import rclpy
        from sensor_msgs.msg import Image
        from std_msgs.msg import String
        from trajectory_msgs.msg import JointTrajectory

        from cliprt_ros import qos

        self.node = rclpy.create_node(name, namespace=namespace)
        self.chunks = []
        self.primitives = []
        self.instruction_pub = self.node.create_publisher(String, 'instruction', qos.latched_qos())
        self.image_pub = self.node.create_publisher(Image, 'camera/image_raw',
                                                    qos.qos_by_name(image_qos, 10))
        self.node.create_subscription(JointTrajectory, 'action_chunk', self.chunks.append,
                                      qos.reliable_qos(100))
        self.node.create_subscription(String, 'primitive', self.primitives.append,
                                      qos.reliable_qos(100))

    def now(self):
        return self.node.get_clock().now().to_msg()

    def instruct(self, text):
        from std_msgs.msg import String
        self.instruction_pub.publish(String(data=text))

    def send_image(self, rgb, stamp=None, encoding='rgb8'):
        from cliprt_ros import conversions
        stamp = self.now() if stamp is None else stamp
        self.image_pub.publish(conversions.rgb_to_image(rgb, stamp, 'camera', encoding))
        return stamp

    def send(self, msg):
        self.image_pub.publish(msg)

    def connected(self):
        """Return whether a policy subscribes our image topic and publishes our action topic."""
        return (self.image_pub.get_subscription_count() > 0
                and self.node.count_publishers(self.node.resolve_topic_name('action_chunk')) > 0)

    def answers_to(self, stamp):
        from cliprt_ros import conversions
        key = conversions.stamp_to_ns(stamp)
        return [c for c in self.chunks if conversions.stamp_to_ns(c.header.stamp) == key]

    def destroy(self):
        self.node.destroy_node()


# --------------------------------------------------------------------------- colcon install

COLCON = Path(sys.executable).parent / 'colcon'
COLCON_TIMEOUT_S = 300


def colcon_build(base, *extra_args):
    """
    Build the repo with the venv's colcon into ``base`` (build/, install/, log/ there).

    Return the install prefix of the package (``base/install/cliprt_ros``). ``extra_args`` go
    to ``colcon build`` (e.g. ``--symlink-install``). Raises ``FileNotFoundError`` when colcon
    is not installed next to the running python, ``RuntimeError`` when the build fails.
    """
    if not COLCON.exists():
        raise FileNotFoundError(f'colcon is not installed next to {sys.executable}')
    base = Path(base)
    cmd = [str(COLCON), '--log-base', str(base / 'log'), 'build', '--base-paths', str(REPO),
           '--build-base', str(base / 'build'), '--install-base', str(base / 'install'),
           '--event-handlers', 'console_direct-', *extra_args]
    proc = subprocess.run(cmd, cwd=base, env=colcon_env(base), capture_output=True, text=True,
                          timeout=COLCON_TIMEOUT_S)
    if proc.returncode != 0 or f'Finished <<< {PKG}' not in proc.stdout:
        raise RuntimeError(f'colcon build failed:\n{proc.stdout}\n{proc.stderr}')
    return base / 'install' / PKG


def colcon_env(base):
    """Environment of a build in ``base``: the venv's colcon, no user defaults, no overlays."""
    env = dict(os.environ, COLCON_HOME=str(Path(base) / 'colcon_home'))
    env['PATH'] = f'{COLCON.parent}{os.pathsep}{env.get("PATH", "")}'
    for var in ('AMENT_PREFIX_PATH', 'COLCON_PREFIX_PATH', 'PYTHONPATH'):
        env.pop(var, None)
    return env


def installed_env(prefix):
    """Environment in which the installed package (not the source tree) is imported."""
    site = prefix / 'lib' / f'python{sys.version_info[0]}.{sys.version_info[1]}' / 'site-packages'
    env = dict(os.environ)
    env['PYTHONPATH'] = str(site)
    env['AMENT_PREFIX_PATH'] = str(prefix)
    env['PYTHONUNBUFFERED'] = '1'
    env['RCUTILS_LOGGING_BUFFERED_STREAM'] = '0'
    env.pop('CLIPRT_CONFIG_DIR', None)
    return env


class NodeProcess:
    """A colcon-installed node executable run as a subprocess (output captured to a file)."""

    def __init__(self, prefix, executable, ros_args, log_dir):
        self.exe = prefix / 'lib' / PKG / executable
        self.log_path = Path(log_dir) / f'{executable}_{uuid.uuid4().hex[:6]}.log'
        self._log = open(self.log_path, 'w')
        self.proc = subprocess.Popen([str(self.exe), '--ros-args', *ros_args],
                                     env=installed_env(prefix), stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=log_dir)

    def output(self):
        self._log.flush()
        return self.log_path.read_text()

    def wait_for_output(self, text, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            if self.proc.poll() is not None:
                return text in self.output()
            time.sleep(0.05)
        return False

    def terminate(self, sig=signal.SIGTERM, timeout=15.0, repeat=1):
        """Send ``sig`` (``repeat`` times, 50 ms apart, as a terminal's Ctrl-C under ros2 launch
        arrives twice); return the exit code (``None`` if it did not exit in ``timeout``)."""
        for _ in range(repeat):
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
                time.sleep(0.05)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()
