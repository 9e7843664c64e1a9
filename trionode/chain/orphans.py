"""Blocks whose parent we have not seen yet, waiting for it.

Bounded by count and by bytes; when either is reached the oldest orphans go (FIFO), so a peer
flooding unconnectable blocks can only ever cost us ``MAX_ORPHAN_BYTES`` of memory, however
large it makes them.
"""

from collections import OrderedDict
from typing import Final

from trionode.chain.block import Block

# Enough for one missed batch of recent blocks; orphans are cheap to re-fetch if evicted.
MAX_ORPHANS: Final = 100
# 100 full blocks would be 100 MB; a missed batch of ordinary blocks fits in far less.
MAX_ORPHAN_BYTES: Final = 10_000_000


class OrphanPool:
    def __init__(self, max_blocks: int = MAX_ORPHANS, max_bytes: int = MAX_ORPHAN_BYTES) -> None:
        self.max_blocks = max_blocks
        self.max_bytes = max_bytes
        self.bytes = 0  # sum of the pooled blocks' sizes
        self._blocks: OrderedDict[bytes, Block] = OrderedDict()
        self._by_prev: dict[bytes, set[bytes]] = {}

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, block_hash: object) -> bool:
        return block_hash in self._blocks

    def add(self, block: Block) -> None:
        h = block.block_hash
        if h in self._blocks:
            return
        size = block.size()
        # The newest always stays, even alone over the byte budget (a block is at most 1 MB).
        while self._blocks and (len(self._blocks) >= self.max_blocks or self.bytes + size > self.max_bytes):
            self._remove(next(iter(self._blocks)))
        self._blocks[h] = block
        self.bytes += size
        self._by_prev.setdefault(block.prev_hash, set()).add(h)

    def _remove(self, block_hash: bytes) -> Block | None:
        block = self._blocks.pop(block_hash, None)
        if block is not None:
            self.bytes -= block.size()
            siblings = self._by_prev.get(block.prev_hash)
            if siblings is not None:
                siblings.discard(block_hash)
                if not siblings:
                    del self._by_prev[block.prev_hash]
        return block

    def pop_children(self, parent_hash: bytes) -> list[Block]:
        """Remove and return the orphans whose parent is ``parent_hash``."""
        children = []
        for h in sorted(self._by_prev.get(parent_hash, ())):
            block = self._remove(h)
            if block is not None:
                children.append(block)
        return children

    def root_of(self, block_hash: bytes) -> bytes:
        """The missing ancestor hash at the bottom of this orphan's known chain."""
        seen = 0
        block = self._blocks.get(block_hash)
        missing = block_hash
        while block is not None and seen <= self.max_blocks:
            missing = block.prev_hash
            block = self._blocks.get(missing)
            seen += 1
        return missing
