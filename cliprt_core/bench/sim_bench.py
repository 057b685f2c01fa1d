"""
LIBERO evaluation throughput (``cliprt-bench sim``): env steps/s with 1 and N env workers.

Runs the real evaluation loop (``run_evaluation``: reset + 10 settle steps + 8-action chunks)
with the given policy (default: the random tiny model, whose cost is negligible, so the numbers
are the simulator's) on a few episodes, once per worker count, and reports:

- env steps/s over the wall clock, counting policy steps and settle steps (resets included),
- the same for policy steps only, and the ratio to 1 worker,
- where the time of one episode goes: reset (incl. settle), simulator steps, policy queries.

Each worker count runs both paths side by side: ``every_step`` (the path before issue 14: every
camera at every simulator step, the MuJoCo model recompiled at every reset) and ``consumed``
(the default: only the frames a query uses, the compiled model copied); ``same_results`` says
whether their episodes ended in identical MuJoCo states. ``--executors process ray`` adds the
same runs with the env workers as actors of a local Ray instance (started once, outside the
timed runs).
"""
from __future__ import annotations

import contextlib
from pathlib import Path
import tempfile
import time
from typing import Any, Callable, Sequence

from cliprt_core.eval.config import EvalConfig
from cliprt_core.sim.protocol import NUM_DUMMY_STEPS

PHASES = ('reset_s', 'sim_s', 'policy_s')
RENDER_PATHS = ('every_step', 'consumed')


def measure(policy: Any, workers: int, config: EvalConfig) -> dict[str, Any]:
    """One evaluation run of ``config`` with ``workers`` env workers; its throughput row."""
    from cliprt_core.eval.runner import run_evaluation

    records: list[dict[str, Any]] = []
    started = time.perf_counter()
    summary = run_evaluation(config, policy, on_episode=records.append)
    row = throughput_row(summary, time.perf_counter() - started, workers)
    row['render'] = RENDER_PATHS[0] if config.render_all_steps else RENDER_PATHS[1]
    row['outcomes'] = {f"{r['task_id']}/{r['episode']}": [r['success'], r['state_hash']]
                       for r in records}
    return row


def throughput_row(summary: dict[str, Any], wall_s: float, workers: int) -> dict[str, Any]:
    """Steps/s and the time split of an evaluation ``summary`` that took ``wall_s`` seconds."""
    episodes = summary['overall']['episodes']
    timing = summary['timing']
    policy_steps = timing['policy_steps']
    env_steps = policy_steps + NUM_DUMMY_STEPS * episodes
    per_episode = {k: round(timing[k] / episodes, 3) for k in PHASES}
    busy = sum(timing[k] for k in PHASES)
    return {
        'workers': workers, 'episodes': episodes, 'policy_steps': policy_steps,
        'wall_s': round(wall_s, 2),
        'env_steps_per_s': round(env_steps / wall_s, 2),
        'policy_steps_per_s': round(policy_steps / wall_s, 2),
        'sim_only_steps_per_s': (round(policy_steps / timing['sim_s'], 2)
                                 if timing['sim_s'] else None),
        'per_episode_s': per_episode,
        'share': {k.replace('_s', ''): round(timing[k] / busy, 3) for k in PHASES},
        'errors': summary['overall']['errors'],
    }


def run_sim_benchmark(policy: Any, workers: Sequence[int] = (1, 2), *,
                      suite: str = 'libero_spatial', tasks: str = '0', episodes: int = 4,
                      max_steps: int = 40, camera_size: int = 256, wrist_camera: bool = False,
                      render: Sequence[str] = RENDER_PATHS,
                      executors: Sequence[str] = ('process',),
                      on_row: Callable[[dict[str, Any]], None] | None = None
                      ) -> list[dict[str, Any]]:
    """
    Measure one row per executor, worker count and render path (``on_row`` sees each at once).

    A ``consumed`` row measured after an ``every_step`` row of the same worker count gets
    ``speedup`` (policy steps/s ratio) and ``same_results`` (identical successes and states).
    """
    unknown = set(render) - set(RENDER_PATHS)
    if unknown or not render:
        raise ValueError(f"render paths must be among {', '.join(RENDER_PATHS)}; got "
                         f'{sorted(unknown) or "none"}')
    rows = []
    session = contextlib.nullcontext()
    if 'ray' in executors:
        from cliprt_core.eval.ray_hosts import RaySession

        session = RaySession()
    before = None
    with tempfile.TemporaryDirectory(prefix='cliprt-bench-sim-') as tmp, session:
        for executor, count, path in _grid(executors, workers, render):
            if path == render[0]:
                before = None
            config = EvalConfig(suite=suite, tasks=tasks, episodes=episodes, workers=count,
                                max_steps=max_steps, camera_size=camera_size,
                                wrist_camera=wrist_camera, progress=False, executor=executor,
                                render_all_steps=path == 'every_step',
                                cache_model=path != 'every_step',
                                results_dir=str(Path(tmp) / f'{executor}{count}-{path}'))
            row = measure(policy, count, config)
            row['executor'] = executor
            if path == 'consumed' and before is not None:
                row['speedup'] = round(row['policy_steps_per_s']
                                       / before['policy_steps_per_s'], 2)
                row['same_results'] = row['outcomes'] == before['outcomes']
            before = row
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def _grid(executors: Sequence[str], workers: Sequence[int], render: Sequence[str]):
    """(executor, workers, render path) in measuring order: render paths innermost."""
    return [(e, w, r) for e in executors for w in workers for r in render]
