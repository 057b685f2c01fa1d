"""
One policy node for N robots against N policy nodes: queries/s and latency, side by side.

For each N (default 1, 2, 4, 8) and each setup, N clients run closed loops for ``--seconds``:
each publishes an observation exactly as ``libero_bridge_node`` does (``rgb_to_image`` ->
``<robot>/camera/image_raw``, reliable), waits for the ``action_chunk`` that answers its stamp,
and sends the next one (the lockstep simulator's pattern). Setups:

* ``one-node``: ONE ``policy_node`` process with ``robots: env0,...,env<N-1>`` (pending images of
  all robots answered in one ``act_batch`` forward);
* ``n-nodes``: N ``policy_node`` processes, one per robot namespace (each its own model copy).

Reported per (setup, N): total queries/s and round-trip latency p50/p99 (ms) over all clients
(the machine's load average before and after goes into ``--json``). Clients share one process
(one executor thread spins them all); each policy node is its own process, as ``ros2 launch``
runs it. DDS stays on this machine in a private domain.

    python -m cliprt_ros.multi_bench --clients 1 2 4 8 --seconds 5 --size 256 --json multi.json
"""

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import threading
import time

from cliprt_ros.bench import _child_env, _Client, INSTRUCTION

SETUPS = ('one-node', 'n-nodes')


def _start_nodes(setup, namespace, count, model_config):
    """Start the policy node process(es) of ``setup``; return the Popen objects."""
    params = {'image_qos': 'reliable', 'stale_image_timeout': 0.0, 'model_config': model_config,
              'device': 'cpu', 'executor': 'events'}
    if setup == 'one-node':
        spaces = [(namespace, {'robots': ','.join(f'env{i}' for i in range(count))})]
    else:
        spaces = [(f'{namespace}/env{i}', {}) for i in range(count)]
    procs = []
    for space, extra in spaces:
        ros_args = ['-r', f'__ns:={space}']
        for key, value in {**params, **extra}.items():
            ros_args += ['-p', f'{key}:={value}']
        procs.append(subprocess.Popen(
            [sys.executable, '-m', 'cliprt_ros.policy_node', '--ros-args', *ros_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_child_env()))
    return procs


def run_setup(setup, count, images, seconds, model_config='cliprt-tiny'):
    """Return the measurement of ``setup`` with ``count`` clients (a dict)."""
    import numpy as np
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import String

    from cliprt_core.bench.timing import latency_stats
    from cliprt_ros.spin import spin_until

    namespace = f'/multi_bench_{os.getpid()}_{setup.replace("-", "_")}_{count}'
    procs = _start_nodes(setup, namespace, count, model_config)
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    clients = []
    try:
        for i in range(count):
            client = _Client(f'{namespace}/env{i}', context)
            clients.append(client)
            executor.add_node(client.node)
        spinner = threading.Thread(target=spin_until, args=(executor,), daemon=True)
        spinner.start()
        deadline = time.monotonic() + 180
        while not all(c.connected() for c in clients):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f'{setup} x{count}: the policy node(s) did not come up')
            time.sleep(0.05)
        for client in clients:
            client.instruction.publish(String(data=INSTRUCTION))
            client.instruction.wait_for_all_acked()
        for index, client in enumerate(clients):  # warm-up (first images may precede matching)
            warm = 0
            while warm < 3:
                try:
                    client.ask(images[(index + warm) % len(images)], timeout=2.0)
                    warm += 1
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise
        latencies = [[] for _ in clients]
        start_gate = threading.Barrier(count + 1)
        stop_at = []

        def loop(index):
            client, mine = clients[index], latencies[index]
            start_gate.wait()
            k = index
            while time.perf_counter() < stop_at[0]:
                begin = time.perf_counter()
                client.ask(images[k % len(images)])
                mine.append(time.perf_counter() - begin)
                k += count

        threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(count)]
        for thread in threads:
            thread.start()
        began = time.perf_counter()
        stop_at.append(began + seconds)
        start_gate.wait()
        for thread in threads:
            thread.join(timeout=seconds + 120)
        wall = time.perf_counter() - began
        every = np.concatenate([np.asarray(x) for x in latencies])
        stats = latency_stats(every)
        return {'queries_per_s': round(every.size / wall, 2), 'p50_ms': stats['p50_ms'],
                'p99_ms': stats['p99_ms'], 'queries': int(every.size),
                'per_client': [len(x) for x in latencies],
                'per_client_max_ms': [round(1e3 * max(x, default=0.0), 1) for x in latencies]}
    finally:
        rclpy.try_shutdown(context=context)
        executor.shutdown()
        for client in clients:
            client.node.destroy_node()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv=None):
    """Run every (setup, N); print the table side by side (and write ``--json``)."""
    parser = argparse.ArgumentParser(prog='python -m cliprt_ros.multi_bench',
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--clients', type=int, nargs='+', default=[1, 2, 4, 8])
    parser.add_argument('--seconds', type=float, default=5.0, help='measured seconds per run')
    parser.add_argument('--size', type=int, default=256, help='image side in pixels')
    parser.add_argument('--model-config', default='cliprt-tiny')
    parser.add_argument('--setups', nargs='+', choices=SETUPS, default=list(SETUPS))
    parser.add_argument('--json', help='also write the results to this file')
    parser.add_argument('--dds-profile', help='Fast DDS XML profile for this process and the '
                        'nodes (FASTRTPS_DEFAULT_PROFILES_FILE), e.g. '
                        'config/dds/fastdds_large_images.xml; default: Fast DDS defaults')
    args = parser.parse_args(argv)
    if min(args.clients) < 1 or args.seconds <= 0 or args.size < 1:
        parser.error('--clients, --seconds and --size must be positive')
    if args.dds_profile:
        if not os.path.isfile(args.dds_profile):
            parser.error(f'--dds-profile: no such file: {args.dds_profile}')
        os.environ['FASTRTPS_DEFAULT_PROFILES_FILE'] = os.path.abspath(args.dds_profile)
    os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    import numpy as np

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
              for _ in range(64)]
    results = {'size': args.size, 'model': args.model_config, 'seconds': args.seconds,
               'dds_profile': args.dds_profile,
               'cpu_count': os.cpu_count(), 'load_before': os.getloadavg()[0], 'runs': {}}
    print(f'{"N":>3} {"setup":<9} {"queries/s":>10} {"p50 ms":>8} {"p99 ms":>8}', flush=True)
    for count in args.clients:
        for setup in args.setups:
            result = run_setup(setup, count, images, args.seconds, args.model_config)
            results['runs'][f'{setup}/{count}'] = result
            print(f'{count:>3} {setup:<9} {result["queries_per_s"]:>10.1f} '
                  f'{result["p50_ms"]:>8.2f} {result["p99_ms"]:>8.2f}', flush=True)
    results['load_after'] = os.getloadavg()[0]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
