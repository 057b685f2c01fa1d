"""Success-rate statistics: Wilson score intervals and per-task / per-suite / overall tables."""
from __future__ import annotations

from collections import defaultdict
import math
from typing import Any, Iterable

Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (``(0, 1)`` when there are no trials)."""
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise ValueError(f'need 0 <= successes <= trials, got {successes}/{trials}')
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    z2 = z * z
    denominator = 1.0 + z2 / trials
    center = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    return (max(0.0, center - half), min(1.0, center + half))


def _group(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    records = list(records)
    n = len(records)
    k = sum(1 for r in records if r.get('success'))
    low, high = wilson_interval(k, n)
    return {
        'episodes': n,
        'successes': k,
        'success_rate': (k / n) if n else None,
        'ci95': [round(low, 4), round(high, 4)],
        'errors': sum(1 for r in records if r.get('error')),
        'mean_steps': round(sum(r.get('steps', 0) for r in records) / n, 1) if n else None,
    }


def summarize(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Per-task, per-suite and overall success with Wilson 95% intervals and a time breakdown."""
    records = list(records)
    by_task: dict[tuple[str, int], list[dict]] = defaultdict(list)
    by_suite: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_task[(record['suite'], int(record['task_id']))].append(record)
        by_suite[record['suite']].append(record)
    tasks = []
    for (suite, task_id), group in sorted(by_task.items()):
        tasks.append({'suite': suite, 'task_id': task_id, 'task': group[0].get('task', ''),
                      **_group(group)})
    suites = {suite: {'tasks': len({r['task_id'] for r in group}), **_group(group)}
              for suite, group in sorted(by_suite.items())}
    times = [r.get('time', {}) for r in records]
    timing = {key: round(sum(t.get(key, 0.0) for t in times), 3)
              for key in ('reset_s', 'sim_s', 'policy_s', 'total_s')}
    busy = timing['reset_s'] + timing['sim_s'] + timing['policy_s']
    timing['policy_share'] = round(timing['policy_s'] / busy, 4) if busy else None
    timing['policy_steps'] = sum(int(r.get('steps', 0)) for r in records)
    return {'overall': _group(records), 'suites': suites, 'tasks': tasks, 'timing': timing}


def _rate(group: dict[str, Any]) -> str:
    if not group['episodes']:
        return '-'
    low, high = group['ci95']
    return f"{100 * group['success_rate']:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


def markdown_table(summary: dict[str, Any]) -> str:
    """Return the results table: one row per task, then per suite, then overall."""
    lines = ['| Suite | Task | Instruction | Successes | Success (95% Wilson CI) | Errors |',
             '|---|---:|---|---:|---|---:|']
    for task in summary['tasks']:
        instruction = task['task'].replace('|', '\\|')
        lines.append(f"| {task['suite']} | {task['task_id']} | {instruction} | "
                     f"{task['successes']}/{task['episodes']} | {_rate(task)} | "
                     f"{task['errors']} |")
    for suite, group in summary['suites'].items():
        lines.append(f"| **{suite}** | all ({group['tasks']}) | | "
                     f"{group['successes']}/{group['episodes']} | **{_rate(group)}** | "
                     f"{group['errors']} |")
    overall = summary['overall']
    lines.append(f"| **overall** | | | {overall['successes']}/{overall['episodes']} | "
                 f"**{_rate(overall)}** | {overall['errors']} |")
    return '\n'.join(lines) + '\n'
