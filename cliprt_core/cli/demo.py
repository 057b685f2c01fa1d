"""``cliprt-demo`` (``make demo``): one short LIBERO episode in-process, end to end.

Loads the tiny random-weight policy (or ``--checkpoint``), runs one libero_spatial episode with
the evaluation protocol (reset to init state 0, 10 settle steps, 8-action chunks) for a short
horizon, and prints the results table and the paths of the video and the plot. Each run writes a
fresh folder under ``demo_results/``.

  cliprt-demo
  cliprt-demo --checkpoint clip-rt/clip-rt-finetuned-libero-spatial --max-steps 220
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from cliprt_core.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cliprt-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="checkpoint path or hub id (default: random tiny)")
    parser.add_argument("--suite", default=None, help="LIBERO suite (default libero_spatial)")
    parser.add_argument("--task", type=int, default=None, help="task id (default 0)")
    parser.add_argument("--max-steps", dest="max_steps", type=int, default=None,
                        help="policy steps (default 48 from config/eval/demo.yaml)")
    parser.add_argument("--camera-size", dest="camera_size", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--results-dir", dest="results_dir", default=None,
                        help="default demo_results/<timestamp>")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from cliprt_core.cli.eval import eval_config, load_policy, report

    results_dir = args.results_dir or str(Path("demo_results") / time.strftime("%Y%m%d-%H%M%S"))
    values = {"checkpoint": args.checkpoint, "suite": args.suite,
              "tasks": None if args.task is None else str(args.task),
              "max_steps": args.max_steps, "camera_size": args.camera_size,
              "device": args.device, "results_dir": results_dir, "workers": 1, "episodes": 1,
              "progress": False}
    try:
        config = eval_config("demo", values)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"cliprt-demo: {exc}", file=sys.stderr)
        return 2
    from cliprt_core.eval.results import ResultsDir
    from cliprt_core.eval.runner import run_evaluation

    policy = load_policy(config, prog="cliprt-demo")
    suite, task_id, _ = config.episode_keys()[0]
    print(f"cliprt-demo: {suite} task {task_id}, {config.horizon(suite)} policy steps, "
          f"{config.camera_size}px, policy on {policy.device} -> {results_dir}", file=sys.stderr)
    summary = run_evaluation(config, policy)
    results = ResultsDir(results_dir)
    print(report(summary, results))
    record = results.records()[0]
    if record.get("error"):
        print(f"episode error: {record['error']}")
    if record.get("video"):
        print(f"video:    {results.path / record['video']}")
    times = record["time"]
    print(f"timing:   reset {times['reset_s']:.1f}s, simulator {times['sim_s']:.1f}s"
          f" ({record['steps']} steps), policy {times['policy_s']:.2f}s "
          f"({record['queries']} queries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
