"""Incremental sync and the consensus loop (the seed's ResolveConflicts, done right).

A node behind sends ``RequestChain`` with a block locator and gets only the blocks after the
fork point, up to 500 per ``ResponseChain``. Each further request describes the branch being
downloaded (the locator of the last block received), not our main chain: a side branch longer
than one batch does not move our tip until it has more work, and asking from our tip again
would bring the same batch back. It asks again while batches bring progress and the peer still
claims more work than we have seen. The consensus loop runs every ``sync_interval`` (the first
soon after start), when a peer shows more work (Hello, Heartbeat) and on ``trionode sync``:
it syncs from the peer claiming the most work; a peer that claims more than it delivers, or
delivers invalid blocks, is penalised and the next best peer is tried; a stalled one is
dropped. Chain switches happen block by block in the chain owner, atomically in the store.
"""

from typing import TYPE_CHECKING, Final, NoReturn

import structlog
import trio

from trionode.chain.block import Block
from trionode.chain.locator import branch_locator
from trionode.chain.tree import Chain
from trionode.net.bans import POINTS_INVALID_BLOCK, POINTS_UNDELIVERED
from trionode.net.connection import Connection
from trionode.net.manager import PeerManager
from trionode.net.wakeup import Wakeup
from trionode.node.chain_owner import ChainOwner
from trionode.node.intake import Intake, body_failure
from trionode.node.workers import SignatureChecker
from trionode.wire import messages as m
from trionode.wire.errors import TIMEOUT
from trionode.wire.framing import MAX_FRAME
from trionode.wire.payloads import MAX_BLOCKS_PER_RESPONSE

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

# A sync peer that sends nothing useful for this long is dropped and the next one tried.
STALL_TIMEOUT: Final = 30.0
# First consensus round this soon after start (the seed waits 10 s; peers' Hellos usually
# trigger one earlier).
FIRST_ROUND: Final = 10.0
# Room for the envelope and array headers when filling a ResponseChain up to the frame limit.
FRAME_MARGIN: Final = 64 * 1024
# Per-block overhead of the wire array beyond ``Block.size()`` (array headers, target bytes).
BLOCK_WIRE_OVERHEAD: Final = 64


class SyncSession:
    def __init__(self, conn: Connection, start_height: int, start_work: int) -> None:
        self.conn = conn
        self.claimed_work = conn.work
        self.start_height = start_height
        self.start_work = start_work
        self.started = trio.current_time()
        self.last_progress = self.started
        self.received = 0
        # The last block received: the next request goes on from it (None: from our tip).
        self.cursor: bytes | None = None
        self.cursor_work = 0
        self.limit = MAX_BLOCKS_PER_RESPONSE
        self.done = trio.Event()
        self.changed = trio.Event()
        self.failure: str | None = None

    def finish(self, failure: str | None = None) -> None:
        self.failure = failure
        if self.conn.sync is self:
            self.conn.sync = None
        self.done.set()
        self.changed.set()


