r"""
A multi-node Ray evaluation on one machine (a cluster of raylets, to try the cluster path).

``cliprt-eval --executor ray --ray-address`` against a Ray cluster of several nodes started here.

  python -m cliprt_core.eval.ray_local_cluster --nodes 2 --results-dir runs/ray-cluster \
      -- --suite libero_spatial --tasks 0 --episodes 4 --max-steps 40 --camera-size 128
  make ray-cluster-eval

Starts a head node and ``--nodes - 1`` worker nodes (``ray.cluster_utils.Cluster``: real raylets
and object stores, one CPU each, so each env actor lands on its own node), then runs
``cliprt-eval`` as a separate driver process that joins the cluster by its address, exactly as on
a real cluster (``ray start --head`` / ``ray start --address``). ``--remove-node-after K`` takes
the last worker node away once K episodes are recorded (node loss). At the end it prints which
node ran each episode (the ``ray_node`` of the records) and the driver's exit code.
"""

from __future__ import annotations

import argparse
from collections import Counter
import os
import subprocess
import sys
import time

from cliprt_core.eval.results import ResultsDir


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser."""
    parser = argparse.ArgumentParser(prog='python -m cliprt_core.eval.ray_local_cluster',
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--nodes', type=int, default=2, help='Ray nodes (head included)')
    parser.add_argument('--results-dir', required=True, help='results folder of the evaluation')
    parser.add_argument('--remove-node-after', type=int, default=0,
                        help='remove the last worker node after this many episodes (0: never)')
    parser.add_argument('--timeout', type=float, default=1800.0, help='seconds for the driver')
    parser.add_argument('eval_args', nargs='*', help='cliprt-eval flags (after --)')
    return parser


def main(argv: list[str] | None = None) -> int:
    """Start the cluster, run the driver to its end, print episodes per node; its exit code."""
    args = build_parser().parse_args(argv)
    if args.nodes < 2:
        print('ray_local_cluster: --nodes must be >= 2', file=sys.stderr)
        return 2
    from cliprt_core.eval.ray_hosts import import_ray

    import_ray()
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True,
                      head_node_args={'num_cpus': 1, 'include_dashboard': False})
    workers = [cluster.add_node(num_cpus=1) for _ in range(args.nodes - 1)]
    cluster.wait_for_nodes()
    print(f'Ray cluster at {cluster.address}: {args.nodes} nodes x 1 CPU', flush=True)
    results = ResultsDir(args.results_dir)
    command = [sys.executable, '-m', 'cliprt_core.cli.eval', '--executor', 'ray',
               '--ray-address', cluster.address, '--workers', str(args.nodes),
               '--results-dir', args.results_dir, *args.eval_args]
    started = time.monotonic()
    try:
        driver = subprocess.Popen(command, env={**os.environ, 'RAY_ADDRESS': cluster.address})
        removed = False
        while driver.poll() is None:
            if time.monotonic() - started > args.timeout:
                driver.terminate()
                driver.wait(60)
                print(f'ray_local_cluster: the driver ran over {args.timeout:.0f} s; stopped',
                      file=sys.stderr)
                return 1
            if (args.remove_node_after and not removed
                    and len(results.records()) >= args.remove_node_after):
                cluster.remove_node(workers[-1])
                removed = True
                print(f'removed a worker node after {args.remove_node_after} episodes', flush=True)
            time.sleep(0.5)
    finally:
        cluster.shutdown()
    wall = time.monotonic() - started
    by_node = Counter(record.get('ray_node') for record in results.records())
    errors = [r for r in results.records() if r.get('error')]
    print(f'driver exit code {driver.returncode}, {wall:.1f} s; episodes per Ray node: '
          + ', '.join(f'{node}: {count}' for node, count in sorted(by_node.items(), key=str)))
    for record in errors:
        print(f'  episode {record["episode"]}: {record["error"]}')
    return driver.returncode


if __name__ == '__main__':
    sys.exit(main())
