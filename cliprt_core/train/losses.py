"""CLIP-RT's training losses, normalised so that the rank-local losses of one optimizer step
add up to the loss of the whole global batch. For the masked L1 this holds for any split over
ranks and accumulation micro-batches; the contrastive matrix spans one accumulation round.

DDP averages gradients over ``W`` ranks, so rank-local losses are pre-multiplied by ``W``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cliprt_core.train.distributed import all_gather_nograd, all_gather_with_grad


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
              normalizer: float | torch.Tensor, world_size: int = 1) -> torch.Tensor:
    """CLIP-RT+ chunk loss: sum of ``|pred - target|`` over unmasked steps / ``normalizer``.

    ``pred``/``target``: ``[B, T, A]``; ``mask``: ``[B, T]`` (False = padding past the episode
    end). ``normalizer`` = number of unmasked elements (``steps x A``) in the *global* batch, so
    the losses of all ranks' micro-batches add up to the masked mean over the global batch.
    """
    error = (pred.float() - target.float()).abs() * mask[..., None].to(torch.float32)
    return error.sum() * (world_size / normalizer)


def sigmoid_contrastive(context: torch.Tensor, supervision: torch.Tensor, labels: torch.Tensor,
                        logit_scale: torch.Tensor, world_size: int = 1,
                        accumulation: int = 1) -> torch.Tensor:
    """Discrete CLIP-RT loss ("contrastive imitation learning", DESIGN.md section 2).

    ``logits[i, j] = exp(logit_scale) * <context_i, supervision_j>`` over the gathered batch
    (``M = W x m`` samples), target 1 where samples i and j share the action class (diagonal
    included), sigmoid binary cross-entropy averaged over the ``M x M`` matrix. Each rank
    computes its own rows against the gathered (gradient-preserving) supervision of all ranks.
    ``context`` and ``supervision`` must be L2-normalised ``[m, D]``.
    """
    all_supervision = all_gather_with_grad(supervision)
    all_labels = all_gather_nograd(labels)
    scale = logit_scale.float().exp()
    logits = scale * (context.float() @ all_supervision.float().T)
    targets = (labels[:, None] == all_labels[None, :]).to(logits.dtype)
    total = all_supervision.shape[0]
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
    return loss * (world_size / (total * total * accumulation))
