"""Handshake attacks (Bitcoin Core's p2p_timeouts and the version checks of p2p_invalid_messages).

Refusals run against a real daemon and must come at once; the 10 s handshake timeout runs
against an in-process node over memory streams under ``MockClock``, so it costs no real time
and is measured exactly.
"""

from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.hostile.daemons import PARAMS, Node
from tests.hostile.encoder import (
    Key,
    Params,
    heartbeat,
    hello,
    hello_proof,
    message,
    new_node_id,
    request_chain,
    transaction,
)
from tests.hostile.expect import established, protocol_violation, refused, still_connected
from tests.hostile.peer import TrioPeer, count
from tests.runtime.harness import events, make_node, wait_until
from trionode.sim.network import SimNetwork


@pytest.fixture(scope="module")
def node(spawn: Callable[..., Node]) -> Node:
    return spawn("handshake", p2p={"max_peers": 40})


BEFORE_HELLO = {
    "Heartbeat": heartbeat(PARAMS, "00" * 16, 1, False),
    "RequestChain": request_chain([PARAMS.network]),
    "PeerDiscovery": {"request": True, "peers": []},
    "NewTransaction": {"tx": transaction(Key(), PARAMS.network, b"\x01" * 20, 1, 0)},
    "Gossip": {"unknown": "type"},
}


@pytest.mark.parametrize("kind", sorted(BEFORE_HELLO))
def test_anything_before_hello_is_refused_at_once(node: Node, kind: str) -> None:
    peer = node.peer()
    peer.send(kind, BEFORE_HELLO[kind], bad="handshake: message before Hello")
    refused(node, peer, "protocol_error", "protocol_error")


def test_an_error_before_hello_is_closed_without_an_answer(node: Node) -> None:
    peer = node.peer()
    peer.send("Error", {"code": "banned", "reason": "you are banned"}, bad="handshake: Error before Hello")
    refused(node, peer, "banned", None)


def test_a_second_hello_is_a_protocol_error(node: Node) -> None:
    peer = established(node)
    peer.send("Hello", peer.hello_payload(), bad="handshake: second Hello")
    protocol_violation(node, peer, "duplicate_hello", "type")


@pytest.mark.parametrize("version", [0, -1, -(2**63)])
def test_an_unsupported_version_is_refused(node: Node, version: int) -> None:
    peer = node.peer()
    peer.send("Hello", peer.hello_payload(version=version), bad="handshake: unsupported version")
    refused(node, peer, "unsupported_version", "unsupported_version")


def test_a_later_version_is_accepted(node: Node) -> None:
    peer = node.peer()
    assert peer.handshake(version=2)["version"] == 1
    still_connected(node, peer)


@pytest.mark.parametrize("network", ["other parameters", "random"])
def test_a_wrong_network_is_refused(node: Node, network: str) -> None:
    peer = node.peer()
    other = Params(difficulty=2).network if network == "other parameters" else Key().public
    peer.send("Hello", peer.hello_payload(network=other.hex()), bad="handshake: wrong network")
    refused(node, peer, "wrong_network", "wrong_network")


def test_our_own_node_id_is_a_self_connection(node: Node) -> None:
    peer = node.peer(node_id=node.node_id())
    peer.send("Hello", peer.hello_payload(), bad="handshake: our own node id")
    refused(node, peer, "self_connection", "self_connection")


def test_a_hello_whose_node_id_is_not_the_sender_is_refused(node: Node) -> None:
    peer = node.peer()
    peer.send(
        "Hello", peer.hello_payload(node_id=new_node_id()), bad="handshake: node id differs from sender"
    )
    refused(node, peer, "protocol_error", "protocol_error")


def test_a_hello_whose_node_id_is_not_its_keys_is_refused(node: Node) -> None:
    peer = node.peer(node_id=new_node_id())  # claims an id that its key does not give
    peer.send("Hello", peer.hello_payload(), bad="handshake: node id not the key's")
    refused(node, peer, "bad_proof", "bad_proof", after_hello=False)


