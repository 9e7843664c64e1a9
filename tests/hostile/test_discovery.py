"""Address flooding (Bitcoin Core's p2p_addr_relay): oversized, malformed and excessive
PeerDiscovery messages. Addresses are in TEST-NET-1 (192.0.2.0/24, RFC 5737), which no
machine answers, so whatever the node does with them harms nobody.
"""

from typing import Any

import pytest

from tests.hostile.encoder import peer_entry
from tests.hostile.expect import Arena, established, honest_chain, protocol_violation, still_connected


@pytest.fixture(scope="module", autouse=True)
def honest_state(arena: Arena) -> None:
    """A mined block and a payment from its reward left pending: something an address flood
    could disturb, which the snapshots compare."""
    honest_chain(arena, 1)


def addresses(n: int, base: int = 0) -> list[dict[str, Any]]:
    return [peer_entry(f"192.0.2.{(base + i) % 254 + 1}:{10_000 + base + i}") for i in range(n)]


def test_a_1001_address_reply_is_a_protocol_error(arena: Arena) -> None:
    node, observer = arena.node, arena.observer
    peer = established(node)
    sent = addresses(1_001, base=20_000)
    before = node.snapshot()
    assert before[1] >= 1 and before[2], before  # a chain and a pending payment to lose
    peer.send("PeerDiscovery", {"request": False, "peers": sent}, bad="addr: 1,001 addresses")
    protocol_violation(node, peer, "bad_field", "payload.peers")
    assert node.snapshot() == before
    # Refused whole: not one of them learned, none passed on.
    assert not node.matching("addresses_learned", peer=peer.node_id)
    observer.ping()
    sent_on = {e["address"] for env in observer.received("PeerDiscovery") for e in env["payload"]["peers"]}
    assert not sent_on & {e["address"] for e in sent}


def test_1000_addresses_are_taken_once_then_rate_limited_and_never_relayed(arena: Arena) -> None:
    node, observer = arena.node, arena.observer
    peer = established(node)
    first = addresses(1_000)
    peer.send_and_ping("PeerDiscovery", {"request": False, "peers": first})
    learned = node.wait_for("addresses_learned", peer=peer.node_id)
    assert learned["count"] == 1_000
    flood = addresses(1_000, base=5_000)
    peer.send_and_ping("PeerDiscovery", {"request": False, "peers": flood}, bad="addr: 1,000 more at once")
    limited = node.wait_for("addresses_rate_limited", peer=peer.node_id)
    assert limited["ignored"] >= 999
    assert len(node.matching("addresses_learned", peer=peer.node_id)) == 1
    observer.ping()
    sent_on = {e["address"] for env in observer.received("PeerDiscovery") for e in env["payload"]["peers"]}
    assert not sent_on & {e["address"] for e in first + flood}, "addresses were relayed"
    still_connected(node, peer)


BAD_ENTRIES: dict[str, tuple[dict[str, Any], str]] = {
    "an IPv4 address out of range": ({"address": "256.1.1.1:5001"}, "address"),
    "port 0": ({"address": "192.0.2.1:0"}, "address"),
    "no port": ({"address": "192.0.2.1"}, "address"),
    "a label that starts with a hyphen": ({"address": "-bad.name:5001"}, "address"),
    "a 263-character address": ({"address": "a" * 257 + ".b:5001"}, "address"),
    "a short node id": ({"node_id": "abcd"}, "node_id"),
    "a negative last_seen": ({"last_seen": -5.0}, "last_seen"),
}


@pytest.mark.parametrize("case", list(BAD_ENTRIES))
def test_a_malformed_address_entry_is_a_protocol_error(arena: Arena, case: str) -> None:
    change, field = BAD_ENTRIES[case]
    entries = addresses(3, base=9_000)
    entries[1] = {**entries[1], **change}
    peer = established(arena.node)
    peer.send("PeerDiscovery", {"request": False, "peers": entries}, bad=f"addr: {case}")
    protocol_violation(arena.node, peer, "bad_field", f"payload.peers[1].{field}")


def test_requests_are_answered_at_most_once_a_minute_without_the_requester(arena: Arena) -> None:
    node = arena.node
    peer = established(node)
    for _ in range(5):
        peer.send_and_ping("PeerDiscovery", {"request": True, "peers": []}, bad="addr: repeated requests")
    answers = [env for env in peer.received("PeerDiscovery") if env["payload"]["request"] is False]
    assert len(answers) == 1
    listed = answers[0]["payload"]["peers"]
    assert len(listed) <= 1_000
    assert peer.node_id not in {e["node_id"] for e in listed}
    still_connected(node, peer)


def test_the_node_survived(arena: Arena) -> None:
    assert arena.node.alive and not arena.node.matching("peer_task_failed")
    still_connected(arena.node, arena.observer)
