"""Mining: block templates from the chain owner, the nonce search in the injected solver.

The search of a template runs in a cancel scope beside a task waiting for the tip to move:
when it moves, the scope is cancelled and the miner starts on the new tip. The cancellation
lands between the solver's short jobs (``ProcessSolver``: ~``JOB_SECONDS`` in each worker
process; ``InlineSolver``: one chunk on the loop), so a stale search stops within one job.
Heartbeats, relay and control keep running because no job blocks the event loop for long.
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
        """Search one template; the block if it joined the main chain, else None (the tip
        moved, the template grew old, or our block lost a race)."""
        generation = self.owner.tip_generation
        now_ms = int(self.wall() * 1000)
        template = await self.owner.call(lambda chain: chain.template(address, now_ms))
        header = template.header
        nonce: int | None = None
        with trio.move_on_after(TEMPLATE_REFRESH) as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._cancel_on_tip_change, generation, scope)
                nonce = await self._search(header.prefix(), header.target)
                nursery.cancel_scope.cancel()  # found: stop watching the tip
        if nonce is None:
            moved = self.owner.tip_generation != generation
            self.log.debug(
                "mining_abandoned",
                height=header.height,
                reason="tip_changed" if moved else "template_refresh",
            )
            return None
        block = Block(header.with_nonce(nonce), template.txs)
        result = await self.intake.submit_block(block, None, signatures_checked=True)
        if result.status == "connected":
            self.blocks_mined += 1
            self.log.info("block_mined", hash=block.block_hash.hex(), height=block.height, txs=len(block.txs))
            return block
        return None  # the tip moved as we found it: start over on the new one

    async def _cancel_on_tip_change(self, generation: int, scope: trio.CancelScope) -> None:
        await self.owner.wait_tip_change(generation)
        scope.cancel()

    async def _search(self, prefix: bytes, target: int) -> int:
        """Rounds of the solver from nonce 0 until one hits (the caller bounds it)."""
        start = 0
        while True:
            began = trio.current_time()
            nonce, tried = await self.solver.search(prefix, target, start)
            elapsed = trio.current_time() - began
            if elapsed > 0:
                rate = tried / elapsed
                self.hashrate = (
                    rate
                    if self.hashrate == 0
                    else (1 - RATE_SMOOTHING) * self.hashrate + RATE_SMOOTHING * rate
                )
            if nonce is not None:
                return nonce
            start += tried

    async def run(self, address: bytes) -> None:
        """``[mining] enabled``: mine continuously to ``address``."""
        self.log.info("mining_started", address=address.hex(), workers=self.solver.workers)
        while True:
            await self.mine_one(address)