@pytest.mark.parametrize(
    "proof",
    [
        "a signature by another key",
        "a signature over another challenge",
        "a signature in the listener's role",
        "garbage",
        "none, a Heartbeat",
    ],
)
def test_a_peer_that_cannot_prove_its_node_id_is_refused(node: Node, proof: str) -> None:
    peer = node.peer()
    peer.send("Hello", peer.hello_payload())
    theirs = peer.expect("Hello")["payload"]
    peer.expect("HelloProof")
    bad = f"handshake: HelloProof with {proof}"
    ours = peer.sent_hello
    if proof == "a signature by another key":
        peer.send("HelloProof", hello_proof(Key(), PARAMS.network, "dialer", ours, theirs), bad=bad)
    elif proof == "a signature over another challenge":
        other = {**theirs, "challenge": "00" * 16}
        peer.send("HelloProof", hello_proof(peer.key, PARAMS.network, "dialer", ours, other), bad=bad)
    elif proof == "a signature in the listener's role":
        peer.send("HelloProof", hello_proof(peer.key, PARAMS.network, "listener", ours, theirs), bad=bad)
    elif proof == "garbage":
        peer.send("HelloProof", {"signature": "00" * 64}, bad=bad)
    else:
        peer.send("Heartbeat", heartbeat(PARAMS, peer.node_id, 1, False), bad=bad)
    refused(node, peer, "protocol_error" if proof.startswith("none") else "bad_proof",
            "protocol_error" if proof.startswith("none") else "bad_proof", after_hello=True)  # fmt: skip


def test_a_peer_that_never_proves_its_node_id_times_out(node: Node) -> None:
    peer = node.peer()
    peer.send("Hello", peer.hello_payload(), bad="handshake: Hello and no HelloProof")
    peer.expect("HelloProof")
    # Exactly 10 s is measured under MockClock below; here, the real daemon's own timer.
    refused(node, peer, "handshake_timeout", "handshake_timeout", within=12, after_hello=True, not_before=9)


def test_a_hello_with_a_bad_field_is_refused(node: Node) -> None:
    peer = node.peer()
    peer.send("Hello", peer.hello_payload(work="-1"), bad="handshake: bad Hello field")
    refused(node, peer, "protocol_error:bad_field", "protocol_error")


# ----------------------------------------------------------------- timing, under MockClock


