"""A bounded least-recently-used cache whose budget is counted by a cost function."""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar('K', bound=Hashable)
V = TypeVar('V')


class LRUCache(Generic[K, V]):
    """
    LRU map whose items' total ``cost(value)`` stays within ``budget``.

    The default cost is 1 per item (``budget`` = number of items); ``budget=0`` disables caching.
    An item costing more than the whole budget is not stored.
    """

    def __init__(self, budget: int, cost: Callable[[V], int] = lambda _: 1) -> None:
        if budget < 0:
            raise ValueError('cache budget must be >= 0')
        self.budget = int(budget)
        self.cost = cost
        self.used = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return item

    def put(self, key: K, value: V) -> None:
        cost = self.cost(value)
        if cost > self.budget:
            return
        if key in self._items:
            self.used -= self.cost(self._items.pop(key))
        while self.used + cost > self.budget and self._items:
            _, old = self._items.popitem(last=False)
            self.used -= self.cost(old)
        self._items[key] = value
        self.used += cost

    def clear(self) -> None:
        self._items.clear()
        self.used = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items
