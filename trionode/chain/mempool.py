"""Pending transactions, valid against the tip's ledger plus the pending ones before them.

Policy (protocol.md 10, "The mempool"): a sender's pending transactions carry consecutive
nonces starting at its ledger nonce (the pool refuses a gap; ``Chain`` holds such a transaction
aside and offers it again when the gap closes), and their total never exceeds the sender's
confirmed balance. There are no fees to rank by, so room is shared by sender:

- one sender has at most ``MAX_PENDING_PER_SENDER`` pending (``too_many_pending`` beyond);
- when the pool is full, a transaction of sender A evicts the last (highest-nonce) pending
  transaction of the sender with the most pending (on a tie, the one whose last transaction
  arrived last), if that sender has at least two more pending than A, so that it still has at
  least as many as A after the swap; otherwise A gets ``mempool_full``. Evicting a
  sender's last transaction never breaks anyone's chain of nonces, and the counts can only
  even out, so one funded account cannot lock the others out: filling the pool takes
  ``MAX_MEMPOOL_TXS / MAX_PENDING_PER_SENDER`` funded senders, and even then every sender
  with fewer pending gets in.

The cap is an admission rule for new transactions. ``rebuild`` (after a tip change) does not
apply it: transactions of disconnected blocks were confirmed once and are older than anything
pending, so they all come back, with the sender's lowest nonces, ahead of its newer pending
ones. Only the total bound applies, by the same eviction rule (the heaviest sender's newest
go first). A sender left over the cap this way gets ``too_many_pending`` for new transactions
until blocks bring it back under, and only its first ``MAX_PENDING_PER_SENDER`` pending are
relayed (``relayable``): peers apply the cap too; the others follow as blocks confirm those.

``Held`` keeps what left the pool, or was refused for a reason that may not last, to be
offered to it again (``tree.Chain`` decides when).
"""

import heapq
from collections import OrderedDict
from collections.abc import Iterable
from typing import Final

from trionode.chain.errors import ValidationError
from trionode.chain.ledger import Ledger
from trionode.chain.params import MAX_FUTURE_MS
from trionode.chain.transaction import Transaction
from trionode.chain.validation import check_transaction

# 5,000 transactions of ~170 bytes: under 1 MB, about one full block.
MAX_MEMPOOL_TXS: Final = 5_000
# A wallet rarely has more than a few payments waiting; 100 (2 % of the pool) leaves room for a
# burst, and it takes 50 funded senders to fill the pool.
MAX_PENDING_PER_SENDER: Final = 100
# The rank heap may hold this many entries per sender (plus a few) before its stale entries
# are dropped in one pass: amortised O(1) per change, bounded memory.
RANKS_SLACK: Final = 4
RANKS_MIN: Final = 64
# The reason a transaction leaves the pool (or is refused) for lack of room.
FULL: Final = "mempool_full"
# Held aside (``Held``), of each kind: a full pool's worth. Those that were pending or confirmed
# once are persisted with the pool, so a reorganisation that returns up to two pools' worth
# loses nothing, crash or not; what a bigger one brings back beyond that is forgotten (and
# logged). Those refused on arrival were never accepted and live in memory only.
MAX_HELD: Final = MAX_MEMPOOL_TXS


