from typing import Any

import pytest
from msgspec.structs import replace

from trionode.chain.keys import KeyPair
from trionode.wire.errors import (
    BAD_FIELD,
    BAD_PROOF,
    DUPLICATE_HELLO,
    PROTOCOL_ERROR,
    SELF_CONNECTION,
    UNSUPPORTED_VERSION,
    WRONG_NETWORK,
    ProtocolError,
)
from trionode.wire.framing import FrameDecoder
from trionode.wire.handshake import HANDSHAKE_TIMEOUT, Handshake, HandshakeResult, State
from trionode.wire.identity import DIALER, LISTENER, Side
from trionode.wire.messages import (
    Envelope,
    Error,
    Heartbeat,
    Hello,
    HelloProof,
    Message,
    UnknownMessage,
    decode_message,
    encode_message,
)

from .factories import IDENTITY, NETWORK, NODE, OTHER_IDENTITY, OTHER_NODE, hello, one_of_each

OURS = hello(node_id=NODE, challenge=b"o" * 16)
THEIRS = hello(
    node_id=OTHER_NODE, key=OTHER_IDENTITY.key.public_key, challenge=b"t" * 16, listen_port=0, agent="other"
)


def env(message: Any, sender: bytes = OTHER_NODE) -> Envelope:
    name = message.type if isinstance(message, UnknownMessage) else message.TYPE
    return Envelope(name, sender, 1.0, message)


def theirs(**changes: Any) -> Hello:
    """Their Hello with fields changed (their key and node id stay matched)."""
    return replace(THEIRS, **changes)


def side(hello: Hello) -> Side:
    return Side(hello.node_id, hello.key, hello.challenge)


def sides(outbound: bool) -> tuple[Side, Side]:
    """(dialler, listener): we dial when ``outbound``."""
    return (side(OURS), side(THEIRS)) if outbound else (side(THEIRS), side(OURS))


def their_proof(outbound: bool) -> HelloProof:
    """Their honest proof, in their role."""
    return HelloProof(OTHER_IDENTITY.prove(LISTENER if outbound else DIALER, NETWORK, *sides(outbound)))


def our_proof(outbound: bool) -> HelloProof:
    return HelloProof(IDENTITY.prove(DIALER if outbound else LISTENER, NETWORK, *sides(outbound)))


def started(outbound: bool) -> Handshake:
    hs = Handshake(OURS, outbound=outbound, identity=IDENTITY)
    assert hs.start() == ([OURS] if outbound else [])
    return hs


def assert_rejected(result: HandshakeResult, hs: Handshake, code: str) -> None:
    assert result.reject is not None and result.reject.code == code
    assert result.close and result.done is None and result.send == []
    assert hs.state is State.CLOSED and not hs.complete


def test_timeout_is_ten_seconds() -> None:
    assert HANDSHAKE_TIMEOUT == 10.0


def test_outbound_sends_hello_then_checks_their_proof_and_answers_with_its_own() -> None:
    hs = started(outbound=True)
    assert hs.receive(env(THEIRS)) == HandshakeResult()
    assert hs.state is State.PROVING
    result = hs.receive(env(their_proof(True)))
    assert result == HandshakeResult(send=[our_proof(True)], done=THEIRS)
    assert not result.close
    assert hs.complete and hs.peer_hello == THEIRS


def test_inbound_waits_answers_with_hello_and_proof_then_checks_theirs() -> None:
    hs = started(outbound=False)
    assert hs.receive(env(THEIRS)) == HandshakeResult(send=[OURS, our_proof(False)])
    assert not hs.complete
    assert hs.receive(env(their_proof(False))) == HandshakeResult(done=THEIRS)
    assert hs.complete


