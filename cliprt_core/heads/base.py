"""
The head contract: everything that differs between kinds of CLIP-RT output.

The towers are shared: every head starts from the raw image and prompt embeddings. A head owns
what it makes of them and what surrounds that output: the targets a dataset produces per sample
(:class:`SampleTargets`), the training output and loss, the validation metrics, and the per-query
output of a policy with its post-processing. Heads are plain objects; their network modules (the
CLIP-RT+ action decoder, ...) belong to the model (:mod:`cliprt_core.model`), which they call.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

from cliprt_core.actions import LabelingConfig, Vocabulary
from cliprt_core.model.configuration import CLIPRTConfig
import numpy as np
import torch
from torch import nn

Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class LossStep:
    """
    Where a rank-local micro-batch sits in its optimizer step.

    Losses are normalised so that the rank-local losses of one optimizer step add up to the loss
    of the whole global batch; DDP averages gradients over ``world_size`` ranks, so each
    rank-local loss is pre-multiplied by ``world_size``. ``normalizer`` is the sum over ranks of
    :meth:`Head.loss_weight` of the step's micro-batches (None when the head has no weight).
    """

    world_size: int = 1
    accumulation: int = 1
    normalizer: torch.Tensor | None = None


class SampleTargets(ABC):
    """A head's training targets for the steps of demonstration episodes (per dataset)."""

    description: ClassVar[str] = 'steps'  # what the samples are, for "no training ..." errors

    def step_labels(self, actions: np.ndarray) -> np.ndarray | None:
        """
        Return the integer label of each step of an episode.

        Integer label per step of one episode's actions ``[T, A]``, -1 for a step that is no
        training sample; None (the default) when every step is a sample.
        """
        return None

    def phrase_labels(self, phrases: list[str], primitive_steps: np.ndarray
                      ) -> np.ndarray | None:
        """
        Return the label of each step from recorded per-step phrases, or None to ignore them.

        ``phrases`` / ``primitive_steps`` as :mod:`cliprt_core.data.phrases` stores them; the
        default (heads that regress actions) ignores them.
        """
        return None

    @abstractmethod
    def __call__(self, actions: np.ndarray, position: int, label: int) -> Batch:
        """
        Return the targets of one step of an episode.

        Targets of step ``position`` of an episode with actions ``[T, A]`` (float32);
        ``label`` is the step's :meth:`step_labels` entry (-1 without labels).
        """


class Head(ABC):
    """One kind of CLIP-RT output (see the module docstring); built by ``head_for(config)``."""

    name: ClassVar[str]
    #: name of the per-query graph's output (ONNX output, engine binding)
    output_name: ClassVar[str]
    #: per-query results are chosen language phrases (``DiscreteAction``), not action arrays
    outputs_phrases: ClassVar[bool] = False
    #: the contrastive temperature ``logit_scale`` is trained (it is frozen otherwise)
    trains_logit_scale: ClassVar[bool] = False
    #: the validation sums, all-reduced over ranks; "loss", "weight" and "samples" are required
    validation_sums: ClassVar[tuple[str, ...]] = ('loss', 'weight', 'samples')
    #: the language vocabulary the head scores (None when it regresses actions)
    vocabulary: Vocabulary | None = None

    def __init__(self, config: CLIPRTConfig) -> None:
        self.config = config

    def __repr__(self) -> str:
        return f'{type(self).__name__}(model={self.config.name!r})'

    # --- shape of the output ------------------------------------------------------------------
    @property
    @abstractmethod
    def action_dim(self) -> int:
        """Dimension of the action vectors the policy returns."""

    @property
    @abstractmethod
    def actions_per_query(self) -> int:
        """Actions one query yields (a chunk's length, or 1)."""

    @property
    @abstractmethod
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one query's output of the per-query graph (without the batch dimension)."""

    # --- training data ------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def sample_targets(cls, *, chunk_size: int, vocabulary: Vocabulary | None,
                       labeling: LabelingConfig | None) -> SampleTargets:
        """
        Return the per-sample targets for a dataset with these settings.

        The per-sample targets for a dataset with these settings (a ValueError when the head
        cannot train from them).
        """

    # --- training -----------------------------------------------------------------------------
    def training_inputs(self, model: nn.Module, batch: Batch, device: torch.device
                        ) -> tuple[torch.Tensor, ...]:
        """Extra forward arguments of a micro-batch (after pixels and prompts), on ``device``."""
        return ()

    @abstractmethod
    def training_output(self, model: nn.Module, image: torch.Tensor, prompt: torch.Tensor,
                        *inputs: torch.Tensor) -> Any:
        """
        Run the training forward pass.

        The training forward from raw image and prompt embeddings ``[B, D]`` (runs inside
        DDP); ``inputs`` are :meth:`training_inputs`.
        """

    def loss_weight(self, batches: Sequence[Batch]) -> torch.Tensor | None:
        """Return this rank's share of the step's loss normalizer (:class:`LossStep`), or None."""
        return None

    @abstractmethod
    def loss(self, output: Any, batch: Batch, step: LossStep) -> torch.Tensor:
        """Return the rank-local micro-batch loss, normalised as :class:`LossStep` describes."""

    def log_values(self, model: nn.Module) -> dict[str, float]:
        """Extra values for the training log."""
        return {}

    # --- validation ---------------------------------------------------------------------------
    def validation_reference(self, model: nn.Module, device: torch.device) -> Any:
        """Compute what every batch of a validation pass needs (once, under autocast)."""
        return None

    @abstractmethod
    def validation_batch(self, output: Any, batch: Batch, reference: Any
                         ) -> dict[str, torch.Tensor | float]:
        """One batch's contribution to each of :attr:`validation_sums`."""

    def validation_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        """Metrics from the validation sums of all ranks (``samples`` > 0)."""
        return {'val_loss': sums['loss'] / sums['weight'], 'val_samples': sums['samples']}

    # --- inference ----------------------------------------------------------------------------
    @property
    def query_texts(self) -> list[str]:
        """Return the fixed texts whose raw embeddings are constants of the per-query graph."""
        return []

    @abstractmethod
    def query(self, model: nn.Module, image: torch.Tensor, prompt: torch.Tensor,
              text_embeddings: torch.Tensor | None) -> torch.Tensor:
        """
        Compute the per-query graph's output.

        The per-query graph's output ``[B, *output_shape]`` from raw image and prompt
        embeddings; ``text_embeddings`` are those of :attr:`query_texts` (None if there are
        none).
        """

    @abstractmethod
    def decode(self, output: np.ndarray) -> Any:
        """Turn finite float32 outputs ``[B, *output_shape]`` into what the policy returns."""
