"""Mining: block templates from the chain owner, the nonce search in the injected solver.

The search runs in rounds (``PowSolver.search``); between rounds the miner checks whether the
tip moved and, if so, abandons the template at once and starts on the new tip. Heartbeats,
relay and control keep running because no round blocks the event loop.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import trio

from trionode.chain.block import Block
from trionode.node.chain_owner import ChainOwner
from trionode.node.intake import Intake
from trionode.node.workers import PowSolver

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

# A template older than this is rebuilt so new transactions and a fresh timestamp get in.
TEMPLATE_REFRESH: Final = 10.0
# Weight of the newest round in the hash-rate average.
RATE_SMOOTHING: Final = 0.3


class Miner:
    def __init__(
        self,
        owner: ChainOwner,
        intake: Intake,
        solver: PowSolver,
        wall: Callable[[], float],
        log: "FilteringBoundLogger",
    ) -> None:
        self.owner = owner
        self.intake = intake
        self.solver = solver
        self.wall = wall
        self.log = log
        self.hashrate = 0.0
        self.active = 0
        self.blocks_mined = 0

    async def mine_one(self, address: bytes) -> Block:
        """Mine until one of our blocks joins the main chain; return it."""
        self.active += 1
        try:
            while True:
                block = await self._attempt(address)
                if block is not None:
                    return block
        finally:
            self.active -= 1

    async def _attempt(self, address: bytes) -> Block | None:
        generation = self.owner.tip_generation
        now_ms = int(self.wall() * 1000)
        template = await self.owner.call(lambda chain: chain.template(address, now_ms))
        header = template.header
        prefix = header.prefix()
        built = trio.current_time()
        start = 0
        while self.owner.tip_generation == generation:
            if trio.current_time() - built > TEMPLATE_REFRESH:
                return None
            began = trio.current_time()
            nonce, tried = await self.solver.search(prefix, header.target, start)
            elapsed = trio.current_time() - began
            if elapsed > 0:
                rate = tried / elapsed
                self.hashrate = (
                    rate
                    if self.hashrate == 0
                    else (1 - RATE_SMOOTHING) * self.hashrate + RATE_SMOOTHING * rate
                )
            if nonce is None:
                start += tried
                continue
            block = Block(header.with_nonce(nonce), template.txs)
            result = await self.intake.submit_block(block, None, signatures_checked=True)
            if result.status == "connected":
                self.blocks_mined += 1
                self.log.info(
                    "block_mined", hash=block.block_hash.hex(), height=block.height, txs=len(block.txs)
                )
                return block
            return None  # the tip moved while we searched: start over on the new one
        return None

    async def run(self, address: bytes) -> None:
        """``[mining] enabled``: mine continuously to ``address``."""
        self.log.info("mining_started", address=address.hex(), workers=self.solver.workers)
        while True:
            await self.mine_one(address)
