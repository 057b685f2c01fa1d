#!/usr/bin/env python3
"""LIBERO evaluation throughput: env steps/s with 1 and N env workers, policy vs simulator time.

Runs the real evaluation loop (``run_evaluation``: reset + 10 settle steps + 8-action chunks)
with the given policy (default: the random tiny model, whose cost is negligible, so the numbers
are the simulator's) on a few episodes, once per worker count, and reports:

- env steps/s over the wall clock, counting policy steps and settle steps (resets included),
- the same for policy steps only, and the ratio to 1 worker,
- where the time of one episode goes: reset (incl. settle), simulator steps, policy queries.

Examples::

    python training/bench_sim.py                                   # 1 vs 2 workers, 256 px
    python training/bench_sim.py --workers 1 4 8 --episodes 8 --max-steps 220
    python training/bench_sim.py --checkpoint PATH --device cuda   # a real policy on a GPU
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cliprt_core.eval.config import EvalConfig  # noqa: E402
from cliprt_core.sim.protocol import NUM_DUMMY_STEPS  # noqa: E402


def measure(policy, workers: int, args, folder: Path) -> dict:
    config = EvalConfig(suite=args.suite, tasks=args.tasks, episodes=args.episodes,
                        workers=workers, max_steps=args.max_steps, camera_size=args.camera_size,
                        wrist_camera=args.wrist_camera, progress=False,
                        results_dir=str(folder / f"workers{workers}"))
    from cliprt_core.eval.runner import run_evaluation

    started = time.perf_counter()
    summary = run_evaluation(config, policy)
    wall = time.perf_counter() - started
    episodes = summary["overall"]["episodes"]
    timing = summary["timing"]
    policy_steps = timing["policy_steps"]
    env_steps = policy_steps + NUM_DUMMY_STEPS * episodes
    per_episode = {k: round(timing[k] / episodes, 3) for k in ("reset_s", "sim_s", "policy_s")}
    busy = timing["reset_s"] + timing["sim_s"] + timing["policy_s"]
    return {
        "workers": workers, "episodes": episodes, "policy_steps": policy_steps,
        "wall_s": round(wall, 2),
        "env_steps_per_s": round(env_steps / wall, 2),
        "policy_steps_per_s": round(policy_steps / wall, 2),
        "sim_only_steps_per_s": (round(policy_steps / timing["sim_s"], 2)
                                 if timing["sim_s"] else None),
        "per_episode_s": per_episode,
        "share": {k.replace("_s", ""): round(timing[k] / busy, 3)
                  for k in ("reset_s", "sim_s", "policy_s")},
        "errors": summary["overall"]["errors"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--suite", default="libero_spatial")
    parser.add_argument("--tasks", default="0")
    parser.add_argument("--episodes", type=int, default=4, help="episodes per task")
    parser.add_argument("--max-steps", type=int, default=40, help="policy steps per episode")
    parser.add_argument("--camera-size", type=int, default=256)
    parser.add_argument("--wrist-camera", action="store_true")
    parser.add_argument("--checkpoint")
    parser.add_argument("--model-config", default=None,
                        help="random weights of this model without --checkpoint (default "
                             "cliprt-tiny); the architecture of an official checkpoint")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    from cliprt_core.inference.factory import build_policy

    policy = build_policy(args.checkpoint, args.model_config, device=args.device)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cliprt-bench-sim-") as tmp:
        for workers in args.workers:
            row = measure(policy, workers, args, Path(tmp))
            rows.append(row)
            print(json.dumps(row), flush=True)
    base = rows[0]["env_steps_per_s"]
    print(f"\n{'workers':>7} {'episodes':>8} {'wall s':>7} {'env st/s':>9} {'pol st/s':>9} "
          f"{'ratio':>6} {'reset':>6} {'sim':>6} {'policy':>7}", file=sys.stderr)
    for row in rows:
        share = row["share"]
        print(f"{row['workers']:>7} {row['episodes']:>8} {row['wall_s']:>7.1f} "
              f"{row['env_steps_per_s']:>9.2f} {row['policy_steps_per_s']:>9.2f} "
              f"{row['env_steps_per_s'] / base:>6.2f} {100 * share['reset']:>5.1f}% "
              f"{100 * share['sim']:>5.1f}% {100 * share['policy']:>6.1f}%", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
