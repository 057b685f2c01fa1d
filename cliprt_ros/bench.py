"""
ROS round-trip overhead: bridge -> policy_node -> bridge against the in-process ``act()``.

Measures per query, on the same machine and run, with 256x256 RGB images and the tiny model:

1. ``in-process``: ``Policy.act(image)`` (what ``cliprt-eval`` calls);
2. ``ros-1proc``: a bridge-side client publishes the observation exactly as libero_bridge_node
   does (``rgb_to_image`` -> ``camera/image_raw``, reliable), waits for the ``action_chunk``
   whose stamp answers it and converts it back (``trajectory_to_chunk``); the policy node runs
   in the same process, each node on its own executor thread (``python -m cliprt_ros.run_eval``);
3. ``ros-1proc-mte``: the same with one rclpy ``MultiThreadedExecutor`` for both nodes
   (``run_eval --executor multi``; slow in rclpy 7.1, ros2/rclpy#1452);
4. ``ros-2proc``: the policy node in its own process (what the launch file runs);

and ``-events`` variants of 2 and 4 where every node (client and policy node) spins an
``rclpy.experimental.EventsExecutor`` instead of a ``SingleThreadedExecutor``.

Overhead = ROS p50 - in-process p50 (ms), and their ratio, against ``act()`` timed in the
same run on the thread that serves the ROS queries (``ros-2proc``: interleaved with the round
trips, so ``overhead_p50_ms`` / ``overhead_p99_ms`` are percentiles of the per-query
differences round trip - act()). Each mode runs in a fresh process: torch on CPU is ~3x
slower per query on any thread but the first one that ran it (one OpenMP team per thread),
which is why policy_node keeps all model work on one thread. DDS stays on this machine
(``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``) in a private domain.

    python -m cliprt_ros.bench --queries 200 --size 256
    python -m cliprt_ros.bench --modes ros-1proc ros-2proc --json bench_ros.json

It lives in cliprt_ros, not in cliprt_core's ``cliprt-bench``, because it needs rclpy.
"""

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import threading
import time

PACKAGE_PARENT = Path(__file__).resolve().parents[1]  # the folder that holds cliprt_ros
MODES = ('in-process', 'ros-1proc', 'ros-1proc-events', 'ros-1proc-mte', 'ros-2proc',
         'ros-2proc-events')
INSTRUCTION = 'put the black bowl on the plate'


def _child_env():
    """Environment of the subprocesses: this cliprt_ros (and cliprt_core) importable."""
    path = os.pathsep.join(p for p in (str(PACKAGE_PARENT), os.environ.get('PYTHONPATH')) if p)
    return dict(os.environ, PYTHONPATH=path)


def bench_in_process(policy, images):
    """Time ``policy.act`` on each image (seconds), after a ``reset`` to the instruction."""
    policy.reset(INSTRUCTION)
    times = []
    for image in images:
        start = time.perf_counter()
        policy.act(image)
        times.append(time.perf_counter() - start)
    return times


