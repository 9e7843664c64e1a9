"""Chains, sync and locators (feature_block's reorg cases, p2p_unrequested_blocks,
p2p_invalid_locator), and issue #5: a peer serving an invalid longer chain is rejected and
penalised, and the honest tip stays.
"""

import os
from collections.abc import Iterator

import pytest

from tests.hostile.encoder import COIN, Block, ChainView, Key, request_chain, transaction, work_of
from tests.hostile.expect import (
    Arena,
    Attacker,
    banned,
    chain_of,
    established,
    honest_chain,
    misbehaviour,
    not_relayed,
    protocol_violation,
    relayed,
    still_connected,
)
from tests.hostile.peer import Peer, count

# The honest chain is this long before the tests fork it 3 blocks below its tip.
HONEST_HEIGHT = 6


@pytest.fixture(scope="module", autouse=True)
def honest_state(arena: Arena) -> None:
    """Honest blocks that carry payments, and one payment left pending: a fork that unwinds
    them and fails must put back exactly what was there (the snapshots compare it)."""
    honest_chain(arena, HONEST_HEIGHT)


def spoiled(fork: ChainView, how: str) -> Block:
    """A block on ``fork``'s tip that breaks one rule."""
    if how == "a wrong Merkle root":
        return fork.make_block(merkle=os.urandom(32))
    tx = transaction(Key(), fork.params.network, os.urandom(20), COIN, 0)  # from an empty account
    if how == "an overspend":
        return fork.make_block([tx])
    tx[5] = bytes(64)
    return fork.make_block([tx], pow_ok=how == "a forged signature")


REASONS = {
    "a wrong Merkle root": "bad_merkle_root",
    "a forged signature": "bad_signature",
    "an overspend": "insufficient_balance",
    "bad proof of work and a forged signature": "bad_pow",
}


def longer_fork(view: ChainView, how: str | None, length: int = 6) -> list[Block]:
    """A branch from 3 below the tip, ``length`` blocks long; its 2nd block breaks ``how``."""
    fork = view.fork(view.height - 3)
    blocks = []
    for i in range(length):
        block = spoiled(fork, how) if how is not None and i == 1 else fork.make_block()
        fork.headers.append(block.header)
        blocks.append(block)
    return blocks


@pytest.mark.parametrize("how", list(REASONS))
def test_a_longer_chain_with_an_invalid_block_in_the_middle_is_rejected(
    arena: Arena, attacker: Attacker, how: str
) -> None:
    node = arena.node
    blocks = longer_fork(attacker.view, how)
    before = node.snapshot()
    for block in blocks:
        attacker.peer.send("NewBlock", {"block": block.wire()}, bad=f"chain: {how} in a longer chain")
        if attacker.peer.closed:
            break
    bad = node.wait_for("block_rejected", hash=blocks[1].hash.hex())
    assert bad["reason"] == REASONS[how]
    # A ledger rule only shows when the branch is tried: the block that brought the work.
    reason = "invalid_parent" if how == "an overspend" else REASONS[how]
    banned(node, attacker.peer, f"invalid_block:{reason}")
    assert node.matching("block_stored", hash=blocks[0].hash.hex())  # a valid side block...
    not_relayed(arena.observer, *(b.hash for b in blocks))  # ...is not relayed either
    assert node.snapshot() == before


def sync_server(node_peer: Peer, view: ChainView, blocks: list[Block]) -> Peer:
    """Claim the fork's work in the Hello, then answer the node's RequestChain with ``blocks``."""
    node_peer.height = view.height - 3 + len(blocks)
    node_peer.tip = blocks[-1].hash
    node_peer.work = view.fork(view.height - 3).work + sum(work_of(b.header.target) for b in blocks)
    node_peer.handshake()
    request = node_peer.expect("RequestChain")["payload"]
    assert view.headers[view.height - 3].hash.hex() in request["locator"]
    node_peer.send("ResponseChain", {"blocks": [b.wire() for b in blocks]})
    return node_peer


@pytest.mark.parametrize("how", list(REASONS))
def test_a_peer_serving_an_invalid_longer_chain_is_banned_and_the_tip_stays(arena: Arena, how: str) -> None:
    node = arena.node
    view = chain_of(established(node))
    blocks = longer_fork(view, how)
    before = node.snapshot()
    count(f"sync: {how} in a served chain")
    server = sync_server(node.peer(), view, blocks)
    bad = node.wait_for("block_rejected", hash=blocks[1].hash.hex())
    assert bad["reason"] == REASONS[how]
    reason = "invalid_parent" if how == "an overspend" else REASONS[how]
    banned(node, server, f"invalid_block:{reason}")
    not_relayed(arena.observer, *(b.hash for b in blocks))
    assert node.snapshot() == before


