"""
CLIP-RT's output heads: what the model's embeddings become, and everything around it.

A :class:`Head` owns its training targets, loss, validation metrics and per-query output; the
model config's ``head`` names one. A new head is one module with a :class:`Head` subclass plus
one line in ``HEADS``.
"""
from cliprt_core.config import ConfigError
from cliprt_core.heads.base import Head, LossStep, SampleTargets
from cliprt_core.heads.chunks import CHUNK_PAD_VALUE, ChunkHead, masked_l1
from cliprt_core.heads.discrete import DiscreteAction, DiscreteHead, sigmoid_contrastive
from cliprt_core.model.configuration import CLIPRTConfig

HEADS: dict[str, type[Head]] = {
    ChunkHead.name: ChunkHead,
    DiscreteHead.name: DiscreteHead,
}


def head_class(name: str) -> type[Head]:
    """Return the head class called ``name`` (a ConfigError names the known ones)."""
    try:
        return HEADS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown head {name!r}; known heads: {', '.join(HEADS)}") from None


def head_for(config: CLIPRTConfig) -> Head:
    """Return the head of a model config (``config.head``)."""
    return head_class(config.head)(config)


__all__ = [
    'CHUNK_PAD_VALUE', 'ChunkHead', 'DiscreteAction', 'DiscreteHead', 'HEADS', 'Head', 'LossStep',
    'SampleTargets', 'head_class', 'head_for', 'masked_l1', 'sigmoid_contrastive',
]
