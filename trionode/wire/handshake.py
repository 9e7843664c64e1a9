"""The handshake as a state machine: messages in, what to send and whether to close out.

The dialling side sends its Hello first; the accepting side waits for the peer's Hello,
checks it, and only then answers with its own Hello and a HelloProof (its signature over the
dialler's challenge), so a node never tells a stranger on another network anything but an
Error. The dialler checks that proof and answers with its own HelloProof over the accepting
side's challenge; each side's handshake is complete once it has checked the other's proof.
No I/O and no clock: the I/O layer sends ``start()``, feeds every received envelope to
``receive`` and closes the connection if the handshake has not completed within
``HANDSHAKE_TIMEOUT`` seconds (then sending ``Error("handshake_timeout")``).

    dialler                                   listener
       Hello {key, challenge c1}  ------------>  checks it
       <------------  Hello {key, challenge c2}, HelloProof {listener's sig}
       checks both, then
       HelloProof {dialler's sig}  ----------->  checks it: done

    Each signature covers the signer's role and both Hellos' node ids, keys and challenges.
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import Final

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
from trionode.wire.identity import DIALER, LISTENER, NodeIdentity, Side, node_id_of, proof_valid
from trionode.wire.messages import (
    PROTOCOL_VERSION,
    Envelope,
    Error,
    Hello,
    HelloProof,
    Message,
    UnknownMessage,
)

# Seconds from connect to a completed handshake (INTERFACE.md): long enough for a slow link,
# short enough that a silent connection cannot hold one of our peer slots.
HANDSHAKE_TIMEOUT: Final = 10.0
# Oldest protocol version we accept; newer peers are welcome and are expected to speak ours.
MIN_VERSION: Final = 1


class State(Enum):
    WAITING = "waiting"  # for the peer's Hello
    PROVING = "proving"  # Hello accepted; waiting for the peer's HelloProof
    DONE = "done"
    CLOSED = "closed"  # rejected or refused: the connection is to be closed


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """What to do after one received message.

    Send ``send`` in order; ``done`` is the peer's Hello on the call that completes the
    handshake. ``reject`` is an Error to send before closing; ``peer_error`` is an Error the
    peer sent us during the handshake (its reason for closing): close without answering.
    """

    send: list[Message] = field(default_factory=list)
    done: Hello | None = None
    reject: Error | None = None
    peer_error: Error | None = None

    @property
    def close(self) -> bool:
        return self.reject is not None or self.peer_error is not None


def second_hello() -> ProtocolError:
    """A Hello on a connection that already had one: a protocol error, and a close."""
    return ProtocolError(DUPLICATE_HELLO, "type", "second Hello on one connection")


def after_handshake(message: Hello | HelloProof) -> ProtocolError:
    """A handshake message on a connection whose handshake is complete (protocol.md 5): a
    protocol error, and a close. A HelloProof proves nothing twice; it is a peer out of step."""
    if isinstance(message, Hello):
        return second_hello()
    return ProtocolError(DUPLICATE_HELLO, "type", "HelloProof after the handshake")


class Handshake:
    def __init__(self, our_hello: Hello, outbound: bool, identity: NodeIdentity) -> None:
        if our_hello.node_id != identity.node_id:
            raise ValueError("our Hello must carry our identity's node id")
        self.our_hello = our_hello
        self.outbound = outbound
        self.identity = identity
        self.state = State.WAITING
        self.peer_hello: Hello | None = None
        # The challenge of a Hello refused as a self-connection that carried our own key too:
        # one of our own Hellos came back, so the address it was sent to leads to ourselves.
        self.reflected: bytes | None = None
        self._started = False

    @property
    def complete(self) -> bool:
        return self.state is State.DONE

    def start(self) -> list[Message]:
        """Messages to send as soon as the connection is up: our Hello if we dialled."""
        if self._started:
            raise RuntimeError("Handshake.start() called twice")
        self._started = True
        return [self.our_hello] if self.outbound else []

    def receive(self, envelope: Envelope) -> HandshakeResult:
        """Judge one received message; after completion only a second Hello or HelloProof
        matters. Raises ``ProtocolError`` where protocol.md names a cause the connection's other
        messages share: a second Hello (``duplicate_hello``, before or after completion), a
        HelloProof in another node's name (``bad_field`` at ``sender``)."""
        if not self._started:
            raise RuntimeError("call Handshake.start() before receive()")
        if self.state is State.CLOSED:
            raise RuntimeError("the handshake was rejected; the connection must be closed")
        msg = envelope.message
        if self.state is State.DONE:
            if isinstance(msg, (Hello, HelloProof)):
                raise after_handshake(msg)
            return HandshakeResult()
        if isinstance(msg, Error):
            self.state = State.CLOSED
            return HandshakeResult(peer_error=msg)
        if self.state is State.PROVING:
            assert self.peer_hello is not None
            if isinstance(msg, Hello):
                self.state = State.CLOSED
                raise second_hello()
            if not isinstance(msg, HelloProof):
                return self._reject(PROTOCOL_ERROR, f"expected HelloProof, got {_name(msg)}")
            if envelope.sender != self.peer_hello.node_id:
                self.state = State.CLOSED
                raise ProtocolError(BAD_FIELD, "sender", "not the node id of the peer's Hello")
            return self._check_proof(msg)
        if not isinstance(msg, Hello):
            return self._reject(PROTOCOL_ERROR, f"expected Hello first, got {_name(msg)}")
        ours = self.our_hello
        if msg.node_id != envelope.sender:
            return self._reject(PROTOCOL_ERROR, "Hello node_id differs from the envelope sender")
        if msg.version < MIN_VERSION:
            return self._reject(
                UNSUPPORTED_VERSION, f"version {msg.version}; this node speaks {PROTOCOL_VERSION}"
            )
        if msg.network != ours.network:
            return self._reject(WRONG_NETWORK, f"this node is on network {ours.network.hex()}")
        if msg.node_id == ours.node_id:
            if msg.key == ours.key:
                self.reflected = msg.challenge
            return self._reject(SELF_CONNECTION, "connected to ourselves")
        if node_id_of(msg.key) != msg.node_id:
            return self._reject(BAD_PROOF, "node_id is not the one of the Hello's key")
        self.state = State.PROVING
        self.peer_hello = msg
        if self.outbound:
            return HandshakeResult()  # the listener's HelloProof follows its Hello
        return HandshakeResult(send=[ours, self._proof()])

    def _sides(self) -> tuple[Side, Side]:
        """(dialler, listener) as their Hellos announced them."""
        peer = self.peer_hello
        assert peer is not None
        ours, theirs = (_side(self.our_hello), _side(peer))
        return (ours, theirs) if self.outbound else (theirs, ours)

    def _check_proof(self, msg: HelloProof) -> HandshakeResult:
        peer = self.peer_hello
        assert peer is not None
        role = LISTENER if self.outbound else DIALER  # the peer's role
        network = self.our_hello.network
        if not proof_valid(peer.key, msg.signature, role, network, *self._sides()):
            return self._reject(BAD_PROOF, "the HelloProof does not verify with the Hello's key")
        self.state = State.DONE
        return HandshakeResult(send=[self._proof()] if self.outbound else [], done=peer)

    def _proof(self) -> HelloProof:
        """Our signature over our role and the whole exchange."""
        role = DIALER if self.outbound else LISTENER
        return HelloProof(self.identity.prove(role, self.our_hello.network, *self._sides()))

    def _reject(self, code: str, reason: str) -> HandshakeResult:
        self.state = State.CLOSED
        return HandshakeResult(reject=Error(code, reason))


def _side(hello: Hello) -> Side:
    return Side(hello.node_id, hello.key, hello.challenge)


def _name(msg: object) -> str:
    return msg.type if isinstance(msg, UnknownMessage) else type(msg).__name__
