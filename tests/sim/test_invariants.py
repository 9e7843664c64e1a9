"""The checks of ``trionode.sim.invariants`` called directly on real chains built with the chain
core, each fed the fault it exists to catch, and the same setup without the fault, which must
pass. A scenario seldom makes these faults on its own: a check no test makes fire could be dead
code (the scenario-level "is caught" tests are in test_scenario.py)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from tests.chain.helpers import EASY, NOW, add, address, branch, build_block, extend, new_chain, pay
from tests.sim.faults import mint_on_undo
from trionode.chain.block import Block
from trionode.chain.ledger import Ledger
from trionode.chain.store import Store
from trionode.chain.transaction import Transaction
from trionode.chain.tree import Chain
from trionode.node.app import Node
from trionode.sim import invariants
from trionode.sim.timeline import short

NAMES = {"a": "n01", "b": "n02"}


@dataclass
class Peer:
    """What ``check_chains`` and ``check_transactions`` read of a node: its id and its chain."""

    node_id: str
    chain: Any


def check_chains(*chains: Chain) -> list[str]:
    nodes = [cast(Node, Peer(node_id, chain)) for node_id, chain in zip("ab", chains, strict=False)]
    return invariants.check_chains(nodes, EASY, NOW / 1000, NAMES)


def forge(tx: Transaction) -> Transaction:
    """``tx`` with a signature that does not verify (the txid changes with it)."""
    return Transaction(tx.sender, tx.recipient, tx.amount, tx.nonce, tx.timestamp, bytes(len(tx.signature)))


def funded_chain(path: Path | str = ":memory:") -> Chain:
    chain = new_chain(path=path)
    extend(chain, 1, miner=address(0))
    return chain


def add_unverified(chain: Chain, tx: Transaction) -> Block:
    """A block of ``tx`` added as if its signatures had been checked already (the sync path)."""
    block = build_block(EASY, chain.tip.header, [tx], miner=address(0))
    assert chain.add_block(block, NOW, signatures_checked=True).status == "connected"
    return block


@pytest.mark.parametrize("fault", [False, True])
def test_agreeing_on_a_tip_while_a_node_knows_more_work_is_caught(
    monkeypatch: pytest.MonkeyPatch, fault: bool
) -> None:
    """Fork choice broken on n02 (it only ever extends its tip): it holds a branch with more
    work than the tip both nodes agree on."""
    a, b = new_chain(), new_chain()
    genesis = a.tip.header
    shorter, longer = branch(EASY, genesis, 2, address(1)), branch(EASY, genesis, 3, address(2))
    for block in shorter:
        add(a, block)
        add(b, block)
    if fault:
        original = Chain._activate

        def extend_only(self: Chain, candidate: Any, now_ms: int, result: Any) -> None:
            if candidate.prev == self.main[-1]:
                original(self, candidate, now_ms, result)

        monkeypatch.setattr(Chain, "_activate", extend_only)
    else:
        for block in longer:
            add(a, block)
    for block in longer:
        add(b, block)
    if not fault:
        assert check_chains(a, b) == []
        return
    assert a.main == b.main  # they agree, on the lesser branch
    best = b.index[longer[-1].block_hash].work
    assert check_chains(a, b) == [
        f"the agreed tip has work {a.work}, but n02 knows {short(longer[-1].block_hash)} with work {best}"
    ]


@pytest.mark.parametrize("fault", [False, True])
def test_an_agreed_chain_that_breaks_a_rule_is_caught(fault: bool) -> None:
    """Both nodes took a block whose transaction's signature does not verify (they trusted a
    check that never ran): ``Chain.validate_all`` finds it."""
    a, b = funded_chain(), funded_chain()
    tx = pay(0, 1, 1000, 0)
    for chain in (a, b):
        add_unverified(chain, forge(tx) if fault else tx)
    assert a.main == b.main
    found = check_chains(a, b)
    if not fault:
        assert found == []
        return
    assert len(found) == 1, found
    assert found[0].startswith("the agreed chain fails validation: height 2:"), found
    assert "bad_signature" in found[0], found


@pytest.mark.parametrize("fault", [False, True])
def test_balances_that_do_not_sum_to_the_rewards_are_caught(
    monkeypatch: pytest.MonkeyPatch, fault: bool
) -> None:
    """n02's ledger keeps the coinbase of a block a reorganisation disconnected: coins from
    nowhere. n01 reached the same tip without a reorganisation."""
    if fault:
        mint_on_undo(monkeypatch)
    a, b = new_chain(), new_chain()
    genesis = a.tip.header
    shorter, longer = branch(EASY, genesis, 2, address(1)), branch(EASY, genesis, 3, address(2))
    for block in shorter + longer:
        add(b, block)
    for block in longer:
        add(a, block)
    assert a.main == b.main
    found = check_chains(a, b)
    if not fault:
        assert found == []
        return
    issued = 3 * EASY.mining_reward
    assert found == [
        f"n02: balances sum to {issued + 2 * EASY.mining_reward}, rewards {issued}",
        "n02: ledger differs on the same chain",
    ]


@dataclass
class MainChain:
    """What ``check_transactions`` reads of a chain: its main chain by height, and its ledger.
    A real ``Chain`` refuses a transaction the second time (its nonce is used), so the fault
    is staged here: the same transaction in two blocks."""

    blocks: list[Block]
    ledger: Ledger

    @property
    def height(self) -> int:
        return len(self.blocks)

    def block_at(self, height: int) -> Block | None:
        return self.blocks[height - 1] if 1 <= height <= len(self.blocks) else None


@pytest.mark.parametrize("fault", [False, True])
def test_a_transaction_applied_twice_is_caught(fault: bool) -> None:
    chain = funded_chain()
    tx = pay(0, 1, 1000, 0)
    assert chain.add_transaction(tx, NOW).readmitted == []
    extend(chain, 1)
    blocks = [b for b in (chain.block_at(h) for h in range(1, chain.height + 1)) if b is not None]
    assert [t.txid for t in blocks[-1].txs[1:]] == [tx.txid]
    if fault:
        blocks.append(build_block(EASY, blocks[-1].header, [tx], miner=address(0)))
    node = cast(Node, Peer("a", MainChain(blocks, chain.ledger)))
    found = invariants.check_transactions(node, {tx.txid: tx}, {tx.txid: 1.0})
    assert found == ([f"tx {short(tx.txid)} confirmed 2 times"] if fault else [])


@pytest.mark.parametrize("fault", ["none", "lost commits", "forged block"])
def test_a_data_dir_that_does_not_reopen_at_the_agreed_tip_valid_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """The store after the node stopped: it must reopen at the tip the network agreed on
    (lost commits: it reopens at genesis) and pass every rule again (a block whose signature
    was never checked: loading does not check signatures, ``validate_store`` does)."""
    chain = funded_chain(tmp_path / "chain.db")
    tx = pay(0, 1, 1000, 0)
    add_unverified(chain, forge(tx) if fault == "forged block" else tx)
    tip = chain.main[-1]
    with monkeypatch.context() as patch:
        if fault == "lost commits":
            patch.setattr(Store, "commit", lambda self: None)
        chain.commit()
        chain.store.close()
    problem = invariants.check_data_dir(tmp_path, EASY, tip, NOW / 1000)
    if fault == "none":
        assert problem is None
    elif fault == "lost commits":
        assert problem == f"reopened at 0 {short(EASY.network)}, the network agreed on {short(tip)}"
    else:
        assert problem is not None and problem.startswith("height 2:") and "bad_signature" in problem, problem
