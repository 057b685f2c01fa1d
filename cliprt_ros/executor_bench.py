"""
Executor timing: control-period jitter and end-to-end latency (image stamp -> executed action).

One process, each node on its own executor thread (the composition a robot runs): a camera
publishes random images at ``--camera-hz`` (stamped on capture), ``policy_node`` answers the
executor's chunk requests (``query_mode: on_request``), ``action_executor`` runs its 20 Hz timer.
After a warm-up the executor's own statistics are read: the wall-clock period between ticks
(p50 / p99, and the p99 deviation from the period) and, per chunk, the time from the image stamp
to its first executed action (p50 / p99), next to the policy's query latency. Every message goes
over DDS on this machine.

    python -m cliprt_ros.executor_bench --seconds 20 --model-config cliprt-tiny
"""

import argparse
import json
import os
import sys
import time


def _nodes(args):
    import numpy as np
    import rclpy
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from cliprt_ros import conversions, qos
    from cliprt_ros.executor_node import ActionExecutorNode
    from cliprt_ros.policy_node import PolicyNode

    camera = rclpy.create_node('bench_camera')
    image_pub = camera.create_publisher(Image, 'camera/image_raw', qos.sensor_data_qos(1))
    instruction_pub = camera.create_publisher(String, 'instruction', qos.latched_qos())
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8) for _ in range(8)]
    count = [0]

    def capture():
        count[0] += 1
        image_pub.publish(conversions.rgb_to_image(
            frames[count[0] % len(frames)], camera.get_clock().now().to_msg(), 'camera'))

    camera.create_timer(1.0 / args.camera_hz, capture)
    instruction_pub.publish(String(data='put the bowl on the plate'))
    policy = PolicyNode(parameter_overrides=[
        Parameter('model_config', value=args.model_config),
        Parameter('query_mode', value='on_request'),
        Parameter('image_qos', value='sensor_data')])
    executor = ActionExecutorNode(parameter_overrides=[
        Parameter('aggregation', value=args.aggregation)])
    return camera, policy, executor


def run(args):
    """Spin the three nodes for ``args.seconds`` after warm-up; return the measurements."""
    import numpy as np

    from cliprt_ros.spin import spinning

    nodes = _nodes(args)
    camera, policy, executor_node = nodes
    try:
        with spinning(nodes):
            deadline = time.monotonic() + 60
            while executor_node.runtime.counters.executed < 20 and time.monotonic() < deadline:
                time.sleep(0.1)
            runtime = executor_node.runtime
            runtime.scheduler.first_action_latency.clear()  # measure from here on
            executor_node.tick_intervals.clear()
            before = runtime.counters.as_dict()
            time.sleep(args.seconds)
            counters = {k: v - before[k] for k, v in runtime.counters.as_dict().items()}
            ticks = executor_node.tick_intervals.summary()
            first = runtime.scheduler.first_action_latency.summary()
            queries = policy.query_latency.summary()
            intervals = np.array(executor_node.tick_intervals.values())
    finally:
        for node in nodes:
            node.destroy_node()
    period = executor_node.config.control_period

    def ms(value):
        return None if value is None else round(value * 1e3, 2)

    return {
        'seconds': args.seconds, 'camera_hz': args.camera_hz, 'size': args.size,
        'model': args.model_config, 'aggregation': args.aggregation,
        'tick_period_p50_ms': ms(ticks.p50), 'tick_period_p99_ms': ms(ticks.p99),
        'tick_jitter_p99_ms': ms(float(np.percentile(np.abs(intervals - period), 99))),
        'image_to_action_p50_ms': ms(first.p50), 'image_to_action_p99_ms': ms(first.p99),
        'query_p50_ms': ms(queries.p50), 'query_p99_ms': ms(queries.p99),
        'executed': counters['executed'], 'underruns': counters['underruns'],
        'skipped': counters['skipped'], 'chunks': counters['chunks'],
        'policy': dict(policy.stats), 'executor_total': runtime.counters.as_dict(),
    }


def main(argv=None):
    """Run the benchmark and print its numbers (JSON with ``--json``)."""
    parser = argparse.ArgumentParser(prog='python -m cliprt_ros.executor_bench',
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seconds', type=float, default=20.0)
    parser.add_argument('--camera-hz', type=float, default=30.0)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--model-config', default='cliprt-tiny')
    parser.add_argument('--aggregation', choices=('latest', 'ensemble'), default='latest')
    parser.add_argument('--json', help='also write the results to this file')
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.camera_hz <= 0 or args.size < 1:
        parser.error('--seconds, --camera-hz and --size must be > 0')
    os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    import rclpy

    rclpy.init()
    try:
        results = run(args)
    finally:
        rclpy.try_shutdown()
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        with open(args.json, 'w') as f:
            f.write(text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