class _Client:
    """The bridge side: publishes observations like libero_bridge_node and awaits answers."""

    def __init__(self, namespace, context=None):
        import rclpy
        from sensor_msgs.msg import Image
        from std_msgs.msg import String
        from trajectory_msgs.msg import JointTrajectory

        from cliprt_ros import qos

        self.node = rclpy.create_node('bench_bridge', namespace=namespace, context=context)
        self.answers = {}
        self.answered = threading.Condition()
        self.instruction = self.node.create_publisher(String, 'instruction', qos.latched_qos())
        self.camera = self.node.create_publisher(Image, 'camera/image_raw', qos.reliable_qos(1))
        self.node.create_subscription(JointTrajectory, 'action_chunk', self._on_chunk,
                                      qos.reliable_qos(10))
        self._stamp = 0

    def _on_chunk(self, msg):
        from cliprt_ros.conversions import stamp_to_ns, trajectory_to_chunk

        chunk = trajectory_to_chunk(msg)
        with self.answered:
            self.answers[stamp_to_ns(msg.header.stamp)] = chunk
            self.answered.notify_all()

    def connected(self):
        return (self.camera.get_subscription_count() > 0
                and self.instruction.get_subscription_count() > 0
                and self.node.count_publishers(self.node.resolve_topic_name('action_chunk')) > 0)

    def ask(self, image, timeout=60.0):
        """
        Publish one observation; return the chunk that answers it.

        The executors spin in other threads; the answer callback wakes this thread, as the
        bridge's own chunk callback would be run.
        """
        from cliprt_ros.conversions import ns_to_stamp, rgb_to_image

        self._stamp = max(self.node.get_clock().now().nanoseconds, self._stamp + 1)
        key = self._stamp
        self.camera.publish(rgb_to_image(image, ns_to_stamp(key), 'agentview_camera'))
        with self.answered:
            if not self.answered.wait_for(lambda: key in self.answers, timeout):
                raise TimeoutError('no answer from the policy node')
            return self.answers.pop(key)


def bench_ros(images, mode, model_config='cliprt-tiny'):
    """Return ``(in-process act() times, round-trip times)`` in seconds for ``mode``."""
    import rclpy
    from rclpy.parameter import Parameter
    from std_msgs.msg import String

    from cliprt_ros.policy_node import PolicyNode
    from cliprt_ros.spin import make_executor, shutdown_executor, spin_until

    namespace = f'/bench_ros_{os.getpid()}'
    kind = 'events' if mode.endswith('-events') else 'single'
    params = {'image_qos': 'reliable', 'stale_image_timeout': 0.0, 'model_config': model_config,
              'device': 'cpu', 'executor': kind}
    separate = mode.startswith('ros-2proc')
    process = policy_node = None
    executors, spinners = [], []
    rclpy.init()
    try:
        if separate:
            ros_args = ['-r', f'__ns:={namespace}']
            for key, value in params.items():
                ros_args += ['-p', f'{key}:={value}']
            process = subprocess.Popen(
                [sys.executable, '-m', 'cliprt_ros.policy_node', '--ros-args', *ros_args],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_child_env())
            from cliprt_core.inference import Policy

            policy = Policy.from_config(model_config, device='cpu')
        else:  # the node loads the model on its model thread (as in run_eval)
            policy_node = PolicyNode(namespace=namespace, parameter_overrides=[
                Parameter(k, value=v) for k, v in params.items()])
            policy = policy_node.policy
        client = _Client(namespace)
        nodes = [n for n in (policy_node, client.node) if n is not None]
        if mode == 'ros-1proc-mte':
            executors.append(make_executor('multi'))
            for node in nodes:
                executors[0].add_node(node)
        else:
            for node in nodes:
                executors.append(make_executor(kind))
                executors[-1].add_node(node)
        for executor in executors:
            spinners.append(threading.Thread(target=spin_until, args=(executor,), daemon=True))
            spinners[-1].start()
        deadline = time.monotonic() + 120
        while not client.connected():
            if time.monotonic() > deadline or (process and process.poll() is not None):
                raise RuntimeError('the policy node did not come up')
            time.sleep(0.05)
        client.instruction.publish(String(data=INSTRUCTION))
        client.instruction.wait_for_all_acked()
        warm = 0
        while warm < 5:  # warm-up; retried: the first image may precede endpoint matching
            try:
                client.ask(images[warm % len(images)], timeout=2.0)
                warm += 1
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
        if not separate:  # on the node's model thread, before the round trips
            policy_node._on_model(bench_in_process, policy, images[:20])
            local = policy_node._on_model(bench_in_process, policy, images)
            remote = []
        else:
            policy.reset(INSTRUCTION)
            bench_in_process(policy, images[:20])
            local, remote = [], []
        for image in images:
            if separate:
                start = time.perf_counter()
                policy.act(image)
                local.append(time.perf_counter() - start)
            start = time.perf_counter()
            client.ask(image)
            remote.append(time.perf_counter() - start)
        return local, remote
    finally:
        rclpy.try_shutdown()  # ends the spin threads
        for spinner in spinners:
            spinner.join(timeout=10)
        for executor in executors:
            shutdown_executor(executor)
        if policy_node is not None:
            policy_node.destroy_node()
        if process is not None:
            process.terminate()
            process.wait(timeout=30)


