"""Invalid blocks, one rule of protocol.md section 10 broken at a time (p2p_invalid_block,
feature_block). Each must be rejected with its reason code, cost the sender 100 points (a
ban), never reach the observer, and leave the honest chain and mempool as they were.
"""

import os
from collections.abc import Callable

import pytest

from tests.hostile.daemons import Node
from tests.hostile.encoder import (
    COIN,
    Block,
    Header,
    Key,
    coinbase,
    merkle_root,
    now_ms,
    solve,
    transaction,
    txid,
)
from tests.hostile.expect import (
    Arena,
    Attacker,
    banned,
    established,
    mine_on,
    not_relayed,
    relayed,
    still_connected,
)

Build = Callable[[Node, Attacker], tuple[Block, str]]


def spend(a: Attacker, amount: float, nonce: int, key: Key | None = None) -> list[object]:
    return transaction(key or a.key, a.view.params.network, os.urandom(20), int(amount * COIN), nonce)


def forged(a: Attacker) -> list[object]:
    tx = spend(a, 1, 0)
    tx[5] = bytes(64)
    return tx


def across_blocks(node: Node, a: Attacker, replay: bool) -> tuple[Block, str]:
    """A valid block spending nonce 0 is accepted; its child spends nonce 0 again."""
    first = spend(a, 10, 0)
    mine_on(node, a.peer, a.view, os.urandom(20), [first])
    return a.view.make_block([first if replay else spend(a, 10, 0)]), "bad_nonce"


def fake_genesis(a: Attacker) -> Block:
    ts = now_ms()
    body = [coinbase(a.key.address, 50 * COIN, 0, ts)]
    header = Header(1, 0, os.urandom(32), ts, merkle_root([txid(body[0])]), a.view.params.target, 0)
    return Block(solve(header), body)


def too_large(a: Attacker) -> Block:
    """7,500 transactions of 136 bytes: over 1,000,000 bytes (with junk signatures)."""
    junk = [[a.key.public, os.urandom(20), 1, nonce, now_ms(), b"s" * 64] for nonce in range(7_500)]
    return a.view.make_block(junk)


