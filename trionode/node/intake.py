"""How transactions and blocks enter the chain, from peers, the CLI or the miner.

One path for all: cheap checks, signatures off the event loop, the chain owner decides, then
the outcome is logged (INTERFACE.md's events), relayed to peers that may not have it (encoded
once, sent to many), and an invalid sender is penalised. Relay happens only after validation.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import trio

from trionode.chain.block import Block
from trionode.chain.errors import ValidationError
from trionode.chain.mempool import FULL
from trionode.chain.params import ChainParams
from trionode.chain.transaction import Transaction
from trionode.chain.tree import Admission, BlockResult, Chain
from trionode.chain.validation import check_block_body
from trionode.net.bans import POINTS_FUTURE_BLOCK, POINTS_INVALID_BLOCK, POINTS_INVALID_TX
from trionode.net.connection import Connection
from trionode.net.inventory import NODE_SEEN, RollingSet
from trionode.net.manager import PeerManager
from trionode.node.chain_owner import ChainOwner
from trionode.node.workers import INLINE_SIGNATURES, SignatureChecker
from trionode.wire import messages as m

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

# Rejections that prove the sender sent something no honest node would (not races such as
# a transaction confirmed meanwhile): they cost misbehaviour points.
# (A malformed transaction from a peer never gets here: decoding it is a protocol error.)
PENALISED_TX: Final = frozenset({"bad_signature", "bad_amount", "unexpected_coinbase"})
# Refusals that may not hold later (the missing nonce arrives by another path, coins confirm,
# the pool drains, time passes): such a transaction is not remembered as processed, so the
# next copy of it is judged again instead of being ignored for good.
RETRY_LATER_TX: Final = frozenset(
    {"nonce_gap", "insufficient_balance", "too_many_pending", "mempool_full", "time_too_new"}
)
# A reorg may connect many blocks; relay only the newest few, peers fetch the rest by locator.
RELAY_MAX_BLOCKS: Final = 16
# Transactions offered to a new peer: half its send queue, so the offer never makes it slow.
OFFER_MAX: Final = 512
# The offer waits at most this long for the peer to reach our tip, checking this often.
OFFER_WAIT: Final = 120.0
OFFER_POLL: Final = 1.0


def body_failure(block: Block, params: ChainParams) -> ValidationError | None:
    """Why ``block`` breaks a rule decidable from the block alone, if it does (pure: any task
    may ask, no round trip to the chain owner)."""
    try:
        check_block_body(block, params)
    except ValidationError as exc:
        return exc
    return None


class Intake:
    def __init__(
        self,
        owner: ChainOwner,
        manager: PeerManager,
        signatures: SignatureChecker,
        params: ChainParams,
        node_id: bytes,
        wall: Callable[[], float],
        log: "FilteringBoundLogger",
    ) -> None:
        self.owner = owner
        self.manager = manager
        self.signatures = signatures
        self.params = params
        self.network = params.network
        self.node_id = node_id
        self.wall = wall
        self.log = log
        self.seen_txs = RollingSet(NODE_SEEN)
        self.accepted_txs = 0
        self.accepted_blocks = 0

    def now_ms(self) -> int:
        return int(self.wall() * 1000)

    def frame(self, message: m.Message) -> bytes:
        return m.encode_message(message, self.node_id, self.wall())

    async def submit_transaction(self, tx: Transaction, origin: Connection | None) -> None:
        """Validate, add to the mempool and relay; raise ``ValidationError`` if rejected."""
        error = (await self.submit_transactions([tx], origin))[0]
        if error is not None:
            raise error

    async def submit_transactions(
        self, txs: list[Transaction], origin: Connection | None
    ) -> list[ValidationError | None]:
        """A batch (consecutive frames from one peer): signatures checked together in worker
        threads, one round trip to the chain owner, then each one logged and relayed."""
        results: list[ValidationError | None] = [None] * len(txs)
        # Per transaction, the held ones it made valid (its sender's next nonces): relayed right
        # after it, so peers receive each sender's nonces in order; and those it evicted.
        admitted: list[Admission] = [Admission() for _ in txs]
        fresh: list[int] = []
        for i, tx in enumerate(txs):
            if origin is not None:
                origin.known.add(tx.txid)
                if tx.txid in self.seen_txs:
                    results[i] = ValidationError("duplicate", "already processed")
                    continue
            if tx.is_coinbase:
                results[i] = ValidationError("unexpected_coinbase", "a coinbase only appears in a block")
                continue
            fresh.append(i)
        valid = await self.signatures.verify([txs[i] for i in fresh], self.network)
        candidates = []
        for i, ok in zip(fresh, valid, strict=True):
            if ok:
                candidates.append(i)
            else:
                results[i] = ValidationError("bad_signature", "signature does not verify")
        if candidates:
            now = self.now_ms()
            batch = [txs[i] for i in candidates]

            def add_all(chain: Chain) -> list[ValidationError | Admission]:
                outcome: list[ValidationError | Admission] = []
                for tx in batch:
                    try:
                        outcome.append(chain.add_transaction(tx, now, signature_checked=True))
                    except ValidationError as exc:
                        outcome.append(exc)
                return outcome

            for i, done in zip(candidates, await self.owner.call(add_all), strict=True):
                if isinstance(done, ValidationError):
                    results[i] = done
                else:
                    admitted[i] = done
        peer = origin.peer_id if origin is not None else None
        for tx, error, admission in zip(txs, results, admitted, strict=True):
            txid = tx.txid
            if error is not None and error.reason == "duplicate" and origin is not None:
                continue  # seen before: nothing new to say
            if error is None or error.reason not in RETRY_LATER_TX:
                self.seen_txs.add(txid)
            if error is None:
                self.accepted_txs += 1
                self.log.info("tx_accepted", txid=txid.hex(), peer=peer)
                self.manager.broadcast(self.frame(m.NewTransaction(tx=tx)), txid, exclude=origin)
                for gone in admission.evicted:  # held by the chain, tried again later
                    self.log.info("tx_dropped", txid=gone.txid.hex(), reason=FULL, held=True)
                for gone in admission.forgotten:  # pushed out of the held ones for room
                    self.log.info("tx_dropped", txid=gone.txid.hex(), reason=FULL, held=False)
                for later in admission.readmitted:
                    self.seen_txs.add(later.txid)
                    self.accepted_txs += 1
                    self.log.info("tx_accepted", txid=later.txid.hex(), peer=None, held=True)
                    self.manager.broadcast(self.frame(m.NewTransaction(tx=later)), later.txid)
                continue
            self.log.info("tx_rejected", txid=txid.hex(), reason=error.reason, peer=peer)
            if origin is not None and error.reason in PENALISED_TX:
                self.manager.penalize(origin, POINTS_INVALID_TX, f"invalid_tx:{error.reason}")
        return results

    async def submit_block(
        self,
        block: Block,
        origin: Connection | None,
        *,
        signatures_checked: bool = False,
        relay: bool = True,
        quiet: bool = False,
    ) -> BlockResult:
        """Add a block; log, penalise and relay according to what the chain made of it."""
        block_hash = block.block_hash
        if origin is not None:
            origin.known.add(block_hash)
        if not signatures_checked and len(block.txs) <= INLINE_SIGNATURES:
            # Few signatures (a typical relayed block): one round trip, in which the chain
            # checks the block-only rules first and the signatures last (cheapest first).
            now = self.now_ms()
            result = await self.owner.call(
                lambda chain: chain.add_block(block, now, signatures_checked=False)
            )
            self.report(block, result, origin, relay=relay, quiet=quiet)
            if result.reorgs:
                await self.relay_mempool()
            return result
        if not signatures_checked:
            if await self.owner.call(lambda chain: chain.knows(block_hash)):
                # Duplicate, known invalid or a known orphan: answered without new work.
                result = await self.owner.call(lambda chain: chain.add_block(block, self.now_ms(), False))
                self.report(block, result, origin, relay=False, quiet=quiet)
                return result
            # Cheapest first (protocol.md 10): proof of work, size, Merkle root and coinbase
            # before any signature, so a junk block costs no signature checks.
            body_error = body_failure(block, self.params)
            bad = None if body_error else await self.signatures.first_bad(block.txs, self.network)
            if body_error is not None or bad is not None:
                error = body_error or ValidationError("bad_signature", f"tx {bad}")
                result = BlockResult("invalid", error=error)
                self.report(block, result, origin, relay=False, quiet=quiet)
                return result
        now = self.now_ms()
        result = await self.owner.call(lambda chain: chain.add_block(block, now, signatures_checked=True))
        self.report(block, result, origin, relay=relay, quiet=quiet)
        if result.reorgs:
            await self.relay_mempool()
        return result

    async def relay_mempool(self) -> None:
        """After a reorg, offer the pool again: transactions of disconnected blocks are back in
        it, and peers that only ever saw them in a block must get them as transactions. Only
        what peers can take (a sender's first 100, the cap); the rest follows as blocks confirm
        those (``BlockResult.relay``)."""
        txs = await self.owner.call(lambda chain: chain.mempool.relayable())
        for tx in txs:
            self.manager.broadcast(self.frame(m.NewTransaction(tx=tx)), tx.txid)

    async def offer_mempool(self, conn: Connection) -> None:
        """Offer a new peer the pool: it may have been partitioned away, down or new, and
        transactions are relayed only once, when accepted. Oldest first (each sender's in nonce
        order), at most ``OFFER_MAX``; the rest reach it in blocks."""
        # A peer behind us or on another branch would refuse what builds on blocks it lacks
        # (nonce_gap, insufficient_balance) and then ignore it for good: wait until its
        # heartbeats show our tip (or OFFER_WAIT at most).
        with trio.move_on_after(OFFER_WAIT):
            while conn.tip != self.owner.snapshot.tip and not conn.closing:  # noqa: ASYNC110 - no event for a heartbeat's tip
                await trio.sleep(OFFER_POLL)
        txs = await self.owner.call(lambda chain: chain.mempool.relayable()[:OFFER_MAX])
        for tx in txs:
            if conn.closing:
                return
            if conn.known.add(tx.txid):
                conn.send(self.frame(m.NewTransaction(tx=tx)))

    def report(
        self, block: Block, result: BlockResult, origin: Connection | None, *, relay: bool, quiet: bool
    ) -> None:
        peer = origin.peer_id if origin is not None else None
        if relay and result.connected:  # first: every hop's logging would delay the network
            for accepted in result.connected[-RELAY_MAX_BLOCKS:]:
                self.relay_block(accepted, origin)
        for reorg in result.reorgs:
            self.log.info(
                "chain_reorganized",
                old_tip=reorg.old_tip.hex(),
                new_tip=reorg.new_tip.hex(),
                depth=reorg.depth,
            )
        for accepted in result.connected:
            self.accepted_blocks += 1
            fields = {"hash": accepted.block_hash.hex(), "height": accepted.height, "txs": len(accepted.txs)}
            if quiet:
                self.log.debug("block_accepted", peer=peer, **fields)
            else:
                self.log.info("block_accepted", peer=peer, **fields)
        if result.status == "side":
            self.log.info(
                "block_stored", hash=block.block_hash.hex(), height=block.height, branch="side", peer=peer
            )
        # Every transaction that left the pool, with why, and whether it is held (stored, tried
        # again after later tip changes) or gone for good.
        for tx, reason in result.dropped:
            self.log.info("tx_dropped", txid=tx.txid.hex(), reason=reason, held=True)
        for tx, reason in result.forgotten:
            self.log.info("tx_dropped", txid=tx.txid.hex(), reason=reason, held=False)
        for tx in result.readmitted:
            self.log.debug("tx_readmitted", txid=tx.txid.hex())
        for tx in result.relay:  # peers may have dropped it too, or never had it
            self.manager.broadcast(self.frame(m.NewTransaction(tx=tx)), tx.txid)
        for bad_hash, err in result.rejected:
            self.log.warning(
                "block_rejected", hash=bad_hash.hex(), reason=err.reason, detail=err.detail, peer=peer
            )
        if result.status == "invalid" and result.error is not None:
            err = result.error
            self.log.warning(
                "block_rejected", hash=block.block_hash.hex(), reason=err.reason, detail=err.detail, peer=peer
            )
            if origin is not None:
                # A clock more than 2 h fast is a fault, not an attack: it costs less than a ban.
                points = POINTS_FUTURE_BLOCK if err.reason == "time_too_new" else POINTS_INVALID_BLOCK
                self.manager.penalize(origin, points, f"invalid_block:{err.reason}")

    def relay_block(self, block: Block, origin: Connection | None) -> None:
        self.manager.broadcast(self.frame(m.NewBlock(block=block)), block.block_hash, exclude=origin)