def main(argv=None):
    """Run the benchmark; print a table (or, with ``--quiet``, the results as JSON)."""
    parser = argparse.ArgumentParser(prog='python -m cliprt_ros.bench', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--queries', type=int, default=100)
    parser.add_argument('--size', type=int, default=256, help='image side in pixels')
    parser.add_argument('--model-config', default='cliprt-tiny')
    parser.add_argument('--modes', nargs='+', choices=MODES, default=list(MODES))
    parser.add_argument('--json', help='also write the results to this file')
    parser.add_argument('--quiet', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.queries < 1 or args.size < 1:
        parser.error('--queries and --size must be >= 1')

    os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    import numpy as np
    import torch

    from cliprt_core.bench import latency_stats

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
              for _ in range(args.queries)]
    results = {'size': args.size, 'model': args.model_config,
               'torch_threads': torch.get_num_threads(), 'cpu_count': os.cpu_count()}
    if len(args.modes) > 1:  # one fresh process per mode
        for mode in MODES:
            if mode in args.modes:
                out = subprocess.run(
                    [sys.executable, '-m', 'cliprt_ros.bench', '--queries', str(args.queries),
                     '--size', str(args.size), '--model-config', args.model_config,
                     '--modes', mode, '--quiet'], capture_output=True, text=True,
                    env=_child_env())
                if out.returncode != 0:
                    print(f'{mode} failed:\n{out.stderr}', file=sys.stderr)
                    return 1
                results[mode] = json.loads(out.stdout[out.stdout.index('{'):])[mode]
    elif args.modes[0] == 'in-process':
        from cliprt_core.inference import Policy

        policy = Policy.from_config(args.model_config, device='cpu')
        bench_in_process(policy, images[:20])
        results['in-process'] = latency_stats(bench_in_process(policy, images))
    else:
        mode = args.modes[0]
        local, remote = bench_ros(images, mode, model_config=args.model_config)
        base, result = latency_stats(local), latency_stats(remote)
        result['in_process_p50_ms'] = base['p50_ms']
        result['overhead_ms'] = round(result['p50_ms'] - base['p50_ms'], 3)
        result['ratio'] = round(result['p50_ms'] / base['p50_ms'], 2)
        # per-query overhead (paired by image: interleaved in ros-2proc*, same order otherwise)
        overhead = latency_stats(np.asarray(remote) - np.asarray(local))
        result['overhead_p50_ms'] = overhead['p50_ms']
        result['overhead_p99_ms'] = overhead['p99_ms']
        results[mode] = result
    if args.quiet:
        print(json.dumps(results))
        return 0
    print(f'{"mode":<17} {"p50 ms":>8} {"p90 ms":>8} {"p99 ms":>8} {"act() ms":>9} '
          f'{"overhead p50":>13} {"overhead p99":>13} {"ratio":>6}')
    for mode in MODES:
        if mode in results:
            r = results[mode]
            print(f'{mode:<17} {r["p50_ms"]:>8.2f} {r["p90_ms"]:>8.2f} {r["p99_ms"]:>8.2f} '
                  f'{r.get("in_process_p50_ms", r["p50_ms"]):>9.2f} '
                  f'{r.get("overhead_p50_ms", 0.0):>13.2f} '
                  f'{r.get("overhead_p99_ms", 0.0):>13.2f} {r.get("ratio", 1.0):>6.2f}')
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
