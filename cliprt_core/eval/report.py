"""The text report of an evaluation: the success table and where its files are."""
from __future__ import annotations

from typing import Any

from cliprt_core.eval.results import ResultsDir


def report(summary: dict[str, Any], results: ResultsDir) -> str:
    """Return the Markdown table, the overall rate with its 95% interval, and the result files."""
    lines = [results.table_path.read_text().strip(), '']
    overall = summary['overall']
    if overall['episodes']:
        low, high = overall['ci95']
        lines.append(f"overall: {overall['successes']}/{overall['episodes']} = "
                     f"{100 * overall['success_rate']:.1f}% (95% CI {100 * low:.1f}-"
                     f'{100 * high:.1f})')
    if summary.get('missing_episodes'):
        lines.append(f"not finished: {summary['missing_episodes']} episode(s); rerun the same "
                     'command to resume')
    lines += [f'episodes: {results.episodes_path}', f'summary:  {results.summary_path}',
              f'table:    {results.table_path}', f'plot:     {results.plot_path}']
    videos = sorted(results.videos_dir.rglob('*.mp4')) if results.videos_dir.is_dir() else []
    videos = [v for v in videos if not v.name.endswith('.partial.mp4')]
    if videos:
        lines.append(f'videos:   {results.videos_dir} ({len(videos)} files)')
    return '\n'.join(lines)
