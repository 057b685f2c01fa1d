"""
Discrete CLIP-RT (real robots): the context embedding scores language motion primitives.

``score = sigmoid(cosine(normalize(image + prompt), phrase))`` over the vocabulary's phrases,
argmax, and the vocabulary maps the phrase to its action vector. Trained with CLIP-RT's sigmoid
contrastive loss ("contrastive imitation learning", arXiv 2411.00508) on the primitive label
of each demo step; steps whose motion is below every primitive's threshold are no samples.
"""
from __future__ import annotations

from dataclasses import dataclass

from cliprt_core.actions import label_actions, LabelingConfig, load_vocabulary, Vocabulary
from cliprt_core.collectives import all_gather_nograd, all_gather_with_grad
from cliprt_core.heads.base import Batch, Head, LossStep, SampleTargets
from cliprt_core.model.configuration import CLIPRTConfig
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


def sigmoid_contrastive(context: torch.Tensor, supervision: torch.Tensor, labels: torch.Tensor,
                        logit_scale: torch.Tensor, world_size: int = 1,
                        accumulation: int = 1) -> torch.Tensor:
    """
    Discrete CLIP-RT loss ("contrastive imitation learning" of the CLIP-RT paper).

    ``logits[i, j] = exp(logit_scale) * <context_i, supervision_j>`` over the gathered batch
    (``M = W x m`` samples), target 1 where samples i and j share the action class (diagonal
    included), sigmoid binary cross-entropy averaged over the ``M x M`` matrix. Each rank
    computes its own rows against the gathered (gradient-preserving) supervision of all ranks.
    ``context`` and ``supervision`` must be L2-normalised ``[m, D]``. The in-batch negatives
    come from one accumulation round, so the loss depends on the split (normalised as
    :class:`cliprt_core.heads.LossStep` describes).
    """
    all_supervision = all_gather_with_grad(supervision)
    all_labels = all_gather_nograd(labels)
    scale = logit_scale.float().exp()
    logits = scale * (context.float() @ all_supervision.float().T)
    targets = (labels[:, None] == all_labels[None, :]).to(logits.dtype)
    total = all_supervision.shape[0]
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction='sum')
    return loss * (world_size / (total * total * accumulation))


@dataclass(frozen=True)
class DiscreteAction:
    """A discrete CLIP-RT decision: the chosen primitive phrase and its action vector."""

    phrase: str
    index: int
    action: np.ndarray  # the vocabulary's vector (its ``dimensions``), float32
    score: float  # sigmoid(cosine) of the chosen primitive


class PrimitiveTargets(SampleTargets):
    """
    Return a step's primitive label and phrase id.

    ``label`` (primitive class of the step) and ``phrase_id`` (the phrase to embed; the
    shipped vocabularies have one phrase per class, so it equals ``label``).
    """

    description = 'labelled steps (every action is below the primitive thresholds)'

    def __init__(self, vocabulary: Vocabulary, labeling: LabelingConfig) -> None:
        self.vocabulary = vocabulary
        self.labeling = labeling

    def step_labels(self, actions: np.ndarray) -> np.ndarray:
        return label_actions(actions, None, self.vocabulary, self.labeling)

    def phrase_labels(self, phrases: list[str], primitive_steps: np.ndarray) -> np.ndarray:
        """
        Return the recorded phrase's class where a command was given, -1 at other steps.

        One sample per command: the step whose image the person saw (``primitive_steps == 0``).
        A phrase outside the vocabulary raises VocabularyError.
        """
        labels = np.full(len(phrases), -1, dtype=np.int64)
        for t, (phrase, step) in enumerate(zip(phrases, primitive_steps)):
            if step == 0 and phrase:
                labels[t] = self.vocabulary.index(phrase)
        return labels

    def __call__(self, actions: np.ndarray, position: int, label: int) -> Batch:
        return {'label': torch.tensor(label), 'phrase_id': torch.tensor(label)}


