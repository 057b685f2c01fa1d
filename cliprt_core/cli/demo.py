"""
``cliprt-demo`` (``make demo``): one short LIBERO episode in-process, end to end.

Loads the tiny random-weight policy (or ``--checkpoint``), runs one libero_spatial episode with
the evaluation protocol (reset to init state 0, 10 settle steps, 8-action chunks) for a short
horizon, and prints the results table and the paths of the video and the plot. Each run writes a
fresh folder under ``demo_results/``.

  cliprt-demo
  cliprt-demo --checkpoint clip-rt/clip-rt-finetuned-libero-spatial --max-steps 220
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time
from typing import Sequence

from cliprt_core.cli.options import add_config_flags, given_flags
from cliprt_core.config import ConfigError
from cliprt_core.eval.config import CLUSTER_SETTINGS, EvalConfig, load_eval_config

# One episode of one task, in this process: these settings are not the demo's to choose.
_FIXED = ('tasks', 'episodes', 'workers', 'progress', *CLUSTER_SETTINGS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='cliprt-demo', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(parser, EvalConfig, exclude=_FIXED)
    parser.add_argument('--task', type=int, default=None, help='task id (default 0)')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from cliprt_core.cli.eval import load_policy
    from cliprt_core.eval.report import report
    from cliprt_core.inference.factory import PolicyLoadError

    results_dir = args.results_dir or str(Path('demo_results') / time.strftime('%Y%m%d-%H%M%S'))
    values = {**given_flags(args, EvalConfig, exclude=_FIXED), 'results_dir': results_dir,
              'tasks': None if args.task is None else str(args.task),
              'workers': 1, 'episodes': 1, 'progress': False}
    try:
        config = load_eval_config('demo', values)
        policy = load_policy(config, prog='cliprt-demo')
    except (ConfigError, FileNotFoundError, PolicyLoadError) as exc:
        print(f'cliprt-demo: {exc}', file=sys.stderr)
        return 2
    from cliprt_core.eval.results import ResultsDir
    from cliprt_core.eval.runner import run_evaluation

    suite, task_id, _ = config.episode_keys()[0]
    print(f'cliprt-demo: {suite} task {task_id}, {config.horizon(suite)} policy steps, '
          f'{config.camera_size}px, policy on {policy.device} -> {results_dir}', file=sys.stderr)
    summary = run_evaluation(config, policy)
    results = ResultsDir(results_dir)
    print(report(summary, results))
    record = results.records()[0]
    if record.get('error'):
        print(f"episode error: {record['error']}")
    if record.get('video'):
        print(f"video:    {results.path / record['video']}")
    times = record['time']
    print(f"timing:   reset {times['reset_s']:.1f}s, simulator {times['sim_s']:.1f}s"
          f" ({record['steps']} steps), policy {times['policy_s']:.2f}s "
          f"({record['queries']} queries)")
    return 0


if __name__ == '__main__':
    sys.exit(main())
