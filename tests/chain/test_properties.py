"""Properties checked on many generated cases.

1. Tamper evidence: any change to any field of a transaction or a block invalidates it.
2. Fork/reorg soundness: a random block tree (what several miners on the same parameters
   produce, sometimes with conflicting transactions: the same sender and nonce paying someone
   else on another branch), fed to one ``Chain`` in a random order with transactions submitted
   in between, always ends on the most-work valid block, never creates or destroys coins, and
   never double-applies a transaction or loses one, unless another with its sender and nonce
   is on the main chain or pending (only one of two conflicting transactions can be).
"""

import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from trionode.chain.amounts import MAX_MONEY
from trionode.chain.block import HEADER_VERSION, Block, BlockHeader
from trionode.chain.encoding import packb, unpackb
from trionode.chain.errors import ValidationError
from trionode.chain.merkle import merkle_root
from trionode.chain.params import ChainParams
from trionode.chain.pow import meets_target
from trionode.chain.store import STATUS_INVALID, Store
from trionode.chain.transaction import Transaction, coinbase
from trionode.chain.tree import Chain

from helpers import EASY, NOW, add, address, build_block, key, new_chain, pay, solve

# ============================================================================= tamper evidence

TX_FIELDS = ("sender", "recipient", "amount", "nonce", "timestamp", "signature")
FIELD_VALUES = {
    "sender": st.binary(min_size=32, max_size=32),
    "recipient": st.binary(min_size=20, max_size=20),
    "amount": st.integers(min_value=1, max_value=MAX_MONEY),
    "nonce": st.integers(min_value=0, max_value=2**64 - 1),
    "timestamp": st.integers(min_value=0, max_value=2**64 - 1),
    "signature": st.binary(min_size=64, max_size=64),
}


def replace(tx: Transaction, field: str, value: object) -> Transaction:
    values = {f: getattr(tx, f) for f in TX_FIELDS}
    values[field] = value
    return Transaction(**values)  # type: ignore[arg-type]


@st.composite
def tx_mutation(draw: st.DrawFn) -> tuple[str, object]:
    field = draw(st.sampled_from(TX_FIELDS))
    return field, draw(FIELD_VALUES[field])


@settings(max_examples=150, deadline=None)
@given(tx_mutation())
def test_any_change_to_a_transaction_breaks_it(mutation: tuple[str, object]) -> None:
    tx = pay(1, 2, 12_345, 7)
    field, value = mutation
    assume(getattr(tx, field) != value)
    changed = replace(tx, field, value)
    assert changed.txid != tx.txid
    assert not changed.signature_valid(EASY.network)
    assert Transaction.from_wire(unpackb(changed.encoded)).txid == changed.txid


# Difficulty 4 (1 in 65,536 hashes wins): a changed header practically never still meets it.
# Where one does, only a new nonce or time can make a genuinely valid different block; that
# case is discarded by ``assume`` below, so the test is exact rather than probabilistic.
HARD = ChainParams(difficulty=4)
HEADER_FIELDS = ("version", "height", "prev_hash", "timestamp", "merkle_root", "target", "nonce")


@cache
def hard_chain_blocks() -> tuple[Block, Block]:
    """Block 1 pays key 1; block 2 holds three of key 1's transfers. Mined once per session."""
    b1 = build_block(HARD, HARD.genesis.header, miner=address(1))
    txs = [pay(1, 2, 1000 + n, n, params=HARD) for n in range(3)]
    b2 = build_block(HARD, b1.header, txs, miner=address(3))
    return b1, b2


def hard_chain() -> Chain:
    chain = new_chain(HARD)
    b1, _ = hard_chain_blocks()
    assert add(chain, b1).status == "connected"
    return chain


def header_with(header: BlockHeader, field: str, value: object) -> BlockHeader:
    values = {f: getattr(header, f) for f in HEADER_FIELDS}
    values[field] = value
    return BlockHeader(**values)  # type: ignore[arg-type]


HEADER_VALUES = {
    "version": st.integers(min_value=0, max_value=2**32 - 1),
    "height": st.integers(min_value=0, max_value=2**64 - 1),
    "prev_hash": st.binary(min_size=32, max_size=32),
    "timestamp": st.integers(min_value=0, max_value=2**64 - 1),
    "merkle_root": st.binary(min_size=32, max_size=32),
    "target": st.integers(min_value=0, max_value=2**256 - 1),
    "nonce": st.integers(min_value=0, max_value=2**64 - 1),
}


