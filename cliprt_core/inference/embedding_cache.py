"""The bounded LRU of text embeddings keyed by the exact instruction string."""
from __future__ import annotations

from cliprt_core.lru import LRUCache
import torch


class EmbeddingCache(LRUCache[str, torch.Tensor]):
    """At most ``maxsize`` embeddings; ``maxsize=0`` disables caching (every lookup misses)."""

    def __init__(self, maxsize: int = 256) -> None:
        super().__init__(maxsize)
