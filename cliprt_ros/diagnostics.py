"""``diagnostic_msgs/DiagnosticArray`` on ``/diagnostics`` from plain numbers (no updater lib)."""

from cliprt_ros.qos import reliable_qos
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

#: The aggregator's topic; absolute on purpose (every node of a robot reports to one place).
TOPIC = '/diagnostics'
LEVELS = {'ok': DiagnosticStatus.OK, 'warn': DiagnosticStatus.WARN,
          'error': DiagnosticStatus.ERROR, 'stale': DiagnosticStatus.STALE}


def create_diagnostics_publisher(node):
    return node.create_publisher(DiagnosticArray, TOPIC, reliable_qos(10))


def status(name, hardware_id, level, message, values):
    """One ``DiagnosticStatus``; ``values`` (a dict) become key/value strings (None -> '')."""
    return DiagnosticStatus(
        level=LEVELS[level], name=name, message=message, hardware_id=hardware_id,
        values=[KeyValue(key=str(k), value='' if v is None else _text(v))
                for k, v in values.items()])


def publish(node, publisher, statuses):
    """Publish ``statuses`` stamped with the node's clock."""
    array = DiagnosticArray(status=list(statuses))
    array.header.stamp = node.get_clock().now().to_msg()
    publisher.publish(array)


def latency_values(prefix, summary):
    """``{prefix_p50_ms, prefix_p99_ms, prefix_max_ms}`` of a RollingWindow summary (seconds)."""
    return {f'{prefix}_{key}_ms': None if value is None else round(value * 1e3, 2)
            for key, value in (('p50', summary.p50), ('p99', summary.p99), ('max', summary.max))}


def _text(value):
    if isinstance(value, float):
        return f'{value:.4g}'
    return str(value)
