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

``rebuild`` (after a tip change) applies the same rule to what does not fit: transactions of
disconnected blocks come first in arrival order and have a sender's lowest nonces, so a
sender's newer pending transactions go before them.
"""

import heapq
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
# The reason a transaction leaves the pool (or is refused) for lack of room.
FULL: Final = "mempool_full"


class Mempool:
    def __init__(self, max_txs: int = MAX_MEMPOOL_TXS, max_per_sender: int = MAX_PENDING_PER_SENDER) -> None:
        self.max_txs = max_txs
        self.max_per_sender = max_per_sender
        self.txs: dict[bytes, Transaction] = {}  # in arrival order
        self._by_sender: dict[bytes, list[Transaction]] = {}  # in nonce order
        self._spending: dict[bytes, int] = {}
        self._arrival: dict[bytes, int] = {}  # txid -> arrival number, the eviction tie-break
        self._arrivals = 0

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

    def check(self, tx: Transaction, ledger: Ledger, now_ms: int, *, room: bool = True) -> None:
        """Raise ``ValidationError`` unless ``tx`` can join the pool (signature checked elsewhere).

        ``room=False`` skips the full-pool rule (``rebuild`` trims afterwards instead).
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
        if count >= self.max_per_sender:
            raise ValidationError("too_many_pending", f"{count} pending from this sender")
        if room and len(self.txs) >= self.max_txs:
            victim = self._heaviest(exclude=sender)
            if victim is None or self.pending_count(victim) <= count + 1:
                raise ValidationError(FULL, f"{self.max_txs} transactions pending")

    def add(self, tx: Transaction, ledger: Ledger, now_ms: int) -> list[Transaction]:
        """Add ``tx`` or raise ``ValidationError``; returns what it evicted (empty unless full)."""
        self.check(tx, ledger, now_ms)
        self._insert(tx)
        evicted: list[Transaction] = []
        if len(self.txs) > self.max_txs:
            victim = self._heaviest(exclude=tx.sender_address)
            assert victim is not None  # check() made sure of it
            evicted.append(self._pop_last(victim))
        return evicted

    def _insert(self, tx: Transaction) -> None:
        sender = tx.sender_address
        self.txs[tx.txid] = tx
        self._by_sender.setdefault(sender, []).append(tx)
        self._spending[sender] = self._spending.get(sender, 0) + tx.amount
        self._arrival[tx.txid] = self._arrivals
        self._arrivals += 1

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
        return tx

    def _rank(self, sender: bytes) -> tuple[int, int]:
        """Eviction order: most pending first, then the latest last arrival."""
        pending = self._by_sender[sender]
        return len(pending), self._arrival[pending[-1].txid]

    def _heaviest(self, exclude: bytes) -> bytes | None:
        """The sender to evict from (never ``exclude``); O(senders), only when the pool is full."""
        others = (s for s in self._by_sender if s != exclude)
        return max(others, key=self._rank, default=None)

    def _trim(self) -> list[Transaction]:
        """Evict by the rule above until the pool fits; the evicted, in eviction order."""
        heap = [(-n, -last, s) for s in self._by_sender for n, last in [self._rank(s)]]
        heapq.heapify(heap)
        evicted: list[Transaction] = []
        while len(self.txs) > self.max_txs:
            _, _, sender = heapq.heappop(heap)
            evicted.append(self._pop_last(sender))
            if sender in self._by_sender:
                n, last = self._rank(sender)
                heapq.heappush(heap, (-n, -last, sender))
        return evicted

    def rebuild(
        self, ledger: Ledger, returned: Iterable[Transaction], now_ms: int
    ) -> list[tuple[Transaction, str]]:
        """Revalidate after a tip change; ``returned`` are transactions of disconnected blocks.

        Returned transactions come first (they are older), then the current pool in arrival
        order; within the candidates each sender's transactions are tried in nonce order. What
        does not fit is evicted by the pool's rule (reason ``mempool_full``). Returns every
        transaction that did not stay, with the reason code.
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
        # Arrival numbers keep rising across rebuilds: newer arrivals always rank later.
        base = self._arrivals
        self._arrivals += len(candidates)
        order = {txid: base + i for i, txid in enumerate(candidates)}
        dropped: list[tuple[Transaction, str]] = []
        for tx in sorted(candidates.values(), key=lambda t: (t.nonce, order[t.txid])):
            try:
                self.check(tx, ledger, now_ms, room=False)
            except ValidationError as exc:
                dropped.append((tx, exc.reason))
                continue
            self._insert(tx)
            self._arrival[tx.txid] = order[tx.txid]  # arrival order, not nonce order, ranks
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
