"""
Scripted expert success rates (``cliprt-bench experts``): each expert over the fixed init states.

Episodes follow the evaluation protocol (``LiberoTaskEnv.reset``: reseed, init state, settle
steps, the suite's horizon) and run in spawned worker processes, one env per task per worker.
Nothing is rendered (``LiberoTaskEnv.unseen_frames``): experts read the simulator state, never
the images, and software rendering is ~80% of a step's time on a CPU.
"""
from __future__ import annotations

from collections import defaultdict
import multiprocessing
import time
from typing import Any, Callable, Iterable, Sequence

from cliprt_core.eval.stats import wilson_interval

_ENVS: dict[tuple[str, int], Any] = {}


def _episode(item: tuple[str, int, int, int]) -> dict[str, Any]:
    """Worker: one expert episode (envs are cached per task in the worker process)."""
    from cliprt_core.sim import LiberoTaskEnv
    from cliprt_core.sim.experts import expert_for

    suite, task, init_state, camera_size = item
    key = (suite, task)
    if key not in _ENVS:
        _ENVS[key] = (LiberoTaskEnv(suite, task, camera_size=camera_size),
                      expert_for(suite, task))
    env, expert = _ENVS[key]
    started = time.perf_counter()
    success, steps = expert.rollout(env, init_state, render=False)
    return {'suite': suite, 'task': task, 'init_state': init_state, 'success': bool(success),
            'steps': steps, 'seconds': time.perf_counter() - started,
            'instruction': env.language}


def run_expert_episodes(suite: str, tasks: Sequence[int], init_states: Sequence[int],
                        workers: int = 1, camera_size: int = 32,
                        on_episode: Callable[[dict[str, Any]], None] | None = None
                        ) -> list[dict[str, Any]]:
    """Run every (task, init state) episode; one record per episode, in completion order."""
    items = [(suite, int(t), int(i), camera_size) for t in tasks for i in init_states]
    records = []
    if workers <= 1:
        outcomes: Iterable[dict[str, Any]] = map(_episode, items)
        pool = None
    else:
        pool = multiprocessing.get_context('spawn').Pool(workers)
        outcomes = pool.imap_unordered(_episode, items)
    try:
        for record in outcomes:
            records.append(record)
            if on_episode is not None:
                on_episode(record)
    finally:
        if pool is not None:
            pool.terminate()
        close_envs()
    return records


def close_envs() -> None:
    """Close the envs this process cached (an EGL context left to exit-time GC can fail)."""
    while _ENVS:
        env, _ = _ENVS.popitem()[1]
        env.close()


def success_table(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per task: successes / episodes with the Wilson 95% interval, mean steps and seconds."""
    by_task: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_task[(record['suite'], record['task'])].append(record)
    rows = []
    for (suite, task), group in sorted(by_task.items()):
        successes = sum(r['success'] for r in group)
        low, high = wilson_interval(successes, len(group))
        rows.append({
            'suite': suite, 'task': task, 'instruction': group[0]['instruction'],
            'episodes': len(group), 'successes': successes,
            'success_rate': successes / len(group), 'ci95': [round(low, 3), round(high, 3)],
            'mean_steps': sum(r['steps'] for r in group) / len(group),
            'seconds_per_episode': sum(r['seconds'] for r in group) / len(group),
            'failed_init_states': sorted(r['init_state'] for r in group if not r['success']),
        })
    return rows
