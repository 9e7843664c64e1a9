"""Bounded "have we seen it" sets: what the node has seen, and what each peer is known to have.

Relay consults both so nothing loops (the seed's broadcast storm) and nothing is sent to a
peer twice; the bound keeps a long-running node's memory flat, at the cost of possibly
re-sending something very old, which the receiver then ignores as a duplicate.
"""

from collections import deque
from typing import Final

# Per peer: a few blocks' worth of transactions plus recent blocks.
PEER_KNOWN: Final = 20_000
# Node-wide: comfortably more than a full mempool plus the blocks of a long sync.
NODE_SEEN: Final = 100_000


class RollingSet:
    """A set that forgets its oldest members beyond ``capacity`` (O(1) add and lookup)."""

    __slots__ = ("_capacity", "_members", "_order")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._members: set[bytes] = set()
        self._order: deque[bytes] = deque()

    def __contains__(self, item: object) -> bool:
        return item in self._members

    def __len__(self) -> int:
        return len(self._members)

    def add(self, item: bytes) -> bool:
        """Add; returns False if it was already there."""
        if item in self._members:
            return False
        self._members.add(item)
        self._order.append(item)
        if len(self._order) > self._capacity:
            self._members.discard(self._order.popleft())
        return True