class Consensus:
    def __init__(
        self,
        owner: ChainOwner,
        manager: PeerManager,
        intake: Intake,
        signatures: SignatureChecker,
        network: bytes,
        sync_interval: float,
        log: "FilteringBoundLogger",
    ) -> None:
        self.owner = owner
        self.manager = manager
        self.intake = intake
        self.signatures = signatures
        self.network = network
        self.sync_interval = sync_interval
        self.log = log
        self.wakeup = Wakeup()
        self.rounds = 0
        self._running = False
        self._round_done = trio.Event()
        # Node id -> (connection, claimed work it failed to deliver on it). A new connection
        # is asked again; entries of peers no longer connected are dropped as others are
        # added, so there are never more entries than connections.
        self._undelivered: dict[str, tuple[Connection, int]] = {}

    # ------------------------------------------------------------- the loop

    async def loop(self) -> NoReturn:
        await self.wakeup.wait(min(FIRST_ROUND, self.sync_interval))
        while True:
            await self.round()
            await self.wakeup.wait(self.sync_interval)

    async def round(self) -> None:
        """Sync from the peers claiming more work than ours, best first, until none is left."""
        tried: set[str] = set()
        self._running = True
        while True:
            ours = self.owner.snapshot.work
            best: Connection | None = None
            for conn in self.manager.established():
                peer = conn.peer_id
                if peer is None or peer in tried or conn.work <= ours or conn.sync is not None:
                    continue
                failed = self._undelivered.get(peer)
                if failed is not None and failed[0] is conn and failed[1] >= conn.work:
                    continue  # it already failed to deliver this much
                if best is None or conn.work > best.work:
                    best = conn
            if best is None:
                break
            tried.add(best.peer_id or "")
            await self.sync_with(best)
        self._running = False
        self.rounds += 1
        self._round_done.set()
        self._round_done = trio.Event()

    async def run_now(self) -> None:
        """``trionode sync``: run a round now and return when it is over.

        A round already running may have chosen its peers before the request: the request
        waits for a fresh round after it (the poke starts that round as soon as it ends)."""
        target = self.rounds + (2 if self._running else 1)
        self.wakeup.poke()
        while self.rounds < target:
            await self._round_done.wait()

    async def sync_with(self, conn: Connection) -> None:
        """One sync session with ``conn``; every line logged meanwhile names that peer."""
        with structlog.contextvars.bound_contextvars(peer=conn.peer_id):
            await self._sync_with(conn)

    async def _sync_with(self, conn: Connection) -> None:
        session = await self.start(conn)
        if session is None:
            return
        while not session.done.is_set():
            with trio.move_on_after(STALL_TIMEOUT):
                await session.changed.wait()
                session.changed = trio.Event()
                continue
            if trio.current_time() - session.last_progress >= STALL_TIMEOUT:
                self.log.info("sync_stalled", peer=conn.peer_id, height=self.owner.snapshot.height)
                session.finish("stalled")
                conn.close("sync_stalled", m.Error(code=TIMEOUT, reason="sync request not answered"))
        snapshot = self.owner.snapshot
        peer = conn.peer_id
        if peer is not None and snapshot.work >= session.claimed_work:
            self._undelivered.pop(peer, None)  # it delivered
        # Blocks that do not connect to the locator we sent deliver nothing either (an honest
        # answer always starts on a block we have). Invalid blocks and stalls cost their own.
        delivered_nothing = session.failure in (None, "unconnected")
        if delivered_nothing and snapshot.work < session.claimed_work and peer is not None:
            connected = self.manager.connections
            for gone in [p for p, (c, _) in self._undelivered.items() if connected.get(p) is not c]:
                del self._undelivered[gone]
            self._undelivered[peer] = (conn, session.claimed_work)
            self.log.info("sync_undelivered", peer=peer, claimed=session.claimed_work, work=snapshot.work)
            self.manager.penalize(conn, POINTS_UNDELIVERED, "claimed_more_work_than_delivered")

    async def start(self, conn: Connection) -> SyncSession | None:
        """Begin a sync session with ``conn`` (also used to fetch an orphan's ancestors)."""
        if conn.sync is not None or conn.closing:
            return None
        snapshot = self.owner.snapshot
        session = SyncSession(conn, snapshot.height, snapshot.work)
        conn.sync = session
        await self._request(session)
        return session

    async def _request(self, session: SyncSession) -> None:
        cursor = session.cursor

        def build(chain: Chain) -> list[bytes]:
            entry = None if cursor is None else chain.index.get(cursor)
            if entry is None:
                return chain.locator()
            return branch_locator(entry.block_hash, entry.height, lambda h: chain.index[h].prev, chain.main)

        locator = await self.owner.call(build)
        message = m.RequestChain(locator=locator, limit=session.limit)
        if not session.conn.send_message(message):
            session.finish("send_failed")

    # ------------------------------------------------------------- messages

    async def serve(self, conn: Connection, msg: m.RequestChain) -> None:
        """Answer a RequestChain: blocks after the fork point, within the limit and a frame."""
        limit = min(msg.limit, MAX_BLOCKS_PER_RESPONSE)
        locator = msg.locator
        blocks = await self.owner.call(lambda chain: chain.blocks_after(locator, limit))
        budget = MAX_FRAME - FRAME_MARGIN
        chosen: list[Block] = []
        for block in blocks:
            budget -= block.size() + BLOCK_WIRE_OVERHEAD
            if budget < 0:
                break
            chosen.append(block)
        conn.send_message(m.ResponseChain(blocks=chosen))

    async def on_response(self, conn: Connection, msg: m.ResponseChain) -> None:
        session = conn.sync
        if not isinstance(session, SyncSession) or session.done.is_set():
            conn.unknown_messages += 1
            self.log.debug("unsolicited_response", peer=conn.peer_id, blocks=len(msg.blocks))
            return
        blocks = msg.blocks
        before = self.owner.snapshot
        session.last_progress = trio.current_time()
        if blocks:
            # Cheapest first (protocol.md 10): no signature is checked in or after a block that
            # fails a rule decidable from the block alone; the loop below rejects that block.
            failing = next((i for i, b in enumerate(blocks) if body_failure(b, self.intake.params)), None)
            if failing is not None:
                blocks = blocks[: failing + 1]
            checked = blocks if failing is None else blocks[:failing]
            txs = [tx for block in checked for tx in block.txs[1:]]
            bad = await self.signatures.first_bad(txs, self.network)
            if bad is not None:
                owner = [block for block in checked for _ in block.txs[1:]][bad]
                self.log.warning(
                    "block_rejected",
                    hash=owner.block_hash.hex(),
                    reason="bad_signature",
                    detail=f"tx {txs[bad].txid.hex()}",
                    peer=conn.peer_id,
                )
                self.manager.penalize(conn, POINTS_INVALID_BLOCK, "invalid_block:bad_signature")
                session.finish("invalid")
                return
        bulk = len(blocks) >= session.limit
        progress = False
        for block in blocks:
            result = await self.intake.submit_block(
                block, conn, signatures_checked=True, relay=False, quiet=bulk
            )
            if result.status == "invalid":
                session.finish("invalid")
                return
            if result.status == "orphan":
                self.log.info("sync_unconnected", peer=conn.peer_id, hash=block.block_hash.hex())
                session.finish("unconnected")
                return
            if result.status in ("connected", "side"):
                progress = True
        session.received += len(blocks)
        if blocks:
            # Duplicates count as progress when they take us further along the peer's chain
            # (a branch stored by an earlier, interrupted session); strictly more work each
            # time, so a peer repeating itself cannot keep us asking.
            last = blocks[-1].block_hash
            work = await self.owner.call(lambda chain: chain.index[last].work if last in chain.index else 0)
            if work > session.cursor_work:
                progress = True
                session.cursor, session.cursor_work = last, work
        after = self.owner.snapshot
        elapsed = max(trio.current_time() - session.started, 1e-9)
        if blocks:
            self.log.info(
                "sync_progress",
                peer=conn.peer_id,
                height=after.height,
                target=max(conn.height, after.height),
                blocks=session.received,
                rate=round(session.received / elapsed, 1),
            )
        session.changed.set()
        # The peer has more for us: a full batch, or it claims more work than the best we have
        # seen, our tip or the branch being fetched (not height: a heavier chain may be shorter).
        session.claimed_work = max(session.claimed_work, conn.work)
        more = bulk or max(after.work, session.cursor_work) < session.claimed_work
        if progress and more:
            await self._request(session)
            return
        session.finish()
        if after.tip != before.tip or after.height != session.start_height:
            tip_block = await self.owner.call(lambda chain: chain.block_at(chain.height))
            if tip_block is not None:
                self.intake.relay_block(tip_block, conn)

    def on_peer_work(self, conn: Connection) -> None:
        """A Hello or Heartbeat showed this peer's work: wake consensus if it beats ours."""
        if conn.work > self.owner.snapshot.work and conn.sync is None:
            self.wakeup.poke()
