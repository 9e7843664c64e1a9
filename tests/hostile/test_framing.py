"""Framing and codec attacks on a real daemon (Bitcoin Core's p2p_invalid_messages).

Each bad frame comes from a fresh node id (34 points each, so none of them bans on its own);
the test of repeated offences checks that three from one node id do ban it.
"""

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from tests.hostile.daemons import PARAMS, Node
from tests.hostile.encoder import (
    LENGTH,
    MAX_FRAME,
    Key,
    frame,
    heartbeat,
    message,
    new_node_id,
    node_id_of,
    pack,
)
from tests.hostile.expect import (
    AT_ONCE,
    disconnected,
    established,
    protocol_violation,
    refused,
    still_connected,
    wait_until,
)
from tests.hostile.peer import Peer, is_echo


@pytest.fixture(scope="module")
def node(spawn: Callable[..., Node]) -> Node:
    return spawn("framing", p2p={"max_peers": 40})


def bytes_in(node: Node, peer_id: str) -> int:
    rows = [row for row in node.control("peers") if row["node_id"] == peer_id and row["connected"]]
    return int(rows[0]["bytes_in"]) if rows else -1


def heartbeat_frame(peer: Peer, nonce: int) -> bytes:
    return message("Heartbeat", heartbeat(PARAMS, peer.node_id, nonce, False), peer.node_id)


