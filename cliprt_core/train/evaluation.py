"""
Validation pass of the trainer.

Validation pass of the trainer: the head's sums over each rank's shard, all-reduced, then the
head's metrics (``val_loss``, ``val_samples`` and head-specific ones).

Runs the unwrapped training forward (no DDP hooks) with the model in eval mode.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Callable, Iterable

from cliprt_core.heads import Head
from cliprt_core.heads.base import Batch
from cliprt_core.train.distributed import all_reduce_sum
import torch
from torch import nn


@torch.no_grad()
def validate(head: Head, model: nn.Module, batches: Iterable[Batch],
             forward: Callable[[Batch], Any], autocast: Callable[[], AbstractContextManager],
             device: torch.device) -> dict[str, float]:
    """One pass of ``forward`` over this rank's validation ``batches`` (every rank calls it)."""
    names = head.validation_sums
    sums = torch.zeros(len(names), dtype=torch.float64, device=device)
    model.eval()
    try:
        with autocast():
            reference = head.validation_reference(model, device)
        for batch in batches:
            with autocast():
                output = forward(batch)
            values = head.validation_batch(output, batch, reference)
            for i, name in enumerate(names):
                sums[i] += values[name]
    finally:
        model.train()
    all_reduce_sum(sums)
    totals = dict(zip(names, sums.tolist()))
    if totals['samples'] == 0:
        return {'val_loss': float('nan'), 'val_samples': 0.0}
    return head.validation_metrics(totals)
