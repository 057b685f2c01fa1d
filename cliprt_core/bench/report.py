"""Output of ``cliprt-bench``: one JSON object per line (machine readable) and a text table."""
from __future__ import annotations

import json
from typing import Any, Iterable, Sequence, TextIO


def write_json_line(record: dict[str, Any], stream: TextIO) -> None:
    """One record as one JSON line, flushed at once (a long benchmark reports as it goes)."""
    stream.write(json.dumps(record, sort_keys=False) + '\n')
    stream.flush()


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Right-aligned text table: a header line, a rule, then one line per row."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    line = lambda cells: '  '.join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return '\n'.join([line(headers), line(['-' * w for w in widths])] + [line(r) for r in rows])


def cache_table(records: Iterable[dict[str, Any]]) -> str:
    rows = [[r['model'], r['device'], r['dtype'], f"{r['cached']['p50_ms']:.2f}",
             f"{r['cached']['p90_ms']:.2f}", f"{r['naive']['p50_ms']:.2f}",
             f"{r['naive']['p90_ms']:.2f}", f"{r['ratio_p50']:.2f}x"] for r in records]
    headers = ['model', 'device', 'dtype', 'cached p50 ms', 'cached p90 ms', 'naive p50 ms',
               'naive p90 ms', 'naive/cached']
    return 'act(): instruction cache vs naive re-encoding\n' + table(headers, rows)


def backend_table(records: Iterable[dict[str, Any]]) -> str:
    rows, notes = [], []
    for r in records:
        if 'batch' not in r:
            notes.append(f"  {r['model']} {r['backend']}: "
                         f"{'skipped' if 'skipped' in r else 'ERROR'}: "
                         f"{r.get('skipped') or r.get('error')}")
            continue
        rows.append([r['model'], r['device'], r['dtype'], r['backend'], str(r['batch']),
                     f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['ms_per_chunk']:.2f}",
                     f"{r['actions_per_s']:.0f}", f"{r['speedup_vs_torch']:.2f}x",
                     f"{r['max_abs_diff_vs_torch']:.1e}"])
    headers = ['model', 'device', 'dtype', 'backend', 'batch', 'p50 ms', 'p99 ms',
               'ms/chunk', 'actions/s', 'vs torch', 'max|diff|']
    text = 'backends (latency per batched call; actions/s = chunk of 8 per query)\n'
    text += table(headers, rows)
    reference = next((r for r in records if 'published_hz' in r), None)
    if reference is not None:
        text += (f"\nreference: published CLIP-RT+ {reference['published_hz']} Hz "
                 f"({reference['published_ms_per_chunk']} ms/chunk, A100, batch 1); target "
                 f"<= {reference['target_ms_per_chunk']} ms/chunk; compute limit ~"
                 f"{reference['compute_limit_ms_per_chunk']} ms/chunk (H200)")
    if notes:
        text += '\n' + '\n'.join(notes)
    return text


def sim_table(rows: Sequence[dict[str, Any]]) -> str:
    """
    Text table of ``cliprt-bench sim`` rows.

    ``vs 1st``: env steps/s against the first row of the same executor and render path;
    ``speedup``: policy steps/s of ``consumed`` over ``every_step`` at the same worker count.
    """
    first: dict[tuple, float] = {}
    for r in rows:
        first.setdefault(_path(r), r['env_steps_per_s'])
    headers = ['executor', 'render', 'workers', 'episodes', 'wall s', 'env st/s', 'pol st/s',
               'vs 1st', 'speedup', 'same', 'reset', 'sim', 'policy']
    body = [[r.get('executor', 'process'), r.get('render', ''), str(r['workers']),
             str(r['episodes']), f"{r['wall_s']:.1f}",
             f"{r['env_steps_per_s']:.2f}", f"{r['policy_steps_per_s']:.2f}",
             f"{r['env_steps_per_s'] / first[_path(r)]:.2f}",
             f"{r['speedup']:.2f}x" if 'speedup' in r else '',
             str(r['same_results']) if 'same_results' in r else '',
             *(f"{100 * r['share'][k]:.1f}%" for k in ('reset', 'sim', 'policy'))]
            for r in rows]
    return table(headers, body)


def _path(row: dict[str, Any]) -> tuple:
    return row.get('executor', 'process'), row.get('render', '')


def expert_table(rows: Sequence[dict[str, Any]]) -> str:
    """Text table of ``cliprt-bench experts`` rows (success with the Wilson 95% interval)."""
    headers = ['task', 'instruction', 'success', '95% CI', 'steps', 's/episode', 'failed']
    body = [[str(r['task']), r['instruction'], f"{r['successes']}/{r['episodes']}",
             f"{100 * r['ci95'][0]:.0f}-{100 * r['ci95'][1]:.0f}%", f"{r['mean_steps']:.0f}",
             f"{r['seconds_per_episode']:.1f}", ','.join(map(str, r['failed_init_states'][:8]))]
            for r in rows]
    return table(headers, body)