def test_a_frame_split_over_many_sends_is_processed(node: Node) -> None:
    peer = node.peer()
    peer.sent_hello = peer.hello_payload()  # sent by hand below, byte by byte
    hello = message("Hello", peer.sent_hello, peer.node_id)
    with peer.holding():
        for i in range(len(hello)):  # one byte per send (TCP_NODELAY: one segment each)
            peer.send_raw(hello[i : i + 1])
    theirs = peer.expect("Hello")["payload"]
    peer.expect("HelloProof")
    proof = message("HelloProof", peer.proof_for(theirs), peer.node_id)
    with peer.holding():
        for i in range(len(proof)):
            peer.send_raw(proof[i : i + 1])
    node.wait_for("peer_connected", peer=peer.node_id)
    # Cut inside the length prefix, right after it, inside the body; each time wait until the
    # node has read exactly what was sent, so the pieces really arrive in separate reads.
    ping = heartbeat_frame(peer, 4242)
    with peer.holding():
        done = 0
        for cut in (2, 4, 5, len(ping) // 2, len(ping) - 1):
            peer.send_raw(ping[done:cut])
            done = cut
            wait_until(lambda: bytes_in(node, peer.node_id) == peer.bytes_sent, what="the piece to be read")
        peer.send_raw(ping[done:])
    peer.wait_for(lambda env: is_echo(env, 4242))
    # Several frames in one send are all processed, in order.
    peer.send_raw(b"".join(heartbeat_frame(peer, n) for n in (1, 2, 3)))
    for n in (1, 2, 3):
        peer.wait_for(lambda env, n=n: is_echo(env, n))
    still_connected(node, peer)


def peak_memory_kib(node: Node) -> int:
    """The daemon's peak resident set size so far (VmHWM), in KiB."""
    assert node.proc is not None
    status = Path(f"/proc/{node.proc.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


# What one bad length prefix may add to the daemon's peak memory: it announces up to 4 GiB,
# and allocating even a full 4 MiB frame for it would show.
PREFIX_MEMORY_KIB = 2048


@pytest.mark.parametrize(
    ("length", "code"),
    [(0, "empty_frame"), (MAX_FRAME + 1, "frame_too_large"), (0xFFFFFFFF, "frame_too_large")],
)
def test_a_bad_length_prefix_disconnects_at_once_without_the_body(node: Node, length: int, code: str) -> None:
    # Only the four length bytes are ever sent: the node must decide on them alone, and
    # allocate nothing for the body they announce.
    peer = established(node)
    peak = peak_memory_kib(node)
    peer.send_raw(LENGTH.pack(length), bad="framing: bad length prefix")
    protocol_violation(node, peer, code)
    before = node.peer()
    before.send_raw(LENGTH.pack(length), bad="framing: bad length prefix")
    refused(node, before, f"protocol_error:{code}", "protocol_error")
    assert peak_memory_kib(node) - peak < PREFIX_MEMORY_KIB


def test_a_bad_frame_in_the_same_send_as_the_hello_proof_is_an_established_peers_error(node: Node) -> None:
    """protocol.md 5: the dialler may send right after its HelloProof, so a bad frame arriving
    in the node's read of that proof comes from a peer whose handshake is complete."""
    peer = node.peer()
    peer.send("Hello", peer.hello_payload())
    theirs = peer.expect("Hello")["payload"]
    peer.expect("HelloProof")
    proof = message("HelloProof", peer.proof_for(theirs), peer.node_id)
    ping = heartbeat_frame(peer, 77)
    peer.send_raw(proof + ping + frame(b"\xc1"), bad="framing: bad frame with the HelloProof")
    protocol_violation(node, peer, "bad_msgpack")
    assert any(is_echo(env, 77) for env in peer.inbox), "the Heartbeat before the bad frame"
    assert not node.matching("handshake_failed", address=peer.local)


def test_a_stranger_cannot_make_the_node_buffer_a_full_frame_before_hello(node: Node) -> None:
    # Before its handshake is complete a peer may announce at most 128 KiB; after it, 4 MiB.
    before = node.peer()
    before.send_raw(LENGTH.pack(128 * 1024 + 1), bad="framing: large first frame")
    refused(node, before, "protocol_error:frame_too_large", "protocol_error")
    after = established(node)
    big = {f"pad{i}": bytes(60_000) for i in range(4)}  # a 240 KB frame of a future type
    after.send_and_ping("FutureMessage", big)
    still_connected(node, after)


def env(kind: str = "Heartbeat", **changes: Any) -> dict[str, Any]:
    """A valid envelope as a dict (a Heartbeat request), with keys replaced or removed."""
    sender = new_node_id()
    body: dict[str, Any] = {
        "type": kind,
        "sender": sender,
        "ts": 1_800_000_000.0,
        "payload": heartbeat(PARAMS, sender, 7, False),
    }
    for key, value in changes.items():
        if value is DROP:
            del body[key]
        else:
            body[key] = value
    return body


def payload(kind: str, **fields: Any) -> bytes:
    return pack(env(kind, payload=fields))


def nested(depth: int) -> bytes:
    return pack(env(payload={"x": 0})).replace(b"\xa1x\x00", b"\xa1x" + b"\x91" * depth + b"\x00")


DROP = object()
VALID = pack(env())
HB = heartbeat(PARAMS, "00" * 16, 1, False)
# (case, body, protocol error code, field): every way a body can be wrong, per protocol.md 1-4.
BAD_BODIES: list[tuple[str, bytes, str, str]] = [
    ("the never-used byte c1", b"\xc1", "bad_msgpack", ""),
    ("a truncated map", VALID[:-3], "bad_msgpack", ""),
    ("an ext type", pack(env(payload={"x": msgpack.ExtType(5, b"x")})), "bad_msgpack", ""),
    ("the timestamp ext type", pack(env(payload={"x": msgpack.Timestamp(1, 0)})), "bad_msgpack", ""),
    ("invalid UTF-8 in a str", b"\x81\xa4type\xa2\xff\xfe", "bad_msgpack", ""),
    ("an integer map key", pack({1: 2, **env()}), "bad_msgpack", ""),
    ("an array body", pack([1, 2, 3]), "not_a_map", ""),
    ("a string body", pack("Hello"), "not_a_map", ""),
    ("a nil body", b"\xc0", "not_a_map", ""),
    ("trailing bytes", VALID + b"\xc0", "trailing_data", ""),
    ("two maps in one frame", VALID + VALID, "trailing_data", ""),
    ("no type", pack(env(type=DROP)), "missing_field", "type"),
    ("no sender", pack(env(sender=DROP)), "missing_field", "sender"),
    ("no ts", pack(env(ts=DROP)), "missing_field", "ts"),
    ("no payload", pack(env(payload=DROP)), "missing_field", "payload"),
    ("an int type", pack(env(type=5)), "bad_field", "type"),
    ("a 65-character type", pack(env(type="X" * 65)), "bad_field", "type"),
    ("a short sender", pack(env(sender="abc")), "bad_field", "sender"),
    ("an uppercase sender", pack(env(sender="AB" * 16)), "bad_field", "sender"),
    ("a bin sender", pack(env(sender=b"\x01" * 16)), "bad_field", "sender"),
    ("a str ts", pack(env(ts="now")), "bad_field", "ts"),
    ("a negative ts", pack(env(ts=-1.0)), "bad_field", "ts"),
    ("a NaN ts", pack(env(ts=math.nan)), "bad_field", "ts"),
    ("an infinite ts", pack(env(ts=math.inf)), "bad_field", "ts"),
    ("a list payload", pack(env(payload=[1])), "bad_field", "payload"),
    ("a nil payload", pack(env(payload=None)), "bad_field", "payload"),
    ("an unknown type with a list payload", pack(env("Gossip", payload=[])), "bad_field", "payload"),
    ("a str nonce", payload("Heartbeat", **{**HB, "nonce": "1"}), "bad_field", "payload.nonce"),
    ("an int echo", payload("Heartbeat", **{**HB, "echo": 0}), "bad_field", "payload.echo"),
    ("a negative height", payload("Heartbeat", **{**HB, "height": -1}), "bad_field", "payload.height"),
    ("work with 0x", payload("Heartbeat", **{**HB, "work": "0x10"}), "bad_field", "payload.work"),
    (
        "no nonce",
        payload("Heartbeat", **{k: v for k, v in HB.items() if k != "nonce"}),
        "missing_field",
        "payload.nonce",
    ),
    ("a nil field", payload("Heartbeat", **{**HB, "tip": None}), "bad_field", "payload.tip"),
    ("a map as transaction", payload("NewTransaction", tx={"amount": 1}), "bad_field", "payload.tx"),
    ("a 5-element transaction", payload("NewTransaction", tx=[b"", b"", 1, 1, 1]), "bad_field", "payload.tx"),
    ("a str block", payload("NewBlock", block="block"), "bad_field", "payload.block"),
    ("a limit of 0", payload("RequestChain", locator=[], limit=0), "bad_field", "payload.limit"),
    ("a limit of 501", payload("RequestChain", locator=[], limit=501), "bad_field", "payload.limit"),
    ("a str locator", payload("RequestChain", locator="genesis", limit=1), "bad_field", "payload.locator"),
    (
        "an Error code of 65 characters",
        payload("Error", code="x" * 65, reason=""),
        "bad_field",
        "payload.code",
    ),
    ("2,000 nested arrays", nested(2_000), "bad_msgpack", ""),
    ("an array of 20,001 items", pack(env(payload={"x": [0] * 20_001})), "bad_msgpack", ""),
    ("a map of 257 entries", pack(env(payload={str(i): 0 for i in range(257)})), "bad_msgpack", ""),
    ("a str of 65,537 bytes", pack(env(payload={"x": "s" * 65_537})), "bad_msgpack", ""),
    ("a bin of 65,537 bytes", pack(env(payload={"x": b"b" * 65_537})), "bad_msgpack", ""),
    (
        "140,000 empty maps in 140 KB",
        pack(env(payload={"x": [[{}] * 20_000 for _ in range(7)]})),
        "too_many_objects",
        "",
    ),
]


@pytest.mark.parametrize(("case", "body", "code", "field"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_a_bad_body_disconnects_with_the_reason_logged(
    node: Node, case: str, body: bytes, code: str, field: str
) -> None:
    peer = established(node)
    peer.send_raw(frame(body), bad="framing: bad body")
    protocol_violation(node, peer, code, field)


@pytest.mark.parametrize("case", ["an array body", "no payload", "2,000 nested arrays", "a str nonce"])
def test_a_bad_body_before_the_handshake_is_refused(node: Node, case: str) -> None:
    (body, code) = next((b, c) for name, b, c, _ in BAD_BODIES if name == case)
    peer = node.peer()
    peer.send_raw(frame(body), bad="framing: bad body")
    refused(node, peer, f"protocol_error:{code}", "protocol_error")


def test_a_message_in_another_nodes_name_ends_the_connection(node: Node) -> None:
    peer = established(node)
    peer.send(
        "Heartbeat",
        heartbeat(PARAMS, peer.node_id, 5, False),
        sender=new_node_id(),
        bad="framing: another sender",
    )
    protocol_violation(node, peer, "bad_field", "sender")


def test_unknown_message_types_are_ignored_and_the_peer_stays(node: Node) -> None:
    peer = established(node)
    kinds = ["Inventory", "GetHeaders", "hello", "x" * 64, ""]
    for kind in kinds:
        peer.send_and_ping(kind, {"anything": [1, {"nested": b"\x00"}]}, bad="framing: unknown message type")
    for _ in range(100):
        peer.send("FutureMessage", {}, bad="framing: unknown message type")
    peer.ping()
    # The log lines were written before the echo; our reader thread may still be reading them.
    unknown = node.wait_until(
        lambda: (found := node.matching("unknown_message", peer=peer.node_id))[len(kinds) + 99 :] and found,
        what="105 unknown_message lines",
    )
    assert len(unknown) == len(kinds) + 100
    assert {e["type"] for e in unknown} == {*kinds, "FutureMessage"}
    assert all(e["level"] == "debug" for e in unknown)
    still_connected(node, peer)


def test_a_valid_nonce_at_the_uint64_limit_is_fine(node: Node) -> None:
    peer = established(node)
    peer.send("Heartbeat", heartbeat(PARAMS, peer.node_id, 2**64 - 1, False))
    peer.wait_for(lambda e: is_echo(e, 2**64 - 1))
    peer.send_and_ping("Heartbeat", heartbeat(PARAMS, peer.node_id, 0, True))  # unsolicited echo: ignored
    still_connected(node, peer)


def test_three_protocol_errors_from_one_node_id_ban_it(node: Node) -> None:
    key = Key()
    node_id = node_id_of(key.public)
    for attempt in range(3):
        peer = established(node, key=key)
        peer.send_raw(frame(b"\xc1"), bad="framing: repeated offence")
        if attempt < 2:
            assert peer.wait_closed() < AT_ONCE
            assert peer.errors() == ["protocol_error"]
    ban = node.wait_for("peer_banned", peer=node_id)
    assert ban["reason"] == "protocol_error:bad_msgpack"
    disconnected(node, peer, "banned", "misbehaviour", occurrence=3)
    again = node.peer(key=key)
    again.handshake()  # a node id ban is decided once the id is proven
    refused(node, again, "banned", "banned", after_hello=True)
    assert f"node:{node_id}" in (node.data_dir / "bans.json").read_text()


def test_the_node_survived_every_bad_frame(node: Node) -> None:
    assert node.alive
    peer = established(node)
    still_connected(node, peer)
    assert not node.matching("peer_task_failed")