class Mempool:
    def __init__(self, max_txs: int = MAX_MEMPOOL_TXS, max_per_sender: int = MAX_PENDING_PER_SENDER) -> None:
        self.max_txs = max_txs
        self.max_per_sender = max_per_sender
        self.txs: dict[bytes, Transaction] = {}  # in arrival order
        self._by_sender: dict[bytes, list[Transaction]] = {}  # in nonce order
        self._spending: dict[bytes, int] = {}
        self._arrival: dict[bytes, int] = {}  # txid -> arrival number, the eviction tie-break
        self._arrivals = 0
        # Senders by eviction rank, (-pending, -last arrival, sender), lazily: an entry is
        # current when it matches the sender's rank now, and stale ones are skipped. A full
        # pool consults it for every newcomer, so finding the heaviest sender must not cost a
        # scan of every sender (5,000 of them took ~2 ms per transaction).
        self._ranks: list[tuple[int, int, bytes]] = []
        self.changes = 0  # bumped whenever ``txs`` changes: when the store needs syncing

    def __len__(self) -> int:
        return len(self.txs)

    def __contains__(self, txid: object) -> bool:
        return txid in self.txs

    def next_nonce(self, address: bytes, ledger: Ledger) -> int:
        pending = self._by_sender.get(address)
        return pending[-1].nonce + 1 if pending else ledger.nonce(address)

    def spendable(self, address: bytes, ledger: Ledger) -> int:
        return ledger.balance(address) - self._spending.get(address, 0)

    def pending_count(self, address: bytes) -> int:
        return len(self._by_sender.get(address, ()))

    def within_cap(self, tx: Transaction) -> bool:
        """Whether pending ``tx`` is among its sender's first ``max_per_sender`` (by nonce)."""
        pending = self._by_sender[tx.sender_address]
        return tx.nonce - pending[0].nonce < self.max_per_sender

    def beyond_cap(self) -> list[bytes]:
        """Pending transactions past their sender's first ``max_per_sender``: not relayed yet.

        A list, by sender and nonce: whoever relays them later does so in an order that does
        not depend on the process's hash seed (the simulator replays runs from a seed)."""
        return [
            tx.txid
            for pending in self._by_sender.values()
            if len(pending) > self.max_per_sender
            for tx in pending[self.max_per_sender :]
        ]

    def relayable(self) -> list[Transaction]:
        """The pending transactions a peer applying the same cap can take, in arrival order."""
        beyond = set(self.beyond_cap())  # (a sender's pending nonces are consecutive)
        return [tx for tx in self.txs.values() if tx.txid not in beyond]

    def check(
        self, tx: Transaction, ledger: Ledger, now_ms: int, *, room: bool = True, cap: bool = True
    ) -> None:
        """Raise ``ValidationError`` unless ``tx`` can join the pool (signature checked elsewhere).

        ``room=False`` skips the full-pool rule (``rebuild`` trims afterwards instead);
        ``cap=False`` the per-sender cap (for transactions that were confirmed once).
        """
        if tx.txid in self.txs:
            raise ValidationError("duplicate", "already pending")
        check_transaction(tx)
        if tx.timestamp > now_ms + MAX_FUTURE_MS:
            raise ValidationError("time_too_new", "timestamp more than 2 h ahead")
        sender = tx.sender_address
        expected = self.next_nonce(sender, ledger)
        if tx.nonce < expected:
            raise ValidationError("nonce_used", f"nonce {tx.nonce}, next is {expected}")
        if tx.nonce > expected:
            raise ValidationError("nonce_gap", f"nonce {tx.nonce}, next is {expected}")
        if tx.amount > self.spendable(sender, ledger):
            raise ValidationError(
                "insufficient_balance", "amount exceeds confirmed balance less pending spends"
            )
        count = self.pending_count(sender)
        if cap and count >= self.max_per_sender:
            raise ValidationError("too_many_pending", f"{count} pending from this sender")
        if room and len(self.txs) >= self.max_txs:
            victim = self._heaviest(exclude=sender)
            if victim is None or self.pending_count(victim) <= count + 1:
                raise ValidationError(FULL, f"{self.max_txs} transactions pending")

    def add(self, tx: Transaction, ledger: Ledger, now_ms: int, *, cap: bool = True) -> list[Transaction]:
        """Add ``tx`` or raise ``ValidationError``; returns what it evicted (empty unless full)."""
        self.check(tx, ledger, now_ms, cap=cap)
        self._insert(tx)
        evicted: list[Transaction] = []
        if len(self.txs) > self.max_txs:
            victim = self._heaviest(exclude=tx.sender_address)
            assert victim is not None  # check() made sure of it
            evicted.append(self._pop_last(victim))
        return evicted

    def _insert(self, tx: Transaction) -> None:
        sender = tx.sender_address
        self._index(tx, sender, self._arrivals)
        self._arrivals += 1
        self._push_rank(sender)

    def _index(self, tx: Transaction, sender: bytes, arrival: int) -> None:
        """Everything ``_insert`` records but the eviction rank."""
        self.txs[tx.txid] = tx
        self._by_sender.setdefault(sender, []).append(tx)
        self._spending[sender] = self._spending.get(sender, 0) + tx.amount
        self._arrival[tx.txid] = arrival
        self.changes += 1

    def _pop_last(self, sender: bytes) -> Transaction:
        """Remove ``sender``'s highest-nonce transaction: its other ones stay consecutive."""
        pending = self._by_sender[sender]
        tx = pending.pop()
        if not pending:
            del self._by_sender[sender]
            del self._spending[sender]
        else:
            self._spending[sender] -= tx.amount
        del self.txs[tx.txid]
        del self._arrival[tx.txid]
        self.changes += 1
        self._push_rank(sender)
        return tx

    def _rank(self, sender: bytes) -> tuple[int, int]:
        """Eviction order: most pending first, then the latest last arrival."""
        pending = self._by_sender[sender]
        return len(pending), self._arrival[pending[-1].txid]

    def _push_rank(self, sender: bytes) -> None:
        """Record ``sender``'s rank now (earlier entries of it go stale)."""
        if sender in self._by_sender:
            n, last = self._rank(sender)
            heapq.heappush(self._ranks, (-n, -last, sender))
        if len(self._ranks) > RANKS_SLACK * len(self._by_sender) + RANKS_MIN:
            self._rerank()

    def _rerank(self) -> None:
        """One current entry per sender: drops the stale ones."""
        self._ranks = [(-n, -last, s) for s in self._by_sender for n, last in [self._rank(s)]]
        heapq.heapify(self._ranks)

    def _current(self, entry: tuple[int, int, bytes]) -> bool:
        sender = entry[2]
        return sender in self._by_sender and (-entry[0], -entry[1]) == self._rank(sender)

    def _heaviest(self, exclude: bytes | None) -> bytes | None:
        """The sender to evict from (never ``exclude``): O(log senders), amortised."""
        ranks = self._ranks
        passed: list[tuple[int, int, bytes]] = []
        found = None
        while ranks:
            entry = ranks[0]
            if not self._current(entry):
                heapq.heappop(ranks)
            elif entry[2] == exclude:
                passed.append(heapq.heappop(ranks))
            else:
                found = entry[2]
                break
        for entry in passed:
            heapq.heappush(ranks, entry)
        return found

    def _trim(self) -> list[Transaction]:
        """Evict by the rule above until the pool fits; the evicted, in eviction order."""
        evicted: list[Transaction] = []
        while len(self.txs) > self.max_txs:
            sender = self._heaviest(exclude=None)
            assert sender is not None  # a pool over its bound holds someone's transactions
            evicted.append(self._pop_last(sender))
        return evicted

    def rebuild(
        self, ledger: Ledger, returned: Iterable[Transaction], now_ms: int
    ) -> list[tuple[Transaction, str]]:
        """Revalidate after a tip change; ``returned`` are transactions of disconnected blocks.

        Returned transactions come first (they are older), then the current pool in arrival
        order; within the candidates each sender's transactions are tried in nonce order. All
        were accepted once, so the per-sender cap does not apply; what does not fit is evicted
        by the pool's rule (reason ``mempool_full``). Returns every transaction that did not
        stay, with the reason code.
        """
        candidates: dict[bytes, Transaction] = {}
        for tx in returned:
            if not tx.is_coinbase:
                candidates.setdefault(tx.txid, tx)
        for txid, tx in self.txs.items():
            candidates.setdefault(txid, tx)
        self.txs = {}
        self._by_sender = {}
        self._spending = {}
        self._arrival = {}
        self.changes += 1
        # Arrival numbers keep rising across rebuilds: newer arrivals always rank later.
        base = self._arrivals
        self._arrivals += len(candidates)
        order = {txid: base + i for i, txid in enumerate(candidates)}
        dropped: list[tuple[Transaction, str]] = []
        for tx in sorted(candidates.values(), key=lambda t: (t.nonce, order[t.txid])):
            try:
                self.check(tx, ledger, now_ms, room=False, cap=False)
            except ValidationError as exc:
                dropped.append((tx, exc.reason))
                continue
            self._index(tx, tx.sender_address, order[tx.txid])  # arrival order, not nonce order, ranks
        self._rerank()  # every sender's rank, once, from the arrival numbers just set
        dropped.extend((tx, FULL) for tx in self._trim())
        return dropped

    def select(self, max_bytes: int, max_txs: int) -> list[Transaction]:
        """Transactions for a block template, in an order that applies cleanly."""
        chosen: list[Transaction] = []
        size = 0
        for tx in sorted(self.txs.values(), key=lambda t: t.nonce):
            if len(chosen) >= max_txs or size + len(tx.encoded) > max_bytes:
                break
            chosen.append(tx)
            size += len(tx.encoded)
        return chosen

    def remove(self, txids: Iterable[bytes]) -> None:
        """Drop transactions (confirmed ones); call ``rebuild`` afterwards to fix the indexes."""
        for txid in txids:
            self.txs.pop(txid, None)
        self.changes += 1


