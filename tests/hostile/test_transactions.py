"""Invalid, replayed and double-spent transactions (Bitcoin Core's p2p_invalid_tx).

A second, honest peer (the observer) is connected to the same daemon throughout: whatever
the node relays reaches it, so "not relayed" is checked there after a barrier, and every
test first shows that a valid transaction does reach it (the check can fail).
"""

import os
from typing import Any

import pytest

from tests.hostile.daemons import Node
from tests.hostile.encoder import COIN, Key, Params, coinbase, now_ms, transaction, txid
from tests.hostile.expect import (
    Arena,
    Attacker,
    banned,
    mine_on,
    misbehaviour,
    not_relayed,
    protocol_violation,
    relayed,
    still_connected,
)


def rejected(node: Node, tx: list[Any], reason: str) -> None:
    event = node.wait_for("tx_rejected", txid=txid(tx).hex())
    assert event["reason"] == reason, event


def forge(tx: list[Any], how: str, key: Key, network: bytes) -> list[Any]:
    """``tx`` (signed by ``key`` for ``network``) with a signature that no longer verifies."""
    forged = list(tx)
    if how == "a flipped signature bit":
        forged[5] = bytes([tx[5][0] ^ 1]) + tx[5][1:]
    elif how == "a zero signature":
        forged[5] = bytes(64)
    elif how == "signed by another key":
        forged[5] = transaction(Key(), network, tx[1], tx[2], tx[3], tx[4])[5]
    elif how == "signed for another network":
        forged[5] = transaction(key, Params(difficulty=2).network, tx[1], tx[2], tx[3], tx[4])[5]
    elif how == "an amount changed after signing":
        forged[2] = tx[2] + 1
    return forged


FORGERIES = [
    "a flipped signature bit",
    "a zero signature",
    "signed by another key",
    "signed for another network",
    "an amount changed after signing",
]


@pytest.mark.parametrize("how", FORGERIES)
def test_a_forged_signature_is_rejected_penalised_and_not_relayed(
    arena: Arena, attacker: Attacker, how: str
) -> None:
    node, network = arena.node, attacker.view.params.network
    honest = transaction(attacker.key, network, os.urandom(20), COIN, 0)
    forged = forge(honest, how, attacker.key, network)
    before = node.snapshot()
    attacker.peer.send_and_ping("NewTransaction", {"tx": forged}, bad=f"tx: {how}")
    rejected(node, forged, "bad_signature")
    not_relayed(arena.observer, txid(forged))
    assert node.snapshot() == before
    assert misbehaviour(node, attacker.peer) == 20
    still_connected(node, attacker.peer)
    # The control: the honest original is accepted and relayed to the observer.
    attacker.peer.send_and_ping("NewTransaction", {"tx": honest})
    node.wait_for("tx_accepted", txid=txid(honest).hex())
    relayed(arena.observer, txid(honest))


def test_five_forged_signatures_ban_the_peer(arena: Arena, attacker: Attacker) -> None:
    network = attacker.view.params.network
    for nonce in range(5):
        honest = transaction(attacker.key, network, os.urandom(20), COIN, nonce)
        tx = forge(honest, "a zero signature", attacker.key, network)
        attacker.peer.send("NewTransaction", {"tx": tx}, bad="tx: a zero signature")
    banned(arena.node, attacker.peer, "invalid_tx:bad_signature")


@pytest.mark.parametrize("case", ["a zero amount", "a coinbase as a transaction"])
def test_transactions_no_honest_node_sends_cost_20_points(
    arena: Arena, attacker: Attacker, case: str
) -> None:
    node, network = arena.node, attacker.view.params.network
    if case == "a zero amount":
        tx, reason = transaction(attacker.key, network, os.urandom(20), 0, 0), "bad_amount"
    else:
        tx, reason = coinbase(attacker.key.address, 50 * COIN, 1, now_ms()), "unexpected_coinbase"
    before = node.snapshot()
    attacker.peer.send_and_ping("NewTransaction", {"tx": tx}, bad=f"tx: {case}")
    rejected(node, tx, reason)
    not_relayed(arena.observer, txid(tx))
    assert node.snapshot() == before
    assert misbehaviour(node, attacker.peer) == 20