async def test_silence_ends_in_handshake_timeout_after_10_s(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    target = make_node(net, "10.0.0.1", tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(target.run)
        attacks = ("silence", "half a Hello", "a byte every 3 s", "Hello and no HelloProof")
        for attack in attacks:
            peer = TrioPeer(await net.transport("10.0.9.1").dial("10.0.0.1", 5001), PARAMS)
            start = trio.current_time()
            frame = message(
                "Hello", hello(PARAMS, peer.node_id, key=peer.key.public, challenge=bytes(16)), peer.node_id
            )
            count("handshake: stalled")
            if attack == "half a Hello":
                await peer.send_raw(frame[: len(frame) // 2])
            elif attack == "Hello and no HelloProof":
                await peer.send_raw(frame)  # the node answers; we never prove our node id
            elif attack == "a byte every 3 s":

                async def trickle(peer: TrioPeer = peer, frame: bytes = frame) -> None:
                    for byte in frame:
                        await trio.sleep(3)
                        try:
                            await peer.send_raw(bytes([byte]))
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            return

                nursery.start_soon(trickle)
            await peer.wait_closed()
            assert 10.0 <= trio.current_time() - start < 10.5, attack
            assert peer.errors() == ["handshake_timeout"], attack
            answered = [e["type"] for e in peer.inbox if e["type"] != "Error"]
            assert answered == (["Hello", "HelloProof"] if attack.startswith("Hello ") else []), attack
        await wait_until(lambda: len(events(target).matching("handshake_failed")) == len(attacks))
        failures = events(target).matching("handshake_failed")
        assert [e["reason"] for e in failures] == ["handshake_timeout"] * len(attacks)
        target.stop()


async def test_hello_and_then_nothing_is_dropped_after_3_heartbeat_intervals(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    target = make_node(net, "10.0.0.1", tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(target.run)
        peer = TrioPeer(await net.transport("10.0.9.2").dial("10.0.0.1", 5001), PARAMS)
        peer.auto_echo = False  # reads everything, answers nothing
        await peer.handshake()
        silent_since = trio.current_time()
        count("handshake: Hello then silence")
        await peer.wait_closed()
        interval = target.config.heartbeat_interval
        assert 3 * interval < trio.current_time() - silent_since <= 4 * interval + 0.1
        assert peer.errors() == ["timeout"]
        heartbeats = [e for e in peer.inbox if e["type"] == "Heartbeat"]
        assert len(heartbeats) >= 3 and not any(e["payload"]["echo"] for e in heartbeats)
        dropped = await events(target).wait_for("peer_disconnected", peer=peer.node_id)
        assert dropped["reason"] == "timeout"
        target.stop()


async def test_a_silent_listener_the_node_dialled_times_out_after_10_s(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    accepted: list[TrioPeer] = []
    got_hello = trio.Event()
    closed_at: list[float] = []
    closed = trio.Event()

    async def silent_listener(stream: trio.abc.Stream, remote: str) -> None:
        peer = TrioPeer(stream, PARAMS)
        accepted.append(peer)
        await peer.expect("Hello")
        got_hello.set()
        await peer.wait_closed()
        closed_at.append(trio.current_time())
        closed.set()

    async with trio.open_nursery() as nursery:
        net.listeners["10.0.0.66:5001"] = (silent_listener, nursery)
        target = make_node(net, "10.0.0.1", tmp_path, peers=("10.0.0.66:5001",))
        await nursery.start(target.run)
        await got_hello.wait()
        start = trio.current_time()
        count("handshake: silent listener")
        failed = await events(target).wait_for("handshake_failed", address="10.0.0.66:5001")
        assert failed["reason"] == "handshake_timeout"
        await closed.wait()
        assert 9.9 <= closed_at[0] - start < 10.5
        assert accepted[0].errors() == ["handshake_timeout"]
        target.stop()
        nursery.cancel_scope.cancel()


# ----------------------------------------------------------------- impersonation


@pytest.mark.parametrize("claim", ["with its own key", "with the real node's public key"])
def test_a_stranger_claiming_a_connected_peers_node_id_cannot_evict_it(
    spawn: Callable[..., Node], claim: str
) -> None:
    """Within 10 s of a connection, the duplicate tie-break would keep a connection "dialled by
    the smaller id"; a stranger claiming that id must fail before the tie-break is reached."""
    tag = "own" if claim == "with its own key" else "real"
    first, second = spawn(f"imp-{tag}-1"), spawn(f"imp-{tag}-2")
    small, large = sorted((first, second), key=lambda n: n.node_id())
    large.control("connect", address=small.address)  # large dials small: its outbound link
    small_id = small.node_id()
    large.wait_for("peer_connected", peer=small_id)
    impostor = large.peer(node_id=small_id)
    if claim == "with its own key":
        impostor.send("Hello", impostor.hello_payload(), bad="handshake: a connected peer's node id")
        refused(large, impostor, "bad_proof", "bad_proof")
    else:
        # The real key is public (any peer of small's reads it in small's Hello); its private
        # half is not, so the impostor can only sign with its own.
        with small.peer() as spy:
            real_key = bytes.fromhex(spy.handshake()["key"])
        impostor.send(
            "Hello", impostor.hello_payload(key=real_key.hex()), bad="handshake: a peer's id and key"
        )
        theirs = impostor.expect("Hello")["payload"]
        impostor.send("HelloProof", impostor.proof_for(theirs), bad="handshake: a proof by another key")
        refused(large, impostor, "bad_proof", "bad_proof", after_hello=True)
    assert not large.matching("peer_disconnected", peer=small_id), "the real peer was evicted"
    assert small_id in {p["node_id"] for p in large.control("peers") if p["connected"]}
