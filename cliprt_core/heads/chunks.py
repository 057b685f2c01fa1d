"""
CLIP-RT+: continuous action chunks (8 x 7 for LIBERO) regressed with a masked L1 loss.

The network (action decoder + MLP-ResNet head) is :meth:`cliprt_core.model.CLIPRT.predict_chunk`.
Targets are ``actions[t:t+chunk]`` of the demo, steps past the episode end filled with 1.1 and
masked out of the loss.
"""
from __future__ import annotations

from typing import Sequence

from cliprt_core.actions import LabelingConfig, Vocabulary
from cliprt_core.heads.base import Batch, Head, LossStep, SampleTargets
import numpy as np
import torch
from torch import nn

CHUNK_PAD_VALUE = 1.1  # chunk steps past the episode end (masked out of the loss)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
              normalizer: float | torch.Tensor, world_size: int = 1) -> torch.Tensor:
    """
    CLIP-RT+ chunk loss: sum of ``|pred - target|`` over unmasked steps / ``normalizer``.

    ``pred``/``target``: ``[B, T, A]``; ``mask``: ``[B, T]`` (False = padding past the episode
    end). ``normalizer`` = number of unmasked elements (``steps x A``) in the *global* batch, so
    the losses of all ranks' micro-batches add up to the masked mean over the global batch, for
    any split over ranks and accumulation micro-batches.
    """
    error = (pred.float() - target.float()).abs() * mask[..., None].to(torch.float32)
    return error.sum() * (world_size / normalizer)


class ChunkTargets(SampleTargets):
    """``actions`` float32 ``[chunk, A]`` and ``action_mask`` bool ``[chunk]`` of a step."""

    def __init__(self, chunk_size: int) -> None:
        self.chunk_size = int(chunk_size)

    def __call__(self, actions: np.ndarray, position: int, label: int) -> Batch:
        stop = min(position + self.chunk_size, len(actions))
        chunk = np.full((self.chunk_size, actions.shape[1]), CHUNK_PAD_VALUE, dtype=np.float32)
        chunk[: stop - position] = actions[position:stop]
        mask = np.zeros(self.chunk_size, dtype=bool)
        mask[: stop - position] = True
        return {'actions': torch.from_numpy(chunk), 'action_mask': torch.from_numpy(mask)}


class ChunkHead(Head):
    """CLIP-RT+ (the LIBERO model): a query returns a float32 ``(chunk, action_dim)`` chunk."""

    name = 'chunk'
    output_name = 'chunk'

    @property
    def action_dim(self) -> int:
        return self.config.action_dim

    @property
    def actions_per_query(self) -> int:
        return self.config.chunk_size

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.config.chunk_size, self.config.action_dim)

    @classmethod
    def sample_targets(cls, *, chunk_size: int, vocabulary: Vocabulary | None = None,
                       labeling: LabelingConfig | None = None) -> ChunkTargets:
        return ChunkTargets(chunk_size)

    def training_output(self, model: nn.Module, image: torch.Tensor, prompt: torch.Tensor,
                        *inputs: torch.Tensor) -> torch.Tensor:
        return model.predict_chunk(image, prompt)

    def loss_weight(self, batches: Sequence[Batch]) -> torch.Tensor:
        """Unmasked chunk elements (steps x action_dim) of this rank's micro-batches."""
        return sum(b['action_mask'].sum() for b in batches) * self.config.action_dim

    def loss(self, output: torch.Tensor, batch: Batch, step: LossStep) -> torch.Tensor:
        device = output.device
        return masked_l1(output, batch['actions'].to(device, non_blocking=True),
                         batch['action_mask'].to(device, non_blocking=True),
                         step.normalizer, step.world_size)

    def validation_batch(self, output: torch.Tensor, batch: Batch, reference: None
                         ) -> dict[str, torch.Tensor | float]:
        target = batch['actions'].to(output.device)
        mask = batch['action_mask'].to(output.device)
        error = (output.float() - target).abs() * mask[..., None]
        return {'loss': error.sum().double(), 'weight': mask.sum().double() * target.shape[-1],
                'samples': len(target)}

    def query(self, model: nn.Module, image: torch.Tensor, prompt: torch.Tensor,
              text_embeddings: torch.Tensor | None) -> torch.Tensor:
        return model.predict_chunk(image, prompt)

    def decode(self, output: np.ndarray) -> np.ndarray:
        """Return the chunks themselves, ``(B, chunk_size, action_dim)`` float32."""
        return output.astype(np.float32, copy=False)