@st.composite
def block_mutation(draw: st.DrawFn) -> tuple[str, int, str, object]:
    """(kind, tx index, field, value): a header field, a field of one transaction, or the list."""
    kind = draw(st.sampled_from(["header", "tx", "list"]))
    if kind == "header":
        field = draw(st.sampled_from(HEADER_FIELDS))
        return kind, -1, field, draw(HEADER_VALUES[field])
    if kind == "tx":
        field = draw(st.sampled_from(TX_FIELDS))
        index = draw(st.integers(min_value=0, max_value=3))
        return kind, index, field, draw(FIELD_VALUES[field])
    op = draw(st.sampled_from(["drop", "duplicate", "swap", "append", "reverse"]))
    return kind, draw(st.integers(min_value=0, max_value=3)), op, None


def mutate_block(block: Block, mutation: tuple[str, int, str, object]) -> Block | None:
    kind, index, field, value = mutation
    txs = list(block.txs)
    if kind == "header":
        if getattr(block.header, field) == value:
            return None
        return Block(header_with(block.header, field, value), txs)
    if kind == "tx":
        if getattr(txs[index], field) == value:
            return None
        txs[index] = replace(txs[index], field, value)
        return Block(block.header, txs)
    if field == "drop":
        del txs[index]
    elif field == "duplicate":
        txs.insert(index, txs[index])
    elif field == "swap":
        other = (index + 1) % len(txs)
        txs[index], txs[other] = txs[other], txs[index]
    elif field == "append":
        txs.append(pay(1, 4, 1, 3, params=HARD))
    else:
        txs.reverse()
    return Block(block.header, txs)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(block_mutation())
def test_any_change_to_a_block_gets_it_rejected(mutation: tuple[str, int, str, object]) -> None:
    _, b2 = hard_chain_blocks()
    changed = mutate_block(b2, mutation)
    assume(changed is not None)
    assert changed is not None
    kind, _, field, _ = mutation
    if kind == "header" and field in ("nonce", "timestamp"):
        # A fresh proof of work on a valid header is a different, valid block: not tampering.
        assume(not meets_target(changed.block_hash, changed.header.target))
    chain = hard_chain()
    tip = chain.tip.block_hash
    result = add(chain, changed)
    assert result.status in ("invalid", "orphan"), (result.status, mutation)
    if result.status == "orphan":  # only a changed parent link (with lucky work) waits...
        assert kind == "header" and field == "prev_hash"
    assert chain.tip.block_hash == tip and chain.height == 1
    # ...and the genuine block is still accepted: a bad body never poisons its header's hash.
    assert add(chain, b2).status == "connected"


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_corrupted_byte_of_an_encoded_block_is_caught(data: st.DataObject) -> None:
    _, b2 = hard_chain_blocks()
    raw = bytearray(packb(b2.to_wire()))
    pos = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(min_value=1, max_value=255))
    try:
        decoded = Block.from_wire(unpackb(bytes(raw)))
    except (ValidationError, ValueError, TypeError, msgpack.UnpackException):
        return  # refused at decoding
    same_txs = [t.txid for t in decoded.txs] == [t.txid for t in b2.txs]
    assume(not (same_txs and decoded.block_hash == b2.block_hash))
    # As above: a flipped nonce or time byte that still meets the target is a new valid block.
    fixed = ("version", "height", "prev_hash", "merkle_root", "target")
    assume(
        not (
            same_txs
            and all(getattr(decoded.header, f) == getattr(b2.header, f) for f in fixed)
            and meets_target(decoded.block_hash, decoded.header.target)
        )
    )
    chain = hard_chain()
    result = add(chain, decoded)
    assert result.status in ("invalid", "orphan"), result.status
    assert add(chain, b2).status == "connected"


def test_unchanged_block_is_accepted() -> None:
    # The control case of the two properties above.
    _, b2 = hard_chain_blocks()
    chain = hard_chain()
    assert add(chain, Block.from_wire(unpackb(packb(b2.to_wire())))).status == "connected"


# ============================================================================= fork/reorg soundness

MINERS = (1, 2, 3, 4)  # each mines one trunk block: 50 coins to spend on every branch
BROKE = 99  # never receives a coin: its transfers make a block invalid


