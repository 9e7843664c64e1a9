"""Faults injected into the node's code to show that an invariant check catches them."""

import pytest

from trionode.chain.block import Block
from trionode.chain.ledger import Ledger


def mint_on_undo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undoing a block leaves its reward in the ledger: every reorganisation mints coins."""
    original = Ledger.undo_block

    def keep_the_coinbase(self: Ledger, block: Block) -> None:
        original(self, block)
        reward = block.txs[0]
        self.balances[reward.recipient] = self.balances.get(reward.recipient, 0) + reward.amount

    monkeypatch.setattr(Ledger, "undo_block", keep_the_coinbase)