@pytest.mark.parametrize("outbound", [True, False])
def test_a_hello_whose_node_id_is_not_its_keys_is_refused(outbound: bool) -> None:
    # Claiming a node id (ours, here another's) without its key: the impostor of issue 6.
    hs = started(outbound)
    impostor = theirs(key=KeyPair(bytes(32)).public_key)
    assert_rejected(hs.receive(env(impostor)), hs, BAD_PROOF)


def forged(outbound: bool, how: str) -> HelloProof:
    """Their proof, wrong in one way."""
    role, other_role = (LISTENER, DIALER) if outbound else (DIALER, LISTENER)
    dialer, listener = sides(outbound)
    fresh = Side(NODE, IDENTITY.key.public_key, b"x" * 16)
    if how == "garbage":
        return HelloProof(bytes(64))
    if how == "the other role":  # what a proof relayed from the other direction would be
        return HelloProof(OTHER_IDENTITY.prove(other_role, NETWORK, dialer, listener))
    if how == "another exchange":  # made for another challenge of ours
        mixed = (fresh, listener) if outbound else (dialer, fresh)
        return HelloProof(OTHER_IDENTITY.prove(role, NETWORK, *mixed))
    if how == "another network":
        return HelloProof(OTHER_IDENTITY.prove(role, bytes(32), dialer, listener))
    assert how == "another key"
    return HelloProof(IDENTITY.prove(role, NETWORK, dialer, listener))


@pytest.mark.parametrize("outbound", [True, False])
@pytest.mark.parametrize(
    "how", ["garbage", "the other role", "another exchange", "another network", "another key"]
)
def test_a_proof_that_does_not_verify_is_refused(outbound: bool, how: str) -> None:
    hs = started(outbound)
    hs.receive(env(THEIRS))
    assert_rejected(hs.receive(env(forged(outbound, how))), hs, BAD_PROOF)


def test_a_listeners_proof_relayed_from_another_connection_is_refused() -> None:
    """The relay of protocol.md 5.1: M dials L claiming to be X, and dials X claiming to be L
    with L's challenge, hoping X's proof on that connection passes on the first."""
    x, victim_id = OTHER_IDENTITY, IDENTITY
    l_hello = hello(node_id=victim_id.node_id, key=victim_id.key.public_key, challenge=b"L" * 16)
    m_as_x = hello(node_id=x.node_id, key=x.key.public_key, challenge=b"M" * 16)
    victim = Handshake(l_hello, outbound=False, identity=victim_id)
    victim.start()
    assert victim.receive(env(m_as_x, sender=x.node_id)).send[0] == l_hello
    m_as_l = hello(node_id=victim_id.node_id, key=victim_id.key.public_key, challenge=l_hello.challenge)
    x_hello = hello(node_id=x.node_id, key=x.key.public_key, challenge=b"X" * 16)
    real_x = Handshake(x_hello, outbound=False, identity=x)
    real_x.start()
    relayed = real_x.receive(env(m_as_l, sender=victim_id.node_id)).send[1]
    assert isinstance(relayed, HelloProof)
    assert_rejected(victim.receive(env(relayed, sender=x.node_id)), victim, BAD_PROOF)


@pytest.mark.parametrize("outbound", [True, False])
def test_anything_but_a_proof_after_the_hello_is_a_protocol_error(outbound: bool) -> None:
    hs = started(outbound)
    hs.receive(env(THEIRS))
    assert_rejected(hs.receive(env(Heartbeat(OTHER_NODE, 1, NETWORK, 1, 1, False))), hs, PROTOCOL_ERROR)


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
    assert_rejected(hs.receive(env(theirs(version=version))), hs, UNSUPPORTED_VERSION)


@pytest.mark.parametrize("version", [1, 2, 2**64 - 1])
def test_newer_versions_are_accepted(version: int) -> None:
    hs = started(outbound=False)
    assert hs.receive(env(theirs(version=version))).send == [OURS, our_proof(False)]


