"""Validation pass of the trainer: masked L1 (CLIP-RT+) or contrastive loss + primitive accuracy.

Runs the unwrapped model (no DDP hooks) on each rank's shard; sums are all-reduced.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from cliprt_core.train import distributed as D

if TYPE_CHECKING:
    from cliprt_core.train.trainer import Trainer


@torch.no_grad()
def validate(trainer: "Trainer") -> dict[str, float]:
    """``val_loss`` (and ``val_accuracy`` over the whole vocabulary for the discrete head)."""
    model, device = trainer.model, trainer.device
    model.eval()
    # [loss sum, loss weight, correct, samples]
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    vocabulary_embeddings = None
    try:
        if trainer.head == "discrete":
            with trainer._autocast():
                vocabulary_embeddings = F.normalize(
                    model.encode_text(trainer.phrase_tokens).float(), dim=-1)
        for batch in trainer.val_loader:
            with trainer._autocast():
                output = trainer.forward_module(*trainer.inputs(batch))
            if trainer.head == "chunk":
                target = batch["actions"].to(device)
                mask = batch["action_mask"].to(device)
                error = (output.float() - target).abs() * mask[..., None]
                sums[0] += error.sum().double()
                sums[1] += mask.sum().double() * target.shape[-1]
                sums[3] += len(target)
            else:
                context, phrases, scale = output
                labels = batch["label"].to(device)
                logits = scale.float().exp() * context.float() @ phrases.float().T
                targets = (labels[:, None] == labels[None, :]).float()
                loss = F.binary_cross_entropy_with_logits(logits, targets)
                sums[0] += loss.double() * len(labels)
                sums[1] += len(labels)
                predicted = (context.float() @ vocabulary_embeddings.T).argmax(dim=-1)
                sums[2] += (predicted == labels).sum().double()
                sums[3] += len(labels)
    finally:
        model.train()
    D.all_reduce_sum(sums)
    if sums[3] == 0:
        return {"val_loss": float("nan"), "val_samples": 0.0}
    metrics = {"val_loss": float(sums[0] / sums[1]), "val_samples": float(sums[3])}
    if trainer.head == "discrete":
        metrics["val_accuracy"] = float(sums[2] / sums[3])
    return metrics
