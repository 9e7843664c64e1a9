"""Account state: balances and next nonces by address, with exact undo for reorgs.

Applying a transaction moves ``amount`` from sender to recipient and bumps the sender's nonce;
every step is exactly reversible, so disconnecting a block needs no stored undo data.
"""

from collections.abc import Iterable

from trionode.chain.amounts import MAX_MONEY
from trionode.chain.block import Block
from trionode.chain.errors import ValidationError
from trionode.chain.transaction import Transaction


class Ledger:
    __slots__ = ("balances", "nonces")

    def __init__(self) -> None:
        self.balances: dict[bytes, int] = {}
        self.nonces: dict[bytes, int] = {}

    def balance(self, address: bytes) -> int:
        return self.balances.get(address, 0)

    def nonce(self, address: bytes) -> int:
        """The nonce the address's next transaction must carry."""
        return self.nonces.get(address, 0)

    def total(self) -> int:
        return sum(self.balances.values())

    def apply_block(self, block: Block) -> None:
        """Apply all transactions or none; raise ``ValidationError`` naming the broken rule."""
        balances: dict[bytes, int] = {}
        nonces: dict[bytes, int] = {}
        for i, tx in enumerate(block.txs):
            self._stage(tx, balances, nonces, i)
        self.balances.update(balances)
        self.nonces.update(nonces)
        self._prune(balances)

    def apply_transaction(self, tx: Transaction) -> None:
        balances: dict[bytes, int] = {}
        nonces: dict[bytes, int] = {}
        self._stage(tx, balances, nonces, 0)
        self.balances.update(balances)
        self.nonces.update(nonces)
        self._prune(balances)

    def _stage(
        self, tx: Transaction, balances: dict[bytes, int], nonces: dict[bytes, int], index: int
    ) -> None:
        if not tx.is_coinbase:
            sender = tx.sender_address
            expected = nonces.get(sender, self.nonces.get(sender, 0))
            if tx.nonce != expected:
                raise ValidationError("bad_nonce", f"tx {index}: nonce {tx.nonce}, expected {expected}")
            have = balances.get(sender, self.balances.get(sender, 0))
            if have < tx.amount:
                raise ValidationError("insufficient_balance", f"tx {index}: has {have}, sends {tx.amount}")
            balances[sender] = have - tx.amount
            nonces[sender] = expected + 1
        got = balances.get(tx.recipient, self.balances.get(tx.recipient, 0)) + tx.amount
        if got > MAX_MONEY:
            raise ValidationError("balance_overflow", f"tx {index}")
        balances[tx.recipient] = got

    def undo_block(self, block: Block) -> None:
        """Exactly reverse ``apply_block`` of the same block (which must be the last applied)."""
        touched: dict[bytes, int] = {}
        for tx in reversed(block.txs):
            self.balances[tx.recipient] = self.balances.get(tx.recipient, 0) - tx.amount
            touched[tx.recipient] = 0
            if not tx.is_coinbase:
                sender = tx.sender_address
                self.balances[sender] = self.balances.get(sender, 0) + tx.amount
                self.nonces[sender] = self.nonces.get(sender, 0) - 1
                if self.nonces[sender] == 0:
                    del self.nonces[sender]
        self._prune(touched)

    def _prune(self, addresses: Iterable[bytes]) -> None:
        for address in addresses:
            if self.balances.get(address) == 0:
                del self.balances[address]

    def copy(self) -> "Ledger":
        other = Ledger()
        other.balances = dict(self.balances)
        other.nonces = dict(self.nonces)
        return other
