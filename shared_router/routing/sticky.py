"""Sticky routing's memory: the conversations that went to the large model, least recent out.

With ``sticky=True`` a routing service sends every later turn of a conversation that once
went large to the large model too; :class:`LargeConversations` remembers those conversations
by key, up to a capacity, forgetting the least recently used first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

__all__ = ["LargeConversations"]


class LargeConversations:
    """A thread-safe LRU set of the conversation keys that went to the large model.

    Args:
        capacity: How many conversations to remember.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._keys: OrderedDict[str, None] = OrderedDict()

    def remembers(self, key: str) -> bool:
        """Whether ``key`` went large (a hit counts as a use)."""
        with self._lock:
            if key in self._keys:
                self._keys.move_to_end(key)
                return True
            return False

    def add(self, key: str) -> None:
        """Remember that ``key`` went large, forgetting the least recent past the capacity."""
        with self._lock:
            self._keys[key] = None
            self._keys.move_to_end(key)
            while len(self._keys) > self._capacity:
                self._keys.popitem(last=False)
