"""A Connection over memory streams: what a peer's frames around and after the handshake do.

The test plays the dialler with the node's own handshake state machine; the Connection under
test is the listener, with callbacks that record what the node would be told.
"""

import errno
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from trionode.chain.keys import KeyPair
from trionode.net import bans as bans_module
from trionode.net.bans import POINTS_PROTOCOL, BanList
from trionode.net.connection import Connection
from trionode.node.logging import make_capturing_logger
from trionode.wire.errors import (
    BAD_FIELD,
    BAD_MSGPACK,
    DUPLICATE_HELLO,
    EMPTY_FRAME,
    PROTOCOL_ERROR,
    TOO_MANY_PEERS,
    ProtocolError,
)
from trionode.wire.framing import MAX_FIRST_FRAME, FrameDecoder, encode_frame
from trionode.wire.handshake import Handshake
from trionode.wire.identity import NodeIdentity
from trionode.wire.messages import (
    PROTOCOL_VERSION,
    Envelope,
    Error,
    Heartbeat,
    Hello,
    HelloProof,
    Message,
    PeerInfo,
    decode_message,
    encode_message,
)
from trionode.wire.payloads import MAX_PEERS_BEFORE_HANDSHAKE, MAX_PEERS_PER_MESSAGE

NETWORK = bytes(range(32))
WALL = 1_800_000_000.0
LISTENER = NodeIdentity(KeyPair(hashlib.sha256(b"connection test listener").digest()))
DIALLER = NodeIdentity(KeyPair(hashlib.sha256(b"connection test dialler").digest()))
BAD_BODY = b"\xc1"  # the never-used msgpack byte


def hello(identity: NodeIdentity) -> Hello:
    return Hello(
        PROTOCOL_VERSION, NETWORK, identity.node_id, 0, 0, NETWORK, 1, "test", identity.key.public_key,
        os.urandom(16),
    )  # fmt: skip


def frame(message: Message, sender: bytes = DIALLER.node_id) -> bytes:
    return encode_message(message, sender, WALL)


def heartbeat(nonce: int, node_id: bytes = DIALLER.node_id) -> Heartbeat:
    return Heartbeat(node_id, 0, NETWORK, 1, nonce, False)


@dataclass
class Outcome:
    """What the node's callbacks heard, and what the dialler received."""

    conn: Connection
    established: int = 0
    delivered: list[Envelope] = field(default_factory=list)
    errors: list[ProtocolError] = field(default_factory=list)
    received: list[Envelope] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)

    def error_codes(self) -> list[str]:
        return [env.message.code for env in self.received if isinstance(env.message, Error)]


async def exchange(
    after_proof: bytes,
    *,
    handler_fails: bool = False,
    later: bytes = b"",
    proof_frame: Callable[[HelloProof], bytes] = frame,
) -> Outcome:
    """Complete a handshake as the dialler, sending ``after_proof`` in the same send as our
    HelloProof (one read for the node), then ``later`` on its own; read until the node closes.
    ``proof_frame`` sends something else in the HelloProof's place."""
    ours, theirs = trio.testing.memory_stream_pair()
    log: list[dict[str, Any]] = []
    conn = Connection(
        theirs,
        "10.0.0.9:40000",
        False,
        lambda: hello(LISTENER),
        LISTENER,
        lambda: WALL,
        make_capturing_logger(log),
    )
    outcome = Outcome(conn, log=log)

    async def on_established(c: Connection) -> bool:
        outcome.established += 1
        return True

    async def on_messages(c: Connection, envs: list[Envelope]) -> None:
        outcome.delivered += envs

    def on_protocol_error(c: Connection, exc: ProtocolError) -> None:
        outcome.errors.append(exc)
        if handler_fails:  # what a ban whose bans.json cannot be written used to do
            raise OSError(errno.ENOSPC, "No space left on device")

    with trio.fail_after(10):  # a hang fails the test instead of stalling the suite
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conn.run, on_established, on_messages, on_protocol_error)
            handshake = Handshake(hello(DIALLER), outbound=True, identity=DIALLER)
            await ours.send_all(b"".join(frame(m) for m in handshake.start()))
            decoder = FrameDecoder()
            while True:
                data = await ours.receive_some(65536)
                if not data:
                    break
                for body in decoder.feed(data):
                    env = decode_message(body)
                    outcome.received.append(env)
                    if not handshake.complete:
                        result = handshake.receive(env)
                        assert not result.close, result
                        if handshake.complete:
                            (proof,) = result.send
                            await ours.send_all(proof_frame(proof) + after_proof)
                            if later:
                                await ours.send_all(later)
    return outcome