class DiscreteHead(Head):
    """Discrete CLIP-RT: a query returns a :class:`DiscreteAction` of the config's vocabulary."""

    name = 'discrete'
    output_name = 'scores'
    outputs_phrases = True
    trains_logit_scale = True
    validation_sums = ('loss', 'weight', 'correct', 'samples')

    def __init__(self, config: CLIPRTConfig) -> None:
        super().__init__(config)
        self.vocabulary = load_vocabulary(config.vocabulary)
        self._phrase_tokens: torch.Tensor | None = None

    @property
    def action_dim(self) -> int:
        return len(self.vocabulary.dimensions)

    @property
    def actions_per_query(self) -> int:
        return 1

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (len(self.vocabulary),)

    def phrase_tokens(self, model: nn.Module, device: torch.device) -> torch.Tensor:
        """Token ids of every phrase of the vocabulary on ``device`` (tokenized once)."""
        if self._phrase_tokens is None or self._phrase_tokens.device != torch.device(device):
            self._phrase_tokens = model.tokenize(self.vocabulary.phrases).to(device)
        return self._phrase_tokens

    @classmethod
    def sample_targets(cls, *, chunk_size: int = 1, vocabulary: Vocabulary | None = None,
                       labeling: LabelingConfig | None = None) -> PrimitiveTargets:
        if vocabulary is None:
            raise ValueError('the discrete head needs a vocabulary')
        return PrimitiveTargets(vocabulary, labeling or LabelingConfig.libero())

    # --- training -----------------------------------------------------------------------------
    def training_inputs(self, model: nn.Module, batch: Batch, device: torch.device
                        ) -> tuple[torch.Tensor, ...]:
        """Return the micro-batch's distinct phrases (encoded once) and each sample's index."""
        phrases, inverse = torch.unique(batch['phrase_id'], return_inverse=True)
        return self.phrase_tokens(model, device)[phrases.to(device)], inverse.to(device)

    def training_output(self, model: nn.Module, image: torch.Tensor, prompt: torch.Tensor,
                        *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(normalised context, normalised phrase embedding per sample, logit_scale)."""
        phrase_tokens, phrase_index = inputs
        context = model.context(image, prompt)
        phrases = F.normalize(model.encode_text(phrase_tokens), dim=-1)[phrase_index]
        return context, phrases, model.logit_scale

    def loss(self, output: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch: Batch,
             step: LossStep) -> torch.Tensor:
        context, phrases, scale = output
        return sigmoid_contrastive(context, phrases, batch['label'].to(context.device), scale,
                                   step.world_size, step.accumulation)

    def log_values(self, model: nn.Module) -> dict[str, float]:
        return {'logit_scale': float(model.logit_scale.detach().exp())}

    # --- validation ---------------------------------------------------------------------------
    def validation_reference(self, model: nn.Module, device: torch.device) -> torch.Tensor:
        """Normalised embeddings of the whole vocabulary (accuracy is over all primitives)."""
        return F.normalize(model.encode_text(self.phrase_tokens(model, device)).float(), dim=-1)

    def validation_batch(self, output: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                         batch: Batch, reference: torch.Tensor
                         ) -> dict[str, torch.Tensor | float]:
        """Return the in-batch contrastive loss (not gathered over ranks) and argmax accuracy."""
        context, phrases, scale = output
        labels = batch['label'].to(context.device)
        logits = scale.float().exp() * context.float() @ phrases.float().T
        targets = (labels[:, None] == labels[None, :]).float()
        loss = F.binary_cross_entropy_with_logits(logits, targets)
        predicted = (context.float() @ reference.T).argmax(dim=-1)
        return {'loss': loss.double() * len(labels), 'weight': len(labels),
                'correct': (predicted == labels).sum().double(), 'samples': len(labels)}

    def validation_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        return {**super().validation_metrics(sums),
                'val_accuracy': sums['correct'] / sums['samples']}

    # --- inference ----------------------------------------------------------------------------
    @property
    def query_texts(self) -> list[str]:
        return self.vocabulary.phrases

    def query(self, model: nn.Module, image: torch.Tensor, prompt: torch.Tensor,
              text_embeddings: torch.Tensor | None) -> torch.Tensor:
        """``sigmoid(cosine(context, primitive))`` ``[B, K]``, as in the authors' inference."""
        return torch.sigmoid(model.primitive_logits(image, prompt, text_embeddings))

    def decode(self, output: np.ndarray) -> list[DiscreteAction]:
        """Return the best-scoring primitive of each query."""
        actions = []
        for scores in output:
            index = int(np.argmax(scores))
            actions.append(DiscreteAction(
                phrase=self.vocabulary.phrases[index], index=index,
                action=self.vocabulary.vectors[index].astype(np.float32),
                score=float(scores[index])))
        return actions