@cache
def global_tx(sender: int, nonce: int, variant: int = 0) -> Transaction:
    """The transaction with this sender and nonce, whatever branch it lands on; variants 1 and
    2 conflict with it (same sender and nonce, another recipient and amount)."""
    return pay(sender, 10 + nonce % 3 + 3 * variant, 1_000 + nonce + 100 * variant, nonce)


@dataclass
class Node:
    block: Block
    nonces: dict[int, int]  # next nonce of each sender on this branch
    tainted: bool  # this block or an ancestor breaks a rule


def build_tree(data: st.DataObject) -> list[Node]:
    nodes: list[Node] = []
    parent = EASY.genesis.header
    for m in MINERS:
        block = build_block(EASY, parent, miner=address(m))
        nodes.append(Node(block, {}, False))
        parent = block.header
    for i in range(data.draw(st.integers(min_value=3, max_value=16), label="tree size")):
        base = nodes[data.draw(st.integers(min_value=len(MINERS) - 1, max_value=len(nodes) - 1))]
        nonces = dict(base.nonces)
        txs = []
        for sender in data.draw(st.lists(st.sampled_from(MINERS), max_size=3)):
            n = nonces.get(sender, 0)
            variant = data.draw(st.sampled_from((0, 0, 1, 2)), label="variant")
            txs.append(global_tx(sender, n, variant))
            nonces[sender] = n + 1
        bad = data.draw(st.integers(min_value=0, max_value=7)) == 0
        if bad:
            txs.insert(data.draw(st.integers(min_value=0, max_value=len(txs))), pay(BROKE, 98, 1, 0))
        block = build_block(
            EASY,
            base.block.header,
            txs,
            miner=address(data.draw(st.sampled_from(range(1, 7)))),
            timestamp=base.block.header.timestamp + 1000 + i,  # siblings never coincide
        )
        nodes.append(Node(block, nonces, base.tainted or bad))
    return nodes


def main_txs(chain: Chain) -> list[Transaction]:
    out: list[Transaction] = []
    for height in range(1, chain.height + 1):
        block = chain.block_at(height)
        assert block is not None
        out.extend(block.txs[1:])
    return out


def slots(chain: Chain) -> set[tuple[bytes, int]]:
    """(sender key, nonce) of every transaction on the main chain or pending."""
    return {(tx.sender, tx.nonce) for tx in [*main_txs(chain), *chain.mempool.txs.values()]}


