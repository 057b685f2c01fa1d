"""The training curve (``curve.png`` in the run folder) from ``metrics.jsonl``."""
from __future__ import annotations

import os
from pathlib import Path

from cliprt_core.atomic import atomic_path, read_jsonl


def plot_training_curve(metrics_file: str | os.PathLike, path: str | os.PathLike,
                        title: str = '') -> Path | None:
    """Loss (log scale) and learning rate against the step; None when there are no records."""
    records = [r for r in read_jsonl(Path(metrics_file)) if 'loss' in r and 'step' in r]
    if not records:
        return None
    import matplotlib

    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt

    steps = [r['step'] for r in records]
    fig, loss_axis = plt.subplots(figsize=(7.0, 3.6))
    try:
        loss_axis.plot(steps, [r['loss'] for r in records], color='#4C72B0', label='loss')
        loss_axis.set_yscale('log')
        loss_axis.set_xlabel('step')
        loss_axis.set_ylabel('training loss', color='#4C72B0')
        if all('lr' in r for r in records):
            lr_axis = loss_axis.twinx()
            lr_axis.plot(steps, [r['lr'] for r in records], color='#DD8452', alpha=0.7)
            lr_axis.set_ylabel('learning rate', color='#DD8452')
        loss_axis.set_title(title or Path(metrics_file).parent.name)
        loss_axis.grid(alpha=0.3)
        fig.tight_layout()
        target = Path(path)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, dpi=110, format='png')
    finally:
        plt.close(fig)
    return target
