"""
QoS profiles of the cliprt topics, selectable by name from node parameters.

* ``sensor_data``: best effort, volatile, keep last 1 - live cameras; a late frame is worth
  nothing, so nothing is retransmitted or queued.
* ``reliable``: reliable, volatile, keep last ``depth`` - the simulator (lockstep: every
  observation must arrive) and action chunks.
* :func:`latched_qos`: reliable, transient local, depth 1 - the instruction, so a node that
  starts late still receives the current one.
"""

from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

QOS_NAMES = ('sensor_data', 'reliable')


def sensor_data_qos(depth=1):
    """Best effort, volatile, keep last ``depth`` (default 1)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


def reliable_qos(depth=10):
    """Reliable, volatile, keep last ``depth``."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def latched_qos():
    """Reliable, transient local, keep last 1: late subscribers get the last message."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def silent_qos_events():
    """
    Return subscription event callbacks that ignore incompatible-QoS events (no warning).

    For a subscription that is expected not to match some publishers, e.g. the transient-local
    twin of a volatile subscription on the same topic.
    """
    return SubscriptionEventCallbacks(incompatible_qos=lambda event: None)


def qos_by_name(name, depth=1):
    """Return the profile called ``name`` (one of :data:`QOS_NAMES`) with ``depth``."""
    if name == 'sensor_data':
        return sensor_data_qos(depth)
    if name == 'reliable':
        return reliable_qos(depth)
    raise ValueError(f'unknown QoS profile {name!r}; expected one of {", ".join(QOS_NAMES)}')


def silent_publisher_hint(node, topic, qos_name):
    """
    Return the likely reason a subscription of profile ``qos_name`` gets nothing on ``topic``.

    A best-effort publisher never matches a reliable subscription (QoS incompatible); a
    best-effort subscription loses large frames on a lossy link; otherwise the publisher has
    not published yet (e.g. a simulator still creating its environment).
    """
    offers = [info.qos_profile.reliability for info in node.get_publishers_info_by_topic(topic)]
    if qos_name == 'reliable' and ReliabilityPolicy.BEST_EFFORT in offers:
        return ('a publisher offers best effort, which never matches this reliable '
                'subscription: set image_qos:=sensor_data')
    if qos_name == 'sensor_data':
        return ('with best effort DDS drops large frames it cannot deliver whole (e.g. over a '
                'lossy link): try image_qos:=reliable')
    return 'it has not published yet (e.g. a simulator still starting) or its frames are lost'