class Held:
    """Transactions set aside to be offered to the pool again, oldest first, in two kinds.

    ``kept``: they were pending or confirmed once (evicted for room, returned by a
    reorganisation that did not fit, or made invalid by a tip change that a later one may
    undo); ``tree.Chain`` persists them with the pool. ``refused``: refused on arrival for a
    reason that may not last (a nonce gap, a balance too low); never accepted, memory only.
    Each kind is bounded; past its bound the oldest is forgotten.
    """

    def __init__(self, max_kept: int = MAX_HELD, max_refused: int = MAX_HELD) -> None:
        self.max_kept = max_kept
        self.max_refused = max_refused
        self.kept: OrderedDict[bytes, tuple[bytes, Transaction]] = OrderedDict()  # txid -> (sender, tx)
        self.refused: OrderedDict[bytes, tuple[bytes, Transaction]] = OrderedDict()
        self._slots: dict[tuple[bytes, int], dict[bytes, None]] = {}  # (sender, nonce) -> txids
        self.kept_changes = 0  # bumped whenever ``kept`` changes: when to persist it again

    def __contains__(self, txid: object) -> bool:
        return txid in self.kept or txid in self.refused

    def __len__(self) -> int:
        return len(self.kept) + len(self.refused)

    def hold(self, tx: Transaction, *, kept: bool) -> list[Transaction]:
        """Set ``tx`` aside (a kept one stays kept); returns the kept ones forgotten for room."""
        kept = kept or tx.txid in self.kept
        self.discard(tx.txid)
        sender = tx.sender_address
        table, limit = (self.kept, self.max_kept) if kept else (self.refused, self.max_refused)
        table[tx.txid] = (sender, tx)
        self._slots.setdefault((sender, tx.nonce), {})[tx.txid] = None
        if kept:
            self.kept_changes += 1
        forgotten: list[Transaction] = []
        while len(table) > limit:
            _, oldest = table.popitem(last=False)
            self._unslot(*oldest)
            if kept:
                forgotten.append(oldest[1])
        return forgotten

    def discard(self, txid: bytes) -> None:
        for table in (self.kept, self.refused):
            entry = table.pop(txid, None)
            if entry is not None:
                self._unslot(*entry)
                if table is self.kept:
                    self.kept_changes += 1

    def _unslot(self, sender: bytes, tx: Transaction) -> None:
        slot = self._slots[(sender, tx.nonce)]
        del slot[tx.txid]
        if not slot:
            del self._slots[(sender, tx.nonce)]

    def for_nonce(self, sender: bytes, nonce: int) -> Transaction | None:
        """A held transaction of ``sender`` with ``nonce`` (the first held)."""
        slot = self._slots.get((sender, nonce))
        if not slot:
            return None
        txid = next(iter(slot))
        return self.kept[txid][1] if txid in self.kept else self.refused[txid][1]

    def entries(self) -> list[tuple[bytes, Transaction, bool]]:
        """Every held transaction as (sender, tx, kept)."""
        return [(s, tx, True) for s, tx in self.kept.values()] + [
            (s, tx, False) for s, tx in self.refused.values()
        ]