CASES: dict[str, Build] = {
    "a forged signature": lambda n, a: (a.view.make_block([forged(a)]), "bad_signature"),
    "a double spend in one block (same nonce)": lambda n, a: (
        a.view.make_block([spend(a, 20, 0), spend(a, 20, 0)]),
        "bad_nonce",
    ),
    "a double spend in one block (over the balance)": lambda n, a: (
        a.view.make_block([spend(a, 30, 0), spend(a, 30, 1)]),
        "insufficient_balance",
    ),
    "the same transaction twice": lambda n, a: (
        a.view.make_block([tx := spend(a, 1, 0), tx]),
        "duplicate_tx",
    ),
    "a transaction replayed in a later block": lambda n, a: across_blocks(n, a, replay=True),
    "a double spend across blocks": lambda n, a: across_blocks(n, a, replay=False),
    "overspending": lambda n, a: (a.view.make_block([spend(a, 51, 0)]), "insufficient_balance"),
    "spending from an empty account": lambda n, a: (
        a.view.make_block([spend(a, 1, 0, key=Key())]),
        "insufficient_balance",
    ),
    "a zero-amount transaction": lambda n, a: (a.view.make_block([spend(a, 0, 0)]), "bad_amount"),
    "a coinbase paying too much": lambda n, a: (
        a.view.make_block(reward=50 * COIN + 1),
        "bad_coinbase_amount",
    ),
    "a coinbase paying too little": lambda n, a: (
        a.view.make_block(reward=49 * COIN),
        "bad_coinbase_amount",
    ),
    "two coinbases": lambda n, a: (a.view.make_block(extra_coinbase=True), "extra_coinbase"),
    "a coinbase that is not first": lambda n, a: (
        a.view.seal([spend(a, 1, 0), coinbase(a.key.address, 50 * COIN, a.view.height + 1, now_ms())]),
        "missing_coinbase",
    ),
    "no transactions": lambda n, a: (a.view.seal([]), "missing_coinbase"),
    "a coinbase with the wrong nonce": lambda n, a: (
        a.view.seal([coinbase(a.key.address, 50 * COIN, a.view.height + 7, now_ms())]),
        "bad_coinbase",
    ),
    "a timestamp below the median of the last 11": lambda n, a: (
        a.view.make_block(timestamp=a.view.headers[0].timestamp + 1),
        "time_too_old",
    ),
    "a wrong Merkle root": lambda n, a: (a.view.make_block(merkle=os.urandom(32)), "bad_merkle_root"),
    "bad proof of work": lambda n, a: (a.view.make_block(pow_ok=False), "bad_pow"),
    "bad proof of work and a forged signature": lambda n, a: (
        a.view.make_block([forged(a)], pow_ok=False),
        "bad_pow",
    ),
    "header version 2": lambda n, a: (a.view.make_block(version=2), "bad_version"),
    "a height that skips one": lambda n, a: (a.view.make_block(height=a.view.height + 2), "bad_height"),
    "an easier target": lambda n, a: (a.view.make_block(target=(1 << 256) - 1), "bad_target"),
    "a harder target": lambda n, a: (a.view.make_block(target=a.view.params.target >> 4), "bad_target"),
    "a second genesis block": lambda n, a: (fake_genesis(a), "bad_genesis"),
    "over 1,000,000 bytes of transactions": lambda n, a: (too_large(a), "block_too_large"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_invalid_block_is_rejected_not_relayed_and_bans(
    arena: Arena, attacker: Attacker, case: str
) -> None:
    node = arena.node
    # An honest pending transaction from the same key (nonce 0): many invalid blocks below
    # spend that nonce too, and rejecting them must leave it pending.
    honest = spend(attacker, 5, 0)
    arena.observer.send("NewTransaction", {"tx": honest})
    node.wait_for("tx_accepted", txid=txid(honest).hex())
    block, reason = CASES[case](node, attacker)
    before = node.snapshot()
    if "across blocks" not in case and "later block" not in case:  # those confirm a nonce 0 first
        assert txid(honest).hex() in before[2]
    attacker.peer.send("NewBlock", {"block": block.wire()}, bad=f"block: {case}")
    event = node.wait_for("block_rejected", hash=block.hash.hex())
    assert event["reason"] == reason, event
    banned(node, attacker.peer, f"invalid_block:{reason}")
    not_relayed(arena.observer, block.hash)
    assert node.snapshot() == before


def test_a_block_from_3_hours_in_the_future_is_rejected_and_penalised_but_not_banned(
    arena: Arena, attacker: Attacker
) -> None:
    """protocol.md 8.5: 20 points, not a ban (a clock 2 h fast is a fault, not an attack);
    the block is not remembered as invalid, so it may be accepted once its time has come."""
    node = arena.node
    block = attacker.view.make_block(timestamp=now_ms() + 3 * 3600_000)
    before = node.snapshot()
    attacker.peer.send("NewBlock", {"block": block.wire()}, bad="block: a block from 3 hours in the future")
    assert node.wait_for("block_rejected", hash=block.hash.hex())["reason"] == "time_too_new"
    still_connected(node, attacker.peer)
    peers = {p["node_id"]: p for p in node.control("peers")}
    assert peers[attacker.peer.node_id]["misbehaviour"] == 20
    not_relayed(arena.observer, block.hash)
    assert node.snapshot() == before
    attacker.peer.send("NewBlock", {"block": block.wire()}, bad="block: the same future block again")
    rejected = node.wait_until(
        lambda: (lambda seen: seen if len(seen) >= 2 else None)(
            node.matching("block_rejected", hash=block.hash.hex())
        )
    )
    assert rejected[-1]["reason"] == "time_too_new"  # judged again, not "known_invalid"


def test_a_block_found_invalid_stays_invalid_and_so_do_its_children(arena: Arena, attacker: Attacker) -> None:
    node = arena.node
    bad = attacker.view.make_block([spend(attacker, 51, 0)])  # breaks a ledger rule: stored, marked
    attacker.peer.send("NewBlock", {"block": bad.wire()}, bad="block: overspending")
    banned(node, attacker.peer, "invalid_block:insufficient_balance")
    before = node.snapshot()
    again = established(node)
    again.send("NewBlock", {"block": bad.wire()}, bad="block: a known invalid block")
    banned(node, again, "invalid_block:known_invalid")
    attacker.view.headers.append(bad.header)
    child = attacker.view.make_block()
    third = established(node)
    third.send("NewBlock", {"block": child.wire()}, bad="block: a child of an invalid block")
    banned(node, third, "invalid_block:invalid_parent")
    assert [e["reason"] for e in node.matching("block_rejected", hash=child.hash.hex())] == ["invalid_parent"]
    not_relayed(arena.observer, bad.hash, child.hash)
    assert node.snapshot() == before


def test_a_valid_block_is_accepted_and_relayed(arena: Arena, attacker: Attacker) -> None:
    """The control: the same attacker's valid block goes through, so the rejections above are real."""
    block = mine_on(arena.node, attacker.peer, attacker.view, attacker.key.address, [spend(attacker, 10, 0)])
    relayed(arena.observer, block.hash)
    assert arena.node.snapshot()[0] == block.hash.hex()


def test_the_node_survived(arena: Arena) -> None:
    assert arena.node.alive and not arena.node.matching("peer_task_failed")
    assert arena.node.control("validate")["valid"] is True
