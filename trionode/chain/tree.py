"""The block tree and fork choice: every known block, the main chain, its ledger and mempool.

Fork choice is by cumulative work; on a tie the block seen first stays (we only switch to
strictly more work). Side branches are kept so a later block can make them win; switching
disconnects main-chain blocks back to the fork (exact ledger undo), connects the branch, and
returns the disconnected transactions to the mempool when they are still valid (whatever the
per-sender cap, mempool.py). A branch block that breaks a state rule is marked invalid with all
its descendants, and the best remaining chain is activated instead.

Side branches are bounded (protocol.md 10). A side block is kept in memory only until its
branch has more work than the tip; then it is stored, in the same commit as the tip that needs
it. In memory there are at most ``max_side_blocks`` and ``max_side_bytes``; past that,
``_trim_side`` forgets the branches that bring the least work of their own: work above the
main-chain block they fork from. A flood of cheap blocks, forking anywhere, brings one block of
work each and goes first. An honest branch being synced oldest first (700 blocks forking 600
below our tip, fetched 500 per batch, has less work than our tip after the first batch) gains
work of its own with every block and stays until it wins; pushing it out takes branches with
more work of their own than it has, so forking deeper than it: at least its work, per branch.
A forgotten block is unknown again (``knows`` says no), so it is fetched again if it matters.
There is no maximum reorganisation depth: it would split the network for good between nodes
that saw a deep branch in time and nodes that did not.

Transactions that leave the pool are held aside (``mempool.Held``) and offered again at later
tip changes, unless they can never confirm: their nonce is used on the main chain. The pool
and the held transactions that were accepted once are persisted together (``commit``), so a
crash loses none of them. Every transaction that leaves the pool is reported with a reason,
in ``dropped`` (held) or ``forgotten`` (gone for good: its nonce used, or no room to hold it).

Pure and synchronous: the node's chain owner task is the only caller.
"""

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from trionode.chain.audit import replay
from trionode.chain.block import HEADER_BYTES, HEADER_VERSION, Block, BlockHeader
from trionode.chain.errors import ValidationError
from trionode.chain.ledger import Ledger
from trionode.chain.locator import build_locator
from trionode.chain.mempool import FULL, Held, Mempool
from trionode.chain.merkle import merkle_root
from trionode.chain.orphans import OrphanPool
from trionode.chain.params import MAX_BLOCK_TX_BYTES, MEDIAN_TIME_SPAN, RETARGET_CLAMP, ChainParams
from trionode.chain.pow import work_for_target
from trionode.chain.store import (
    STATUS_INVALID,
    STATUS_STORED,
    STATUS_VALID,
    Store,
    StoreError,
)
from trionode.chain.transaction import Transaction, coinbase
from trionode.chain.validation import (
    check_block_body,
    check_header_context,
    check_signatures,
    median_time_past,
    next_target,
)

# Blocks kept decoded in memory: a sync batch plus the recent tip area.
BLOCK_CACHE_SIZE: Final = 1024
# Hashes remembered as invalid without being stored (bad header context): bounded, FIFO.
MAX_INVALID_REMEMBERED: Final = 10_000
# Leave room in a template for the coinbase and header.
TEMPLATE_MAX_TXS: Final = 5_000
# The store's meta key listing the held transactions among its mempool rows (``commit``):
# 32-byte txids, oldest first. The rows not listed are the pool.
HELD_META: Final = "mempool_held"
# A nonce gap closes when the missing transaction arrives (often by another path); a balance
# too low rises when a block confirms coins for the sender. (``too_many_pending`` and
# ``mempool_full`` are refusals: the sender sends again later.)
HELD_REASONS: Final = frozenset({"nonce_gap", "insufficient_balance"})
# Side blocks kept in memory (module docstring): ten sync batches; a trim keeps 90 %, so an
# honest branch that needs up to 4,500 blocks to beat our tip is adopted batch by batch. And a
# memory bound, as a block may be 1 MB (256 full ones; ordinary blocks are far smaller).
MAX_SIDE_BLOCKS: Final = 5_000
MAX_SIDE_BYTES: Final = 256 * 1024 * 1024
# Over budget, trim a tenth below it, so the O(n log n) ranking runs once per that many blocks.
SIDE_TRIM_DIVISOR: Final = 10