# (case, a well-signed transaction's field replaced, protocol error field): protocol.md 10's
# "malformed". A transaction is decoded with its message, so on the wire it is a protocol
# error (section 6: 34 points and the connection closed), never a tx_rejected.
MALFORMED = [
    ("a 63-byte signature", 5, b"\x01" * 63, "payload.tx.signature"),
    ("a str signature", 5, "00" * 64, "payload.tx.signature"),
    ("a 31-byte sender key", 0, b"\x02" * 31, "payload.tx.sender"),
    ("a 19-byte recipient", 1, b"\x03" * 19, "payload.tx.recipient"),
    ("an amount above the money supply", 2, 2**63, "payload.tx.amount"),
    ("a negative nonce", 3, -1, "payload.tx.nonce"),
    ("a str timestamp", 4, "now", "payload.tx.timestamp"),
]


@pytest.mark.parametrize(("case", "index", "value", "field"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_a_malformed_transaction_is_a_protocol_error(
    arena: Arena, attacker: Attacker, case: str, index: int, value: Any, field: str
) -> None:
    node, network = arena.node, attacker.view.params.network
    tx = transaction(attacker.key, network, os.urandom(20), COIN, 0)
    tx[index] = value
    before = node.snapshot()
    attacker.peer.send("NewTransaction", {"tx": tx}, bad=f"tx: malformed, {case}")
    protocol_violation(node, attacker.peer, "bad_field", field)
    assert not node.matching("tx_rejected", txid=txid(tx).hex())
    not_relayed(arena.observer, txid(tx))
    assert node.snapshot() == before


def test_replays_and_mempool_double_spends_are_refused_at_no_cost(arena: Arena, attacker: Attacker) -> None:
    node, peer, key, network = arena.node, attacker.peer, attacker.key, attacker.view.params.network
    # A transaction confirmed in a block without ever being relayed, then replayed.
    confirmed = transaction(key, network, os.urandom(20), 5 * COIN, 0)
    mine_on(node, peer, attacker.view, os.urandom(20), [confirmed])
    peer.send_and_ping("NewTransaction", {"tx": confirmed}, bad="tx: replay of a confirmed tx")
    rejected(node, confirmed, "nonce_used")
    # 45 coins left. A spends 30; B spends the same nonce elsewhere; C spends 30 more.
    a = transaction(key, network, os.urandom(20), 30 * COIN, 1)
    peer.send_and_ping("NewTransaction", {"tx": a})
    node.wait_for("tx_accepted", txid=txid(a).hex())
    relayed(arena.observer, txid(a))
    before = node.snapshot()
    attacks = {
        "nonce_used": transaction(key, network, os.urandom(20), 30 * COIN, 1),
        "insufficient_balance": transaction(key, network, os.urandom(20), 30 * COIN, 2),
        "nonce_gap": transaction(key, network, os.urandom(20), COIN, 7),
        "time_too_new": transaction(key, network, os.urandom(20), COIN, 2, now_ms() + 3 * 3600_000),
    }
    for reason, tx in attacks.items():
        peer.send_and_ping("NewTransaction", {"tx": tx}, bad=f"tx: {reason.replace('_', ' ')}")
        rejected(node, tx, reason)
    overspend = transaction(key, network, os.urandom(20), 1000 * COIN, 2)
    peer.send_and_ping("NewTransaction", {"tx": overspend}, bad="tx: overspending")
    rejected(node, overspend, "insufficient_balance")
    # A replay of the pending A is recognised and ignored without being validated again.
    for _ in range(3):
        peer.send_and_ping("NewTransaction", {"tx": a}, bad="tx: replay of a pending tx")
    assert len(node.matching("tx_accepted", txid=txid(a).hex())) == 1
    assert not node.matching("tx_rejected", txid=txid(a).hex())
    not_relayed(arena.observer, *(txid(tx) for tx in [*attacks.values(), overspend]))
    assert (
        sum(txid(a) == txid(env["payload"]["tx"]) for env in arena.observer.received("NewTransaction")) == 1
    )
    assert node.snapshot() == before
    # Races an honest node runs into cost nothing (protocol.md 8.5).
    assert misbehaviour(node, peer) == 0
    still_connected(node, peer)
    balance = node.control("balance", address=key.address.hex())
    assert balance["balance"] == 45 and balance["spendable"] == 15 and balance["next_nonce"] == 2


def test_the_node_survived(arena: Arena) -> None:
    assert arena.node.alive and not arena.node.matching("peer_task_failed")
    still_connected(arena.node, arena.observer)
    assert arena.node.control("validate")["valid"] is True
