"""A bounded LRU cache of answers, so a repeated request costs no model time.

Entries are per input text, not per request: a request that repeats one sentence of an earlier batch still
gets that sentence from the cache. Keys hold everything that changes an answer (model identity, revision,
output kind, text and the normalised parameters), so a hit is the very answer the model would give.
The cache lives on the event loop and is never touched from worker threads, hence no lock.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


def approximate_size(value: Any) -> int:
    """Bytes an answer holds, closely enough to bound the cache: containers are walked, leaves measured."""
    seen = 0
    stack = [value]
    while stack:
        item = stack.pop()
        seen += sys.getsizeof(item)
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif hasattr(item, "__dataclass_fields__"):
            stack.extend(getattr(item, name) for name in item.__dataclass_fields__)
    return seen


class ResponseCache:
    """LRU bounded by entry count and by total approximate bytes; ``max_entries=0`` disables it."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> Any | None:
        found = self._items.get(key)
        if found is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return found[0]

    def put(self, key: Hashable, value: Any) -> None:
        if not self.enabled:
            return
        size = approximate_size(value)
        if size > self.max_bytes:
            return  # one answer larger than the whole cache would evict everything for nothing
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._items[key] = (value, size)
        self.bytes += size
        while len(self._items) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, evicted) = self._items.popitem(last=False)
            self.bytes -= evicted

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0