@pytest.mark.parametrize("outbound", [True, False])
def test_wrong_network(outbound: bool) -> None:
    hs = started(outbound)
    other = theirs(network=bytes(32))
    result = hs.receive(env(other))
    assert_rejected(result, hs, WRONG_NETWORK)
    assert result.reject is not None and NETWORK.hex() in result.reject.reason


def test_version_is_judged_before_network() -> None:
    hs = started(outbound=False)
    result = hs.receive(env(theirs(network=bytes(32), version=0)))
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
    hs.receive(env(their_proof(hs.outbound)))
    with pytest.raises(ProtocolError) as info:
        hs.receive(env(THEIRS))
    assert info.value.code == DUPLICATE_HELLO


@pytest.mark.parametrize("outbound", [True, False])
def test_a_hello_proof_after_completion_is_a_protocol_error(outbound: bool) -> None:
    hs = started(outbound)
    hs.receive(env(THEIRS))
    hs.receive(env(their_proof(hs.outbound)))
    with pytest.raises(ProtocolError) as info:
        hs.receive(env(their_proof(hs.outbound)))
    assert (info.value.code, info.value.field) == (DUPLICATE_HELLO, "type")
    assert "HelloProof" in info.value.detail


@pytest.mark.parametrize("outbound", [True, False])
def test_a_second_hello_during_the_handshake_is_a_duplicate_hello_too(outbound: bool) -> None:
    # The same cause as after it (protocol.md 6): one rule, whatever the state.
    hs = started(outbound)
    hs.receive(env(THEIRS))
    with pytest.raises(ProtocolError) as info:
        hs.receive(env(THEIRS))
    assert (info.value.code, info.value.field) == (DUPLICATE_HELLO, "type")
    assert hs.state is State.CLOSED and not hs.complete


@pytest.mark.parametrize("outbound", [True, False])
def test_a_proof_in_another_nodes_name_is_a_bad_sender(outbound: bool) -> None:
    # protocol.md 3: every message after the Hello carries the node id that Hello claimed.
    hs = started(outbound)
    hs.receive(env(THEIRS))
    with pytest.raises(ProtocolError) as info:
        hs.receive(env(their_proof(outbound), sender=bytes(16)))
    assert (info.value.code, info.value.field) == (BAD_FIELD, "sender")
    assert hs.state is State.CLOSED and not hs.complete


def test_other_messages_after_completion_need_nothing() -> None:
    hs = started(outbound=False)
    hs.receive(env(THEIRS))
    hs.receive(env(their_proof(hs.outbound)))
    for message in one_of_each()[2:]:  # all but the handshake's own Hello and HelloProof
        assert hs.receive(env(message)) == HandshakeResult()
    assert hs.complete


def test_misuse_is_a_programming_error() -> None:
    hs = Handshake(OURS, outbound=True, identity=IDENTITY)
    with pytest.raises(RuntimeError):
        hs.receive(env(THEIRS))
    hs.start()
    with pytest.raises(RuntimeError):
        hs.start()
    hs.receive(env(theirs(network=bytes(32))))
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
    dialer = Handshake(OURS, outbound=True, identity=IDENTITY)
    listener = Handshake(THEIRS, outbound=False, identity=OTHER_IDENTITY)
    exchange(dialer, listener, NODE, OTHER_NODE)
    assert dialer.complete and listener.complete
    assert dialer.peer_hello == THEIRS and listener.peer_hello == OURS


def test_our_hello_must_carry_our_identity() -> None:
    with pytest.raises(ValueError):
        Handshake(THEIRS, outbound=True, identity=IDENTITY)


def test_dialling_ourselves_is_refused_on_the_accepting_side() -> None:
    dialer = Handshake(OURS, outbound=True, identity=IDENTITY)
    listener = Handshake(OURS, outbound=False, identity=IDENTITY)
    _, listener_results = exchange(dialer, listener, NODE, NODE)
    assert listener_results[-1].reject == Error(SELF_CONNECTION, "connected to ourselves")
    assert not dialer.complete and not listener.complete
