"""A bounded LRU cache of text embeddings keyed by the exact string."""
from __future__ import annotations

from collections import OrderedDict

import torch


class EmbeddingCache:
    """LRU map ``str -> embedding``; ``maxsize=0`` disables caching (every lookup misses)."""

    def __init__(self, maxsize: int = 256) -> None:
        if maxsize < 0:
            raise ValueError("cache size must be >= 0")
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[str, torch.Tensor] = OrderedDict()

    def get(self, key: str) -> torch.Tensor | None:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return item

    def put(self, key: str, value: torch.Tensor) -> None:
        if self.maxsize == 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items
