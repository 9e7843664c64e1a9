from typing import Any

import pytest

from trionode.wire.errors import (
    DUPLICATE_HELLO,
    PROTOCOL_ERROR,
    SELF_CONNECTION,
    UNSUPPORTED_VERSION,
    WRONG_NETWORK,
    ProtocolError,
)
from trionode.wire.framing import FrameDecoder
from trionode.wire.handshake import HANDSHAKE_TIMEOUT, Handshake, HandshakeResult, State
from trionode.wire.messages import (
    Envelope,
    Error,
    Hello,
    Message,
    UnknownMessage,
    decode_message,
    encode_message,
)

from .factories import NETWORK, NODE, OTHER_NODE, hello, one_of_each

OURS = hello(node_id=NODE)
THEIRS = hello(node_id=OTHER_NODE, listen_port=0, agent="other")


def env(message: Any, sender: bytes = OTHER_NODE) -> Envelope:
    name = message.type if isinstance(message, UnknownMessage) else message.TYPE
    return Envelope(name, sender, 1.0, message)


def started(outbound: bool) -> Handshake:
    hs = Handshake(OURS, outbound=outbound)
    assert hs.start() == ([OURS] if outbound else [])
    return hs


def assert_rejected(result: HandshakeResult, hs: Handshake, code: str) -> None:
    assert result.reject is not None and result.reject.code == code
    assert result.close and result.done is None and result.send == []
    assert hs.state is State.CLOSED and not hs.complete


def test_timeout_is_ten_seconds() -> None:
    assert HANDSHAKE_TIMEOUT == 10.0


def test_outbound_sends_hello_first_then_completes_on_theirs() -> None:
    hs = started(outbound=True)
    result = hs.receive(env(THEIRS))
    assert result == HandshakeResult(send=[], done=THEIRS)
    assert not result.close
    assert hs.complete and hs.peer_hello == THEIRS


def test_inbound_waits_then_answers_with_its_hello() -> None:
    hs = started(outbound=False)
    result = hs.receive(env(THEIRS))
    assert result == HandshakeResult(send=[OURS], done=THEIRS)
    assert hs.complete


@pytest.mark.parametrize("outbound", [True, False])
@pytest.mark.parametrize(
    "message",
    [m for m in one_of_each() if not isinstance(m, (Hello, Error))] + [UnknownMessage("Future")],
    ids=lambda m: getattr(m, "TYPE", "Unknown"),
)
def test_anything_but_hello_first_is_a_protocol_error(outbound: bool, message: Message) -> None:
    hs = started(outbound)
    assert_rejected(hs.receive(env(message)), hs, PROTOCOL_ERROR)


@pytest.mark.parametrize("outbound", [True, False])
def test_an_error_from_the_peer_closes_without_an_answer(outbound: bool) -> None:
    hs = started(outbound)
    refusal = Error(WRONG_NETWORK, "not ours")
    result = hs.receive(env(refusal))
    assert result == HandshakeResult(peer_error=refusal)
    assert result.close and hs.state is State.CLOSED


@pytest.mark.parametrize("version", [0, -1, -(2**63)])
def test_old_versions_are_unsupported(version: int) -> None:
    hs = started(outbound=False)
    assert_rejected(hs.receive(env(hello(node_id=OTHER_NODE, version=version))), hs, UNSUPPORTED_VERSION)


@pytest.mark.parametrize("version", [1, 2, 2**64 - 1])
def test_newer_versions_are_accepted(version: int) -> None:
    hs = started(outbound=False)
    assert hs.receive(env(hello(node_id=OTHER_NODE, version=version))).done is not None


@pytest.mark.parametrize("outbound", [True, False])
def test_wrong_network(outbound: bool) -> None:
    hs = started(outbound)
    other = hello(node_id=OTHER_NODE, network=bytes(32))
    result = hs.receive(env(other))
    assert_rejected(result, hs, WRONG_NETWORK)
    assert result.reject is not None and NETWORK.hex() in result.reject.reason


def test_version_is_judged_before_network() -> None:
    hs = started(outbound=False)
    result = hs.receive(env(hello(node_id=OTHER_NODE, network=bytes(32), version=0)))
    assert_rejected(result, hs, UNSUPPORTED_VERSION)


@pytest.mark.parametrize("outbound", [True, False])
def test_self_connection(outbound: bool) -> None:
    hs = started(outbound)
    assert_rejected(hs.receive(env(hello(node_id=NODE), sender=NODE)), hs, SELF_CONNECTION)


def test_hello_node_id_must_match_the_sender() -> None:
    hs = started(outbound=False)
    assert_rejected(hs.receive(env(THEIRS, sender=bytes(16))), hs, PROTOCOL_ERROR)


def test_a_second_hello_is_a_protocol_error() -> None:
    hs = started(outbound=True)
    hs.receive(env(THEIRS))
    with pytest.raises(ProtocolError) as info:
        hs.receive(env(THEIRS))
    assert info.value.code == DUPLICATE_HELLO


def test_other_messages_after_completion_need_nothing() -> None:
    hs = started(outbound=False)
    hs.receive(env(THEIRS))
    for message in one_of_each()[1:]:
        assert hs.receive(env(message)) == HandshakeResult()
    assert hs.complete


def test_misuse_is_a_programming_error() -> None:
    hs = Handshake(OURS, outbound=True)
    with pytest.raises(RuntimeError):
        hs.receive(env(THEIRS))
    hs.start()
    with pytest.raises(RuntimeError):
        hs.start()
    hs.receive(env(hello(node_id=OTHER_NODE, network=bytes(32))))
    with pytest.raises(RuntimeError):
        hs.receive(env(THEIRS))


def exchange(
    a: Handshake, b: Handshake, a_id: bytes, b_id: bytes
) -> tuple[list[HandshakeResult], list[HandshakeResult]]:
    """Run two handshakes against each other through real frames until neither has anything to send."""
    results: tuple[list[HandshakeResult], list[HandshakeResult]] = ([], [])
    pending = [(0, m) for m in a.start()] + [(1, m) for m in b.start()]
    sides = ((a, a_id), (b, b_id))
    while pending:
        origin, message = pending.pop(0)
        target, _ = sides[1 - origin]
        (frame,) = FrameDecoder().feed(encode_message(message, sides[origin][1], 2.0))
        result = target.receive(decode_message(frame))
        results[1 - origin].append(result)
        pending += [(1 - origin, m) for m in result.send]
        if result.reject is not None:
            pending.append((1 - origin, result.reject))
        if result.close:
            break
    return results


def test_two_nodes_complete_through_real_frames() -> None:
    dialer, listener = Handshake(OURS, outbound=True), Handshake(THEIRS, outbound=False)
    exchange(dialer, listener, NODE, OTHER_NODE)
    assert dialer.peer_hello == THEIRS and listener.peer_hello == OURS


def test_dialling_ourselves_is_refused_on_the_accepting_side() -> None:
    dialer, listener = Handshake(OURS, outbound=True), Handshake(OURS, outbound=False)
    _, listener_results = exchange(dialer, listener, NODE, NODE)
    assert listener_results[-1].reject == Error(SELF_CONNECTION, "connected to ourselves")
    assert not dialer.complete and not listener.complete