@dataclass(slots=True)
class Entry:
    """What we know of a stored block without loading its body."""

    block_hash: bytes
    header: BlockHeader
    work: int  # cumulative, genesis included
    status: int
    seq: int  # first-seen order, the fork-choice tie-break

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def prev(self) -> bytes:
        return self.header.prev_hash


@dataclass(frozen=True, slots=True)
class Reorg:
    old_tip: bytes
    new_tip: bytes
    depth: int  # blocks disconnected from the old main chain


@dataclass(slots=True)
class BlockResult:
    """What adding a block did. ``connected`` lists blocks that joined the main chain, in order
    (the block itself, orphans it unlocked, or a whole winning branch)."""

    status: str  # "connected" | "side" | "orphan" | "duplicate" | "invalid"
    error: ValidationError | None = None  # why, when status is "invalid"
    connected: list[Block] = field(default_factory=list)
    reorgs: list[Reorg] = field(default_factory=list)
    rejected: list[tuple[bytes, ValidationError]] = field(default_factory=list)
    missing: bytes | None = None  # for an orphan: the ancestor to ask for
    # Transactions that left the mempool (or, returned from disconnected blocks, did not get
    # in), with the reason code: a rule they break now, or ``mempool_full``; held aside (and
    # persisted) to be tried again after later tip changes.
    dropped: list[tuple[Transaction, str]] = field(default_factory=list)
    # Accepted transactions gone for good, with the reason: ``nonce_used`` (another transaction
    # with their nonce is on the main chain) or ``mempool_full`` (no room left to hold them).
    forgotten: list[tuple[Transaction, str]] = field(default_factory=list)
    readmitted: list[Transaction] = field(default_factory=list)  # dropped earlier, valid again
    # Pending transactions peers can take now (within the per-sender cap): readmitted ones, and
    # those a reorganisation returned past the cap that confirmations have brought under it.
    relay: list[Transaction] = field(default_factory=list)


@dataclass(slots=True)
class Admission:
    """What accepting a transaction did besides adding it to the mempool."""

    readmitted: list[Transaction] = field(default_factory=list)  # held ones it made valid
    evicted: list[Transaction] = field(default_factory=list)  # pending ones that made room (held)
    forgotten: list[Transaction] = field(default_factory=list)  # held ones pushed out (no room)


