"""
One robot served by the policy node: its topics, instruction, newest image and counters.

``policy_node`` serves one robot on its own relative topics (namespace ``''``), or several
robots, each under its namespace (``robots: env0,env1``: ``env0/camera/image_raw`` ...). No
rclpy here: the node creates the subscriptions and publishers and keeps them on the port.
"""

import re
import time

from cliprt_core.safety import StalenessWatchdog

#: Counters kept per robot (and summed over robots by the node).
STAT_KEYS = ('images', 'answered', 'dropped_busy', 'rejected', 'withheld', 'disabled',
             'no_instruction', 'instructions', 'inactive', 'requests')
_NAME = re.compile(r'^/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$')


def parse_robots(text: str) -> tuple[str, ...]:
    """Split ``'env0, env1'`` into namespaces; ValueError for an invalid or repeated one."""
    names = tuple(part.strip() for part in text.split(',')) if text.strip() else ()
    for name in names:
        if not _NAME.match(name):
            raise ValueError(f'robots: {name!r} is not a valid ROS namespace (letters, digits, '
                             "'_', separated by '/')")
    if len(set(names)) != len(names):
        raise ValueError(f'robots: a namespace is listed twice in {text!r}')
    return names


class RobotPort:
    """The per-robot state of the policy node (touched under the node's lock)."""

    def __init__(self, namespace: str, stale_image_timeout: float) -> None:
        """``namespace`` '' = the node's own relative topics."""
        self.namespace = namespace
        self.watchdog = StalenessWatchdog(stale_image_timeout)
        self.instruction: str | None = None  # accepted by the policy
        self.instruction_text: str | None = None  # the last instruction message seen
        self.pending = None  # (rgb, stamp msg, stamp s): the newest fresh unanswered image
        self.request_pending = False  # on_request: a chunk_request is waiting for an image
        self.in_flight = False  # one of its images is in the running model batch
        self.last_image = time.monotonic()
        self.stats = dict.fromkeys(STAT_KEYS, 0)
        self.chunk_pub = None
        self.primitive_pub = None
        self.camera_topic = ''

    def topic(self, name: str) -> str:
        """Return the topic ``name`` of this robot (relative unless the namespace is absolute)."""
        return f'{self.namespace.rstrip("/")}/{name}' if self.namespace else name

    def label(self) -> str:
        """Return the prefix of log lines: empty for the single robot, [env0] otherwise."""
        return f'[{self.namespace}] ' if self.namespace else ''

    def take(self, query_mode: str, now: float):
        """Return the image to answer now (and clear it), or None."""
        image = self.pending
        if self.in_flight or image is None:
            return None
        if query_mode == 'on_request':
            if not self.request_pending or not self.watchdog.is_fresh(image[2], now):
                return None
            self.request_pending = False
        self.pending = None
        self.in_flight = True
        return image
