"""The success bar chart (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cliprt_core.atomic import atomic_path


def plot_success(summary: dict[str, Any], path: str | os.PathLike) -> Path:
    """Horizontal bars: success per task, then per suite and overall, with Wilson 95% whiskers."""
    import matplotlib

    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt

    rows = [(f"{t['suite'].replace('libero_', '')}/{t['task_id']}", t, '#4C72B0')
            for t in summary['tasks']]
    rows += [(suite, group, '#DD8452') for suite, group in summary['suites'].items()]
    rows.append(('overall', summary['overall'], '#55A868'))
    rows = [(label, g, color) for label, g, color in rows if g['episodes']]
    labels = [label for label, _, _ in rows]
    rates = [100 * g['success_rate'] for _, g, _ in rows]
    lower = [r - 100 * g['ci95'][0] for r, (_, g, _) in zip(rates, rows)]
    upper = [100 * g['ci95'][1] - r for r, (_, g, _) in zip(rates, rows)]
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.28 * max(len(rows), 1)))
    try:
        positions = list(range(len(rows)))[::-1]
        ax.barh(positions, rates, xerr=[lower, upper], color=[c for _, _, c in rows],
                ecolor='#333333', capsize=2)
        ax.set_yticks(positions, labels, fontsize=8)
        for y, rate, (_, g, _) in zip(positions, rates, rows):
            ax.text(min(rate + 1, 101), y, f"{g['successes']}/{g['episodes']}", va='center',
                    fontsize=7)
        ax.set_xlim(0, 110)
        ax.set_xlabel('success rate (%) with Wilson 95% interval')
        ax.set_title('LIBERO evaluation')
        ax.grid(axis='x', alpha=0.3)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format='png', dpi=120)
    finally:
        plt.close(fig)
    return Path(path)