async def test_a_bad_frame_in_the_read_of_the_hello_proof_is_an_established_peers_error() -> None:
    outcome = await exchange(encode_frame(BAD_BODY))
    assert outcome.established == 1  # the handshake was complete: the node registered the peer
    assert [e.code for e in outcome.errors] == [BAD_MSGPACK]
    assert outcome.conn.close_reason == f"protocol_error:{BAD_MSGPACK}"
    assert outcome.error_codes() == [PROTOCOL_ERROR]


async def test_messages_after_the_hello_proof_in_one_read_are_handled_up_to_a_bad_one() -> None:
    tail = frame(heartbeat(1)) + frame(heartbeat(2)) + encode_frame(BAD_BODY) + frame(heartbeat(3))
    outcome = await exchange(tail)
    assert [env.message.nonce for env in outcome.delivered if isinstance(env.message, Heartbeat)] == [1, 2]
    assert [e.code for e in outcome.errors] == [BAD_MSGPACK]
    assert outcome.conn.frames_in == 4  # Hello, HelloProof and the two good Heartbeats


async def test_a_bad_length_prefix_in_the_read_of_the_hello_proof_is_an_established_peers_error() -> None:
    outcome = await exchange(frame(heartbeat(1)) + b"\x00\x00\x00\x00")
    assert outcome.established == 1
    assert len(outcome.delivered) == 1
    assert [e.code for e in outcome.errors] == [EMPTY_FRAME]
    assert outcome.conn.close_reason == f"protocol_error:{EMPTY_FRAME}"


async def test_a_failing_protocol_error_handler_still_closes_only_this_connection() -> None:
    # The nursery of exchange() would raise the OSError if it escaped the connection.
    outcome = await exchange(b"", later=encode_frame(BAD_BODY), handler_fails=True)
    assert [e.code for e in outcome.errors] == [BAD_MSGPACK]
    assert outcome.conn.close_reason == f"protocol_error:{BAD_MSGPACK}"
    assert outcome.error_codes() == [PROTOCOL_ERROR]
    assert [e["event"] for e in outcome.log if e["level"] == "error"] == ["peer_task_failed"]


async def test_a_heartbeat_naming_another_node_is_a_protocol_error() -> None:
    stranger = NodeIdentity(KeyPair(hashlib.sha256(b"someone else").digest())).node_id
    outcome = await exchange(b"", later=frame(heartbeat(1)) + frame(heartbeat(2, node_id=stranger)))
    assert len(outcome.delivered) == 1  # the honest one before it
    (error,) = outcome.errors
    assert (error.code, error.field) == (BAD_FIELD, "payload.node_id")


@pytest.mark.parametrize("late", ["Hello", "HelloProof"])
async def test_a_handshake_message_after_the_handshake_is_a_protocol_error(late: str) -> None:
    message: Message = hello(DIALLER) if late == "Hello" else HelloProof(bytes(64))
    outcome = await exchange(b"", later=frame(heartbeat(1)) + frame(message))
    assert len(outcome.delivered) == 1
    (error,) = outcome.errors
    assert (error.code, error.field) == (DUPLICATE_HELLO, "type")
    assert outcome.conn.close_reason == f"protocol_error:{DUPLICATE_HELLO}"


def stranger_frame(proof: HelloProof) -> bytes:
    return frame(proof, sender=bytes(16))


def second_hello_frame(proof: HelloProof) -> bytes:
    return frame(hello(DIALLER))


@pytest.mark.parametrize(
    ("instead", "cause", "where"),
    [(stranger_frame, BAD_FIELD, "sender"), (second_hello_frame, DUPLICATE_HELLO, "type")],
)
async def test_a_bad_proof_step_is_a_protocol_error_with_its_cause(
    instead: Callable[[HelloProof], bytes], cause: str, where: str
) -> None:
    # protocol.md 3 and 6: a HelloProof in another node's name is bad_field at sender, a Hello
    # in its place duplicate_hello, as they are after the handshake; Error protocol_error, close.
    outcome = await exchange(b"", proof_frame=instead)
    assert outcome.established == 0
    (error,) = outcome.errors
    assert (error.code, error.field) == (cause, where)
    assert outcome.conn.close_reason == f"protocol_error:{cause}"
    assert outcome.error_codes() == [PROTOCOL_ERROR]