def check_invariants(chain: Chain, accepted: dict[bytes, Transaction]) -> None:
    """``accepted``: every transaction ever on the main chain or pending, by txid."""
    assert chain.ledger.total() == EASY.mining_reward * chain.height
    live = [e.work for e in chain.index.values() if e.status != STATUS_INVALID]
    assert chain.tip.work == max(live)
    on_main = main_txs(chain)
    main_ids = {tx.txid for tx in on_main}
    assert len(on_main) == len(main_ids), "a transaction applied twice"
    pending = set(chain.mempool.txs)
    assert not pending & main_ids
    taken = slots(chain)
    assert len(taken) == len(on_main) + len(pending), "a nonce used twice"
    accepted.update((tx.txid, tx) for tx in on_main)
    accepted.update(chain.mempool.txs)
    for txid, tx in accepted.items():
        if txid not in main_ids and txid not in pending:
            assert (tx.sender, tx.nonce) in taken, "a transaction was lost"
    # The pool applies on top of the tip in the order a template would take it.
    ledger = chain.ledger.copy()
    for tx in chain.mempool.select(10**9, 10**9):
        ledger.apply_transaction(tx)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_forks_and_reorgs(data: st.DataObject) -> None:
    nodes = build_tree(data)
    by_hash = {n.block.block_hash: n for n in nodes}
    order = data.draw(st.permutations(range(len(nodes))), label="feed order")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chain.sqlite"
        chain = Chain(EASY, Store(path))
        accepted: dict[bytes, Transaction] = {}
        reorgs = orphans = dropped = 0
        for i in order:
            node = nodes[i]
            result = add(chain, node.block)
            reorgs += len(result.reorgs)
            orphans += result.status == "orphan"
            # Funded senders: a transaction only becomes invalid when a conflicting one (same
            # sender and nonce) is confirmed or pending instead.
            taken = slots(chain)
            for tx, reason in [*result.dropped, *result.forgotten]:
                assert reason == "nonce_used" and (tx.sender, tx.nonce) in taken, (tx, reason)
            dropped += len(result.dropped) + len(result.forgotten)
            if node.tainted:
                assert result.status != "connected"
                assert not chain.on_main(node.block.block_hash)
            else:
                assert result.status in ("connected", "side", "orphan"), (result.status, result.error)
            check_invariants(chain, accepted)
            for sender in data.draw(st.lists(st.sampled_from(MINERS), max_size=2), label="submit"):
                addr = address(sender)
                tx = global_tx(sender, chain.mempool.next_nonce(addr, chain.ledger))
                if chain.mempool.spendable(addr, chain.ledger) >= tx.amount:
                    chain.add_transaction(tx, NOW)  # funded, next nonce: must be accepted
                else:
                    with pytest.raises(ValidationError):
                        chain.add_transaction(tx, NOW)
                check_invariants(chain, accepted)
            if data.draw(st.integers(min_value=0, max_value=3), label="commit") == 0:
                chain.commit()

        event(f"reorgs: {min(reorgs, 3)}{'+' if reorgs >= 3 else ''}")
        event(f"orphans: {'yes' if orphans else 'no'}")
        event(f"invalid blocks: {'yes' if any(n.tainted for n in nodes) else 'no'}")
        event(f"conflicting transactions dropped: {'yes' if dropped else 'no'}")
        event(f"pending at the end: {'yes' if chain.mempool.txs else 'no'}")
        valid = [n for n in nodes if not n.tainted]
        best = max(chain.index[n.block.block_hash].work for n in valid)
        assert chain.tip.work == best
        assert not by_hash[chain.tip.block_hash].tainted
        # Among equal-work tips, the one stored first keeps the place.
        first = min((chain.index[n.block.block_hash] for n in valid if chain.index[n.block.block_hash].work == best),
                    key=lambda e: e.seq)  # fmt: skip
        assert chain.tip.block_hash == first.block_hash
        assert all(not by_hash[h].tainted for h in chain.main[1:])
        assert all(chain.index[n.block.block_hash].status != STATUS_INVALID for n in valid)
        for n in nodes:  # only descendants of a rejected block may be left waiting
            assert n.tainted or n.block.block_hash not in chain.orphans
        assert chain.validate_all(NOW) == []

        chain.commit()
        state = (chain.tip.block_hash, dict(chain.ledger.balances), set(chain.mempool.txs))
        chain.store.close()
        again = Chain(EASY, Store(path))
        assert (again.tip.block_hash, dict(again.ledger.balances), set(again.mempool.txs)) == state
        again.store.close()


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_ledger_undo_is_exact(data: st.DataObject) -> None:
    """Applying then undoing any valid sequence of blocks restores the ledger exactly."""
    chain = new_chain(EASY)
    snapshots = []
    for _ in range(data.draw(st.integers(min_value=1, max_value=6))):
        snapshots.append((dict(chain.ledger.balances), dict(chain.ledger.nonces)))
        txs = []
        for sender in data.draw(st.lists(st.sampled_from(MINERS), max_size=4)):
            addr = address(sender)
            balance_left = chain.ledger.balance(addr) - sum(
                t.amount for t in txs if t.sender == key(sender).public_key
            )
            if balance_left <= 0:
                continue
            amount = data.draw(st.integers(min_value=1, max_value=balance_left))
            nonce = chain.ledger.nonce(addr) + sum(1 for t in txs if t.sender == key(sender).public_key)
            to = data.draw(st.sampled_from([*MINERS, 11]))
            txs.append(pay(sender, to, amount, nonce))
        miner = data.draw(st.sampled_from(MINERS))
        block = build_block(EASY, chain.tip.header, txs, miner=address(miner))
        assert add(chain, block).status == "connected"
    for height in range(chain.height, 0, -1):
        block = chain.block_at(height)
        assert block is not None
        chain.ledger.undo_block(block)
        assert (chain.ledger.balances, chain.ledger.nonces) == snapshots[height - 1]
    assert chain.ledger.balances == {} and chain.ledger.nonces == {}


def test_coinbase_only_header_helpers() -> None:
    # Guards the helpers the properties rely on: a hand-sealed block equals build_block's.
    cb = coinbase(address(1), EASY.mining_reward, 1, EASY.genesis.header.timestamp + 1000)
    g = EASY.genesis.header
    header = BlockHeader(HEADER_VERSION, 1, g.block_hash, cb.timestamp, merkle_root([cb.txid]), g.target, 0)
    assert solve(header).block_hash == build_block(EASY, g, miner=address(1)).block_hash
