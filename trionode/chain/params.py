"""Chain parameters, consensus limits and the genesis block derived from them.

Every node with the same ``[chain]`` section derives the same genesis block; its hash names
the network (Hello's ``network``, ``status``'s ``network``). Changing any parameter makes a
different network, which is the point: nodes that disagree on the rules never connect.
"""

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Final

from trionode.chain.amounts import COIN
from trionode.chain.block import HEADER_VERSION, Block, BlockHeader
from trionode.chain.encoding import packb
from trionode.chain.merkle import EMPTY_ROOT
from trionode.chain.pow import target_for_difficulty

# 2024-01-01T00:00:00Z in ms: a fixed genesis time, so genesis depends only on parameters.
GENESIS_TIMESTAMP_MS: Final = 1_704_067_200_000
GENESIS_TAG: Final = "trionode-genesis-v1"
# A block's consensus size (``Block.size()``: the 124-byte header plus its transactions'
# canonical encodings) may not exceed this; 1 MB fits four times in a frame.
MAX_BLOCK_TX_BYTES: Final = 1_000_000
# A block may be at most this far ahead of our clock (Bitcoin's rule, INTERFACE's 2 hours).
MAX_FUTURE_MS: Final = 2 * 60 * 60 * 1000
# Timestamps must exceed the median of this many previous blocks (Bitcoin's median time past).
MEDIAN_TIME_SPAN: Final = 11
# Retargeting never moves the target by more than this factor in one step.
RETARGET_CLAMP: Final = 4


@dataclass(frozen=True)
class ChainParams:
    difficulty: int = 2
    mining_reward: int = 50 * COIN
    retarget_interval: int = 0  # blocks between retargets; 0 keeps the target fixed
    target_block_time: int = 60  # seconds, the retarget's goal

    def __post_init__(self) -> None:
        target_for_difficulty(self.difficulty)  # raises on a bad value
        if self.mining_reward <= 0:
            raise ValueError("mining_reward must be positive")
        if self.retarget_interval == 1 or self.retarget_interval < 0:
            raise ValueError("retarget_interval is 0 (off) or at least 2")
        if self.target_block_time <= 0:
            raise ValueError("target_block_time must be positive")

    @property
    def initial_target(self) -> int:
        return target_for_difficulty(self.difficulty)

    def canonical(self) -> bytes:
        return packb(
            [
                GENESIS_TAG,
                self.difficulty,
                self.mining_reward,
                self.retarget_interval,
                self.target_block_time,
            ]
        )

    @cached_property
    def genesis(self) -> Block:
        """Height 0, no transactions; its ``prev_hash`` is SHA-256 of the parameters."""
        header = BlockHeader(
            HEADER_VERSION,
            0,
            hashlib.sha256(self.canonical()).digest(),
            GENESIS_TIMESTAMP_MS,
            EMPTY_ROOT,
            self.initial_target,
            0,
        )
        return Block(header, [])

    @property
    def network(self) -> bytes:
        """The genesis hash: the network's name."""
        return self.genesis.block_hash