# ----------------------------------------------------------------- a refusal's peer list


def longest_entries(n: int) -> tuple[PeerInfo, ...]:
    name = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters, the longest DNS name
    return tuple(PeerInfo(f"{name}:65535", bytes(16), 1.5e9 + i) for i in range(n))


def test_the_largest_error_sent_before_a_handshake_fits_a_handshake_frame() -> None:
    error = Error(TOO_MANY_PEERS, "\U0001f600" * 1024, longest_entries(MAX_PEERS_BEFORE_HANDSHAKE))
    assert len(encode_message(error, LISTENER.node_id, WALL)) - 4 <= MAX_FIRST_FRAME
    # ...while the payload's own limit does not fit: hence the lower limit before a handshake.
    allowed = Error(TOO_MANY_PEERS, "", longest_entries(MAX_PEERS_PER_MESSAGE))
    assert len(encode_message(allowed, LISTENER.node_id, WALL)) - 4 > MAX_FIRST_FRAME


async def test_a_refusal_before_the_handshake_carries_only_what_fits_a_handshake_frame() -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    conn = Connection(
        theirs, "10.0.0.9:40000", False, lambda: hello(LISTENER), LISTENER, lambda: WALL,
        make_capturing_logger([]),
    )  # fmt: skip
    conn.close("too_many_peers", Error(TOO_MANY_PEERS, "full", longest_entries(MAX_PEERS_PER_MESSAGE)))

    async def nothing(*args: Any) -> Any:
        raise AssertionError("a refused connection reads nothing")

    await conn.run(nothing, nothing, lambda c, e: None)
    data = b""
    while chunk := await ours.receive_some(1 << 20):
        data += chunk
    (body,) = FrameDecoder(MAX_FIRST_FRAME, 2).feed(data)  # as the refused dialler reads it
    refusal = Error.decode(body)
    assert len(refusal.peers) == MAX_PEERS_BEFORE_HANDSHAKE


# ----------------------------------------------------------------- bans.json cannot be written


@pytest.fixture
def disk_full(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """bans.json writes fail with ENOSPC while the returned list is not empty."""
    failing = [Path("full")]

    def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
        if failing:
            raise OSError(errno.ENOSPC, "No space left on device")
        path.write_bytes(data)

    monkeypatch.setattr(bans_module, "write_atomic", write_atomic)
    return failing


def test_a_ban_that_cannot_be_saved_is_kept_logged_and_saved_later(
    tmp_path: Path, disk_full: list[Path]
) -> None:
    log: list[dict[str, Any]] = []
    bans = BanList(tmp_path / "bans.json", 3600.0, make_capturing_logger(log))
    key = "ip:10.0.0.9"
    for i in range(2):
        assert bans.penalize(key, POINTS_PROTOCOL, "protocol_error:bad_msgpack", WALL + i) is None
    until = bans.penalize(key, POINTS_PROTOCOL, "protocol_error:bad_msgpack", WALL + 2)  # no raise
    assert until == WALL + 2 + 3600.0
    assert bans.banned_until(key, WALL + 3) == until  # in force, though not on disk
    assert bans.unsaved and not (tmp_path / "bans.json").exists()
    (event,) = [e for e in log if e["event"] == "state_file_write_failed"]
    assert (event["level"], event["file"]) == ("error", "bans.json")
    assert "No space left" in event["detail"]
    disk_full.clear()  # space again: the next save writes every ban
    bans.retry_save()
    assert not bans.unsaved
    assert key in (tmp_path / "bans.json").read_text()


def test_an_expiry_that_cannot_be_saved_does_not_raise(tmp_path: Path, disk_full: list[Path]) -> None:
    bans = BanList(tmp_path / "bans.json", 10.0)
    bans.penalize("ip:10.0.0.9", 100, "invalid_block", WALL)
    assert bans.banned_until("ip:10.0.0.9", WALL + 11) is None  # expired; the save failed quietly
    assert bans.unsaved
    assert bans.unban("ip:10.0.0.8") is False
