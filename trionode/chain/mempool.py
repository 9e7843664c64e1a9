"""Pending transactions, valid against the tip's ledger plus the pending ones before them.

Policy (protocol.md, "Mempool"): a sender's pending transactions carry consecutive nonces
starting at its ledger nonce (the pool refuses a gap; ``Chain`` holds such a transaction aside
and offers it again when the gap closes), and their total never exceeds the
sender's confirmed balance. When the pool is full new transactions are rejected
(``mempool_full``): the oldest ones are the ones most likely already relayed everywhere, so
keeping them is what keeps the network's pools alike.
"""

from collections.abc import Iterable
from typing import Final

from trionode.chain.errors import ValidationError
from trionode.chain.ledger import Ledger
from trionode.chain.params import MAX_FUTURE_MS
from trionode.chain.transaction import Transaction
from trionode.chain.validation import check_transaction

# 5,000 transactions of ~170 bytes: under 1 MB, about one full block.
MAX_MEMPOOL_TXS: Final = 5_000


class Mempool:
    def __init__(self, max_txs: int = MAX_MEMPOOL_TXS) -> None:
        self.max_txs = max_txs
        self.txs: dict[bytes, Transaction] = {}
        self._next_nonce: dict[bytes, int] = {}
        self._spending: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self.txs)

    def __contains__(self, txid: object) -> bool:
        return txid in self.txs

    def next_nonce(self, address: bytes, ledger: Ledger) -> int:
        return self._next_nonce.get(address, ledger.nonce(address))

    def spendable(self, address: bytes, ledger: Ledger) -> int:
        return ledger.balance(address) - self._spending.get(address, 0)

    def check(self, tx: Transaction, ledger: Ledger, now_ms: int) -> None:
        """Raise ``ValidationError`` unless ``tx`` can join the pool (signature checked elsewhere)."""
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
        if len(self.txs) >= self.max_txs:
            raise ValidationError("mempool_full", f"{self.max_txs} transactions pending")

    def add(self, tx: Transaction, ledger: Ledger, now_ms: int) -> None:
        self.check(tx, ledger, now_ms)
        self._insert(tx)

    def _insert(self, tx: Transaction) -> None:
        sender = tx.sender_address
        self.txs[tx.txid] = tx
        self._next_nonce[sender] = tx.nonce + 1
        self._spending[sender] = self._spending.get(sender, 0) + tx.amount

    def rebuild(self, ledger: Ledger, returned: Iterable[Transaction], now_ms: int) -> list[Transaction]:
        """Revalidate after a tip change; ``returned`` are transactions of disconnected blocks.

        Returned transactions come first (they are older), then the current pool in arrival
        order; within the candidates each sender's transactions are tried in nonce order.
        Returns the transactions that were dropped.
        """
        candidates: dict[bytes, Transaction] = {}
        for tx in returned:
            if not tx.is_coinbase:
                candidates.setdefault(tx.txid, tx)
        for txid, tx in self.txs.items():
            candidates.setdefault(txid, tx)
        self.txs = {}
        self._next_nonce = {}
        self._spending = {}
        order = {txid: i for i, txid in enumerate(candidates)}
        dropped: list[Transaction] = []
        for tx in sorted(candidates.values(), key=lambda t: (t.nonce, order[t.txid])):
            try:
                self.add(tx, ledger, now_ms)
            except ValidationError:
                dropped.append(tx)
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