class Chain:
    def __init__(self, params: ChainParams, store: Store) -> None:
        self.params = params
        self.network = params.network
        self.store = store
        self.index: dict[bytes, Entry] = {}
        self.children: dict[bytes, list[bytes]] = {}
        self.main: list[bytes] = []
        self.ledger = Ledger()
        self.mempool = Mempool()
        self.orphans = OrphanPool()
        self._invalid: OrderedDict[bytes, str] = OrderedDict()
        self._cache: OrderedDict[bytes, Block] = OrderedDict()
        self._seq = 0
        self._mempool_seq = 0
        self._persisted_mempool: set[bytes] = set()  # txids of the store's mempool rows
        self.held = Held()
        self._persisted_held = -1  # ``held.kept_changes`` when the held list was last stored
        self._synced = (-1, -1)  # (``mempool.changes``, ``held.kept_changes``) at the last sync
        # Side blocks never stored (module docstring): body by hash, and their total size.
        self._side: dict[bytes, Block] = {}
        self._side_bytes = 0
        self.max_side_blocks = MAX_SIDE_BLOCKS
        self.max_side_bytes = MAX_SIDE_BYTES
        self._load()

    # ----------------------------------------------------------------- loading

    def _load(self) -> None:
        """Open the store and rebuild the in-memory state from it.

        Checks what can go wrong on disk, not what was validated before storing: SQLite's
        quick_check (in ``Store``), each header hashes to its key, the stored genesis is ours,
        the main chain links back to it, each main-chain body matches its Merkle root, and the
        ledger replays (balances and nonces). Proof of work, signatures, timestamps and targets
        are not re-checked here; ``trionode validate`` (``validate_all``) re-checks every rule.
        """
        genesis = self.params.genesis
        network = self.store.get_meta("network")
        if network is None:
            self.store.set_meta("network", self.network)
            self.store.put_block(genesis, work_for_target(genesis.header.target), STATUS_VALID, 0)
            self.store.set_meta("tip", genesis.block_hash)
            self.store.commit()
        elif network != self.network:
            raise StoreError(
                f"{self.store.path}: this data dir belongs to network {network.hex()[:16]}…, "
                f"but the [chain] parameters give {self.network.hex()[:16]}…"
            )
        damaged = "the store is damaged: run `trionode validate`, or remove chain.db to sync again"
        for row in self.store.iter_index():
            if row.header.block_hash != row.block_hash:
                raise StoreError(
                    f"{self.store.path}: block {row.block_hash.hex()} at height {row.height} has a "
                    f"header that hashes to {row.header.block_hash.hex()}; {damaged}"
                )
            if row.height == 0:
                if row.block_hash != genesis.block_hash:
                    raise StoreError(f"{self.store.path}: stored genesis differs from the parameters")
                work = work_for_target(row.header.target)
            else:
                parent = self.index.get(row.prev)
                if parent is None:
                    continue  # unreachable leftovers cannot be used; ignore them
                work = parent.work + work_for_target(row.header.target)
            self.index[row.block_hash] = Entry(row.block_hash, row.header, work, row.status, row.seq)
            self.children.setdefault(row.prev, []).append(row.block_hash)
            self._seq = max(self._seq, row.seq + 1)
        tip = self.store.get_meta("tip")
        if tip is None or tip not in self.index:
            raise StoreError(f"{self.store.path}: the stored tip is missing; the store is damaged")
        main: list[bytes] = []
        entry: Entry | None = self.index[tip]
        while entry is not None:
            main.append(entry.block_hash)
            entry = self.index.get(entry.prev) if entry.height > 0 else None
        main.reverse()
        if main[0] != genesis.block_hash or len(main) != self.index[tip].height + 1:
            raise StoreError(f"{self.store.path}: the main chain does not lead back to genesis")
        self.main = main
        for block_hash in main[1:]:
            block = self.block(block_hash)
            if block is None:
                raise StoreError(f"{self.store.path}: block {block_hash.hex()} is missing its body")
            if merkle_root([tx.txid for tx in block.txs]) != block.header.merkle_root:
                raise StoreError(
                    f"{self.store.path}: block {block_hash.hex()} at height {block.height} does not "
                    f"match its Merkle root; {damaged}"
                )
            try:
                self.ledger.apply_block(block)
            except ValidationError as exc:
                raise StoreError(f"{self.store.path}: stored chain fails at {block.height}: {exc}") from exc
        loaded = self.store.mempool_load()
        self._persisted_mempool.update(tx.txid for tx in loaded)
        listed = self.store.get_meta(HELD_META) or b""
        held_ids = [listed[i : i + 32] for i in range(0, len(listed), 32)]
        rows = {tx.txid: tx for tx in loaded}
        held = set(held_ids)
        # In nonce order, not storage order: a reorg persists a returned transaction after the
        # pending ones that follow it, which one by one would all fail as ``nonce_gap``. The
        # pool and the held list come back as they were committed (nothing is dropped here
        # unless the rows were damaged; then it is held like any transaction leaving the pool).
        dropped = self.mempool.rebuild(self.ledger, [tx for tx in loaded if tx.txid not in held], 2**62)
        for txid in held_ids:
            if txid in rows:
                self.held.hold(rows[txid], kept=True)
        for tx, _ in dropped:
            self.held.hold(tx, kept=True)
        if list(self.held.kept) == held_ids:
            self._persisted_held = self.held.kept_changes  # as stored: nothing to write
        self._mempool_seq = self.store.mempool_next_seq()
        self._sync_mempool_store()
        self.store.commit()

    # ----------------------------------------------------------------- queries

    @property
    def tip(self) -> Entry:
        return self.index[self.main[-1]]

    @property
    def height(self) -> int:
        return len(self.main) - 1

    @property
    def work(self) -> int:
        return self.tip.work

    def block(self, block_hash: bytes) -> Block | None:
        block = self._side.get(block_hash)
        if block is not None:
            return block
        block = self._cache.get(block_hash)
        if block is not None:
            self._cache.move_to_end(block_hash)
            return block
        block = self.store.get_block(block_hash)
        if block is not None:
            self._remember(block)
        return block

    def _remember(self, block: Block) -> None:
        self._cache[block.block_hash] = block
        if len(self._cache) > BLOCK_CACHE_SIZE:
            self._cache.popitem(last=False)

    def block_at(self, height: int) -> Block | None:
        if 0 <= height < len(self.main):
            return self.block(self.main[height])
        return None

    def on_main(self, block_hash: bytes) -> bool:
        entry = self.index.get(block_hash)
        return entry is not None and entry.height < len(self.main) and self.main[entry.height] == block_hash

    def knows(self, block_hash: bytes) -> bool:
        return block_hash in self.index or block_hash in self.orphans or block_hash in self._invalid

    def locator(self) -> list[bytes]:
        return build_locator(self.main)

    def blocks_after(self, locator: list[bytes], limit: int) -> list[Block]:
        """Main-chain blocks after the first locator hash we have on our main chain.

        An empty locator means "from genesis": the answer starts at height 0, like the seed's
        full-chain request. A locator we share nothing with also starts after genesis.
        """
        start = 0 if not locator else 1
        for block_hash in locator:
            if self.on_main(block_hash):
                start = self.index[block_hash].height + 1
                break
        blocks = []
        for height in range(start, min(start + limit, len(self.main))):
            block = self.block(self.main[height])
            if block is None:
                break
            blocks.append(block)
        return blocks

    def balance(self, address: bytes) -> int:
        return self.ledger.balance(address)

    # ----------------------------------------------------------------- transactions

    def add_transaction(self, tx: Transaction, now_ms: int, signature_checked: bool = False) -> Admission:
        """Validate against the tip plus pending; raise ``ValidationError`` or join the mempool.

        A validly signed transaction refused for a reason that may not last (HELD_REASONS) is
        held aside and tried again later. Returns the held transactions this one made valid
        (its sender's next nonces, within the per-sender cap), which joined the mempool too,
        the pending ones evicted to make room (held, to be tried again after the next tip
        change), and the held ones forgotten to make room for those.
        """
        if not signature_checked:
            check_signatures([tx], self.network)
        try:
            evicted = self.mempool.add(tx, self.ledger, now_ms)
        except ValidationError as exc:
            if exc.reason in HELD_REASONS:
                self.held.hold(tx, kept=False)
            raise
        self.held.discard(tx.txid)
        admission = Admission(evicted=evicted)
        sender = tx.sender_address
        while True:
            following = self.held.for_nonce(sender, self.mempool.next_nonce(sender, self.ledger))
            if following is None:
                break
            try:
                evicted = self.mempool.add(following, self.ledger, now_ms)
            except ValidationError:
                break  # still held: tried again after the next tip change
            self.held.discard(following.txid)
            admission.readmitted.append(following)
            admission.evicted.extend(evicted)
        for gone in admission.evicted:
            admission.forgotten += self.held.hold(gone, kept=True)
        admission.evicted = [gone for gone in admission.evicted if gone.txid in self.held]
        return admission

    def _set_aside(self, dropped: list[tuple[Transaction, str]], result: BlockResult) -> None:
        """Hold what left the pool at a tip change, unless its nonce is used on the main chain
        (it can never confirm); report each in ``dropped`` or ``forgotten``."""
        for tx, _ in dropped:
            if tx.nonce < self.ledger.nonce(tx.sender_address):
                self.held.discard(tx.txid)
                result.forgotten.append((tx, "nonce_used"))
                continue
            result.forgotten += [(gone, FULL) for gone in self.held.hold(tx, kept=True)]
        result.dropped += [(tx, reason) for tx, reason in dropped if tx.txid in self.held]

    # ----------------------------------------------------------------- blocks

    def add_block(self, block: Block, now_ms: int, signatures_checked: bool = False) -> BlockResult:
        """Validate and store a block, reorganizing if it makes a branch with more work.

        Never raises for bad data: an invalid block gives status "invalid" and ``error``.
        Orphans it unlocks are added too; their failures are listed in ``rejected``.
        """
        result = BlockResult("side")
        block_hash = block.block_hash
        if block_hash in self.index:
            if self.index[block_hash].status == STATUS_INVALID:
                return self._invalid_result(result, ValidationError("known_invalid", "found invalid before"))
            result.status = "duplicate"
            return result
        if block_hash in self._invalid:
            return self._invalid_result(result, ValidationError("known_invalid", self._invalid[block_hash]))
        if block_hash in self.orphans:
            result.status = "orphan"
            result.missing = self.orphans.root_of(block_hash)
            return result
        try:
            check_block_body(block, self.params)
            parent = self.index.get(block.prev_hash)
            if parent is None:
                if block.prev_hash in self._invalid:
                    self._remember_invalid(block_hash, "invalid_parent")
                    raise ValidationError("invalid_parent", "descends from an invalid block")
                self._check_orphan_target(block.header)
                self.orphans.add(block)
                result.status = "orphan"
                result.missing = self.orphans.root_of(block_hash)
                return result
            self._add_connectable(block, parent, now_ms, signatures_checked, result)
        except ValidationError as exc:
            return self._invalid_result(result, exc)
        # Orphans waiting for this block (and their descendants) can join now.
        pending = [block_hash]
        while pending:
            for child in self.orphans.pop_children(pending.pop()):
                child_parent = self.index.get(child.prev_hash)
                if child_parent is None:
                    continue
                try:
                    check_block_body(child, self.params)
                    self._add_connectable(child, child_parent, now_ms, False, result)
                except ValidationError as exc:
                    result.rejected.append((child.block_hash, exc))
                    continue
                if self.index[child.block_hash].status != STATUS_INVALID:
                    pending.append(child.block_hash)
        # The block's own verdict comes last: an orphan it unlocked can bring the work that makes
        # the chain try this branch, and find this very block invalid.
        if self.index[block_hash].status == STATUS_INVALID:
            err = next((e for h, e in result.rejected if h == block_hash), None)
            result.rejected = [(h, e) for h, e in result.rejected if h != block_hash]
            self._invalid_result(result, err or ValidationError("invalid_parent", "branch invalid"))
        elif self.on_main(block_hash):
            result.status = "connected"
        # Last, so nothing above meets a block it forgot (this one may be among them: a side
        # block with the least work of its own is forgotten as soon as it is stored).
        self._trim_side()
        return result

    def _check_orphan_target(self, header: BlockHeader) -> None:
        """An orphan's proof of work can only be checked against its own target: bound that
        target, or anyone could fill the orphan pool with blocks of no work at all. With a
        fixed difficulty it must be the network's; with retargeting, within one retarget
        step of our tip's."""
        if self.params.retarget_interval == 0:
            limit = self.params.initial_target
        else:
            limit = self.tip.header.target * RETARGET_CLAMP
        if header.target > limit:
            raise ValidationError("bad_target", "orphan's target is easier than the network allows")

    @staticmethod
    def _invalid_result(result: BlockResult, error: ValidationError) -> BlockResult:
        result.status = "invalid"
        result.error = error
        return result

    def _add_connectable(
        self,
        block: Block,
        parent: Entry,
        now_ms: int,
        signatures_checked: bool,
        result: BlockResult,
    ) -> None:
        """Store a block whose parent we have; activate it if it brings the most work."""
        block_hash = block.block_hash
        if parent.status == STATUS_INVALID:
            self._remember_invalid(block_hash, "invalid_parent")
            raise ValidationError("invalid_parent", "descends from an invalid block")
        try:
            check_header_context(
                block.header,
                parent.header,
                self._ancestor_times(parent),
                self._expected_target(parent),
                now_ms,
                retarget_interval=self.params.retarget_interval,
            )
        except ValidationError as exc:
            if exc.reason != "time_too_new":  # a future block may become valid later
                self._remember_invalid(block_hash, exc.reason)
            raise
        if not signatures_checked:
            check_signatures(block.txs[1:], self.network)
        work = parent.work + work_for_target(block.header.target)
        entry = Entry(block_hash, block.header, work, STATUS_STORED, self._seq)
        self._seq += 1
        self.index[block_hash] = entry
        self.children.setdefault(parent.block_hash, []).append(block_hash)
        # In memory until its branch is tried (``_switch_to`` stores it then).
        self._side[block_hash] = block
        self._side_bytes += block.size()
        if entry.work > self.tip.work:
            self._activate(entry, now_ms, result)

    def _ancestor_times(self, parent: Entry) -> list[int]:
        times: list[int] = []
        entry: Entry | None = parent
        while entry is not None and len(times) < MEDIAN_TIME_SPAN:
            times.append(entry.header.timestamp)
            entry = self.index.get(entry.prev) if entry.height > 0 else None
        times.reverse()
        return times

    def _expected_target(self, parent: Entry) -> int:
        n = self.params.retarget_interval
        height = parent.height + 1
        if n == 0 or height % n != 0:
            return parent.header.target
        entry = parent
        for _ in range(n - 1):
            entry = self.index[entry.prev]
        return next_target(self.params, parent.header, entry.header.timestamp)

    def _remember_invalid(self, block_hash: bytes, reason: str) -> None:
        self._invalid[block_hash] = reason
        if len(self._invalid) > MAX_INVALID_REMEMBERED:
            self._invalid.popitem(last=False)

    def _activate(self, candidate: Entry, now_ms: int, result: BlockResult) -> None:
        """Make ``candidate`` the tip; on a state failure fall back to the best valid chain."""
        while candidate.work > self.tip.work:
            failure = self._switch_to(candidate, now_ms, result)
            if failure is None:
                return
            bad_hash, err = failure
            result.rejected.append((bad_hash, err))
            self._mark_invalid(bad_hash)
            best = self._best_entry()
            if best is None:
                return
            candidate = best

    def _best_entry(self) -> Entry | None:
        """The entry with the most work (first seen on ties) not known invalid. Rare path: O(n)."""
        best: Entry | None = None
        for entry in self.index.values():
            if entry.status == STATUS_INVALID or entry.work <= self.tip.work:
                continue
            if best is None or entry.work > best.work or (entry.work == best.work and entry.seq < best.seq):
                best = entry
        return best

    def _mark_invalid(self, block_hash: bytes) -> None:
        stack = [block_hash]
        while stack:
            h = stack.pop()
            entry = self.index.get(h)
            if entry is None or entry.status == STATUS_INVALID:
                continue
            entry.status = STATUS_INVALID
            if h not in self._side:
                self.store.set_status(h, STATUS_INVALID)
            stack.extend(self.children.get(h, ()))

    def _store_side(self, entry: Entry) -> None:
        """Move a side block from memory to the store: its branch is being tried."""
        block = self._side.pop(entry.block_hash, None)
        if block is not None:
            self._side_bytes -= block.size()
            self.store.put_block(block, entry.work, entry.status, entry.seq)
            self._remember(block)

    def _trim_side(self) -> None:
        """Forget side blocks kept in memory until they fit the budget (module docstring).

        Each block is ranked by the most work of its own (above the main-chain block its
        branch forks from) of any branch through it; the lowest go first, and within one branch
        the highest block first, so what stays is always a tree hanging from stored blocks.
        Blocks found invalid go before all others and are remembered as invalid.
        """
        if len(self._side) <= self.max_side_blocks and self._side_bytes <= self.max_side_bytes:
            return
        keep_blocks = self.max_side_blocks - self.max_side_blocks // SIDE_TRIM_DIVISOR
        keep_bytes = self.max_side_bytes - self.max_side_bytes // SIDE_TRIM_DIVISOR
        fork_work: dict[bytes, int] = {}  # block -> cumulative work where its branch leaves main

        def base(entry: Entry) -> int:
            path: list[bytes] = []
            while entry.block_hash not in fork_work and not self.on_main(entry.block_hash):
                path.append(entry.block_hash)
                entry = self.index[entry.prev]
            work = fork_work.get(entry.block_hash, entry.work)
            for h in path:
                fork_work[h] = work
            return work

        rank: dict[bytes, int] = {}
        side = sorted((self.index[h] for h in self._side), key=lambda e: e.height, reverse=True)
        for entry in side:  # children before parents: a parent's rank is its best branch's
            best = max(entry.work - base(entry), rank.get(entry.block_hash, 0))
            rank[entry.block_hash] = best
            if entry.prev in self._side:
                rank[entry.prev] = max(rank.get(entry.prev, 0), best)
        side.sort(key=lambda e: (e.status != STATUS_INVALID, rank[e.block_hash], -e.height, -e.seq))
        forgotten: set[bytes] = set()
        for entry in side:
            if len(self._side) <= keep_blocks and self._side_bytes <= keep_bytes:
                break
            h = entry.block_hash
            self._side_bytes -= self._side.pop(h).size()
            del self.index[h]
            self.children.pop(h, None)  # its children, if any, went before it
            self._cache.pop(h, None)
            forgotten.add(h)
            if entry.status == STATUS_INVALID:
                self._remember_invalid(h, "found invalid before")
        for parent in {e.prev for e in side if e.block_hash in forgotten}:
            kept = [c for c in self.children.get(parent, ()) if c not in forgotten]
            if kept:
                self.children[parent] = kept
            else:
                self.children.pop(parent, None)

    def _switch_to(
        self, target: Entry, now_ms: int, result: BlockResult
    ) -> tuple[bytes, ValidationError] | None:
        path: list[Entry] = []
        entry = target
        while not self.on_main(entry.block_hash):
            path.append(entry)
            entry = self.index[entry.prev]
        fork_height = entry.height
        old_tip = self.main[-1]
        for step in path:  # stored with the tip that needs them, in one commit
            self._store_side(step)
        disconnected: list[Block] = []
        for height in range(self.height, fork_height, -1):
            block = self._body(self.main[height])
            self.ledger.undo_block(block)
            disconnected.append(block)
        del self.main[fork_height + 1 :]
        connected: list[Block] = []
        for entry in reversed(path):
            block = self._body(entry.block_hash)
            try:
                self.ledger.apply_block(block)
            except ValidationError as err:
                for undo in reversed(connected):
                    self.ledger.undo_block(undo)
                    self.main.pop()
                for redo in reversed(disconnected):
                    self.ledger.apply_block(redo)
                    self.main.append(redo.block_hash)
                return entry.block_hash, err
            self.main.append(entry.block_hash)
            connected.append(block)
            if entry.status != STATUS_VALID:
                entry.status = STATUS_VALID
                self.store.set_status(entry.block_hash, STATUS_VALID)
        self.store.set_meta("tip", self.main[-1])
        if disconnected:
            result.reorgs.append(Reorg(old_tip, self.main[-1], len(disconnected)))
            gone = {b.block_hash for b in disconnected}
            result.connected = [b for b in result.connected if b.block_hash not in gone]
        result.connected.extend(connected)
        confirmed = {tx.txid for block in connected for tx in block.txs}
        deferred = self.mempool.beyond_cap()  # before ``remove``: it leaves the indexes stale
        self.mempool.remove(confirmed)
        # A returned transaction the new branch confirms again is neither pending nor "dropped".
        returned = [
            tx for block in reversed(disconnected) for tx in block.txs[1:] if tx.txid not in confirmed
        ]
        dropped = self.mempool.rebuild(self.ledger, returned, now_ms)
        readmitted = self._retry_held(confirmed, now_ms, result)
        self._set_aside(dropped, result)
        pool = self.mempool.txs
        for tx in [*readmitted, *(pool[txid] for txid in deferred if txid in pool)]:
            if tx.txid in pool and self.mempool.within_cap(tx):
                result.relay.append(tx)
        return None

    def _retry_held(self, confirmed: set[bytes], now_ms: int, result: BlockResult) -> list[Transaction]:
        """Put back in the pool what was held and this tip accepts again; returns those.

        Held ones that were accepted once come back whatever the per-sender cap, like the
        transactions of disconnected blocks; refused ones obey it, like any new transaction.
        """
        waiting: list[tuple[bytes, Transaction, bool]] = []
        for sender, tx, kept in self.held.entries():
            if tx.txid in confirmed:
                self.held.discard(tx.txid)
            elif tx.nonce < self.ledger.nonce(sender):  # its nonce went to another transaction
                self.held.discard(tx.txid)
                if kept:
                    result.forgotten.append((tx, "nonce_used"))
            else:
                waiting.append((sender, tx, kept))
        waiting.sort(key=lambda held: held[1].nonce)  # a sender's held ones, in order
        evicted: list[Transaction] = []
        readmitted: list[Transaction] = []
        for sender, tx, kept in waiting:
            if tx.nonce != self.mempool.next_nonce(sender, self.ledger):
                continue  # cheap: most held transactions wait for an earlier nonce
            try:
                evicted += self.mempool.add(tx, self.ledger, now_ms, cap=not kept)
            except ValidationError:
                continue
            self.held.discard(tx.txid)
            readmitted.append(tx)
        result.readmitted += readmitted
        self._set_aside([(tx, FULL) for tx in evicted], result)
        return readmitted

    def _body(self, block_hash: bytes) -> Block:
        block = self.block(block_hash)
        if block is None:
            raise StoreError(f"block {block_hash.hex()} is indexed but its body is missing")
        return block

    # ----------------------------------------------------------------- mining

    def template(self, reward_address: bytes, now_ms: int) -> Block:
        """A block to mine on the tip: coinbase + pending transactions, nonce 0."""
        parent = self.tip
        times = self._ancestor_times(parent)
        timestamp = max(now_ms, median_time_past(times) + 1)
        height = parent.height + 1
        n = self.params.retarget_interval
        if n and height % n == 0:
            timestamp = max(timestamp, parent.header.timestamp)  # the time-warp rule
        cb = coinbase(reward_address, self.params.mining_reward, height, timestamp)
        room = MAX_BLOCK_TX_BYTES - HEADER_BYTES - len(cb.encoded)  # Block.size() counts the header
        txs = [cb, *self.mempool.select(room, TEMPLATE_MAX_TXS)]
        header = BlockHeader(
            HEADER_VERSION,
            height,
            parent.block_hash,
            timestamp,
            merkle_root([tx.txid for tx in txs]),
            self._expected_target(parent),
            0,
        )
        return Block(header, txs)

    # ----------------------------------------------------------------- persistence

    def commit(self) -> None:
        """Make everything since the last commit durable in one SQLite transaction."""
        self._sync_mempool_store()
        self.store.commit()

    def _sync_mempool_store(self) -> None:
        """Store the pool and the held transactions that were accepted once (their txids listed
        in ``HELD_META``), in the commit that made them so: a crash right after a
        reorganisation finds every transaction it returned. Nothing to do, and nothing
        scanned, when neither changed since the last sync (most commits)."""
        state = (self.mempool.changes, self.held.kept_changes)
        if state == self._synced:
            return
        self._synced = state
        current = {txid: tx for txid, (_, tx) in self.held.kept.items()}
        current.update(self.mempool.txs)
        for txid in self._persisted_mempool - current.keys():
            self.store.mempool_delete(txid)
        for txid, tx in current.items():
            if txid not in self._persisted_mempool:
                self.store.mempool_put(tx, self._mempool_seq)
                self._mempool_seq += 1
        self._persisted_mempool = set(current)
        if self._persisted_held != self.held.kept_changes:
            self.store.set_meta(HELD_META, b"".join(self.held.kept))
            self._persisted_held = self.held.kept_changes

    # ----------------------------------------------------------------- full check

    def validate_all(self, now_ms: int, progress: Callable[[int], None] | None = None) -> list[str]:
        """Re-check the stored main chain from genesis with every rule; errors, empty if valid."""
        errors, ledger = replay(self.params, self.block, self.main, now_ms, progress)
        if not errors and ledger.balances != self.ledger.balances:
            errors.append("ledger differs from a replay of the chain")
        return errors