def test_a_peer_serving_a_valid_longer_chain_wins(arena: Arena) -> None:
    """The control: the same path with a valid branch reorganizes the node onto it."""
    node = arena.node
    view = chain_of(established(node))
    blocks = longer_fork(view, None)
    old_tip = node.snapshot()[0]
    server = sync_server(node.peer(), view, blocks)
    node.wait_for("block_accepted", hash=blocks[-1].hash.hex())
    assert node.matching("chain_reorganized", old_tip=old_tip)
    assert node.snapshot()[0] == blocks[-1].hash.hex() != old_tip
    relayed(arena.observer, blocks[-1].hash)
    still_connected(node, server)
    server.close()


def test_claiming_more_work_than_delivered_costs_20_points(arena: Arena) -> None:
    node = arena.node
    liar = node.peer()
    liar.work = 2**256 - 1  # the most 64 hex digits can claim: far beyond a msgpack integer
    liar.height = 2**64 - 1
    liar.handshake()
    liar.expect("RequestChain")
    liar.send_and_ping("ResponseChain", {"blocks": []}, bad="sync: claimed work not delivered")
    node.wait_for("sync_undelivered", peer=liar.node_id)
    # Reading the claim back through the control socket once crashed the node (OverflowError).
    rows = [row for row in node.control("peers") if row["node_id"] == liar.node_id]
    assert rows[0]["work"] == 2**256 - 1 and rows[0]["height"] == 2**64 - 1
    assert misbehaviour(node, liar) == 20
    still_connected(node, liar)
    assert node.alive


def test_an_unsolicited_chain_response_is_ignored(arena: Arena, attacker: Attacker) -> None:
    node = arena.node
    block = attacker.view.make_block()
    before = node.snapshot()
    attacker.peer.send_and_ping("ResponseChain", {"blocks": [block.wire()]}, bad="sync: unsolicited response")
    assert node.snapshot() == before
    assert not node.matching("block_accepted", hash=block.hash.hex())
    still_connected(node, attacker.peer)


# ----------------------------------------------------------------- unknown parents


def test_blocks_with_unknown_parents_wait_and_are_not_relayed(arena: Arena, attacker: Attacker) -> None:
    node, peer = arena.node, attacker.peer
    before = node.snapshot()
    orphans = [attacker.view.make_block(prev=os.urandom(32)) for _ in range(150)]
    for orphan in orphans:
        peer.send("NewBlock", {"block": orphan.wire()}, bad="chain: a block with an unknown parent")
    request = peer.expect("RequestChain")  # the node asks the sender for the missing ancestors
    assert request["payload"]["locator"][0] == before[0]
    peer.send_and_ping("ResponseChain", {"blocks": []})
    not_relayed(arena.observer, *(o.hash for o in orphans))
    assert not node.matching("block_rejected", peer=peer.node_id)
    assert node.snapshot() == before
    assert misbehaviour(node, peer) == 0
    still_connected(node, peer)


def test_a_valid_extension_sent_child_first_connects_when_the_parent_arrives(
    arena: Arena, attacker: Attacker
) -> None:
    node, peer, view = arena.node, attacker.peer, attacker.view
    blocks = []
    for _ in range(3):
        block = view.make_block()
        view.add(block)
        blocks.append(block)
    for block in reversed(blocks):
        peer.send("NewBlock", {"block": block.wire()})
    node.wait_for("block_accepted", hash=blocks[-1].hash.hex())
    relayed(arena.observer, blocks[-1].hash)
    assert node.snapshot()[0] == blocks[-1].hash.hex()
    still_connected(node, peer)


# ----------------------------------------------------------------- locators


def test_a_102_hash_locator_is_a_protocol_error(arena: Arena) -> None:
    node = arena.node
    peer = established(node)
    locator = [os.urandom(32) for _ in range(102)]
    before = node.snapshot()
    peer.send("RequestChain", request_chain(locator), bad="locator: 102 hashes")
    protocol_violation(node, peer, "bad_field", "payload.locator")
    assert node.snapshot() == before  # the honest chain and its pending payment


def test_locators_up_to_101_hashes_are_answered(arena: Arena) -> None:
    node = arena.node
    peer = established(node)
    view = chain_of(peer)
    answers = peer.received("ResponseChain")
    cases = {
        "101 unknown hashes": ([os.urandom(32) for _ in range(101)], 1),
        "100 unknown hashes and genesis": ([*(os.urandom(32) for _ in range(100)), view.params.network], 1),
        "an empty locator": ([], 0),
        "our tip": ([view.tip.hash], None),
    }
    for case, (locator, first) in cases.items():
        n = len(peer.received("ResponseChain"))
        peer.send("RequestChain", request_chain(locator))
        blocks = [Block.from_wire(b) for b in peer.nth("ResponseChain", n)["payload"]["blocks"]]
        if first is None:
            assert blocks == [], case
        else:
            assert [b.height for b in blocks] == list(range(first, view.height + 1)), case
    assert len(answers) >= 1
    still_connected(node, peer)


@pytest.fixture
def fresh(arena: Arena) -> Iterator[Peer]:
    peer = established(arena.node)
    yield peer
    peer.close()


def test_the_node_survived(arena: Arena, fresh: Peer) -> None:
    assert arena.node.alive and not arena.node.matching("peer_task_failed")
    still_connected(arena.node, fresh)
    assert arena.node.control("validate")["valid"] is True
