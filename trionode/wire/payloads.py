"""The nine v1 message types as frozen msgspec Structs, each validating its own payload, and
the envelope that carries them.

Representation: hashes (network, tip, locator entries) are 32 ``bytes`` and node ids 16
``bytes``, as in the chain core; the wire spells both as lowercase hex str. ``work`` is an
``int``; on the wire it is lowercase hex (it outgrows uint64). ``from_payload`` checks every
field it knows and ignores the others (forward compatibility); constructors do not check, so
build messages from valid values (the round-trip tests hold the encoder to that).
"""

from typing import Any, ClassVar, Final, Self

import msgspec

from trionode.chain.block import Block
from trionode.chain.encoding import UInt64
from trionode.chain.errors import DecodeError
from trionode.chain.keys import PUBKEY_LEN, SIGNATURE_LEN
from trionode.chain.locator import MAX_LOCATOR
from trionode.chain.transaction import Transaction
from trionode.wire import fields as f
from trionode.wire.addresses import MAX_ADDRESS_LEN, AddressError, parse_address
from trionode.wire.codec import array_header, pack
from trionode.wire.errors import BAD_FIELD, ProtocolError
from trionode.wire.identity import CHALLENGE_BYTES

# The version this module speaks (protocol.md); Hello carries it, the handshake judges it.
PROTOCOL_VERSION: Final = 1
# Blocks in one ResponseChain (and the most a RequestChain may ask for): a sync batch that
# fits a frame for blocks of up to ~8 KB; a responder sends fewer when they do not fit.
MAX_BLOCKS_PER_RESPONSE: Final = 500
# Peers in one PeerDiscovery or Error: plenty to find the network. An entry is at most 334
# bytes packed (a 262-character address), so 1,000 of them are up to ~334 KB.
MAX_PEERS_PER_MESSAGE: Final = 1000
# Peers trionode puts in an Error sent before the handshake is complete: the peer then takes
# frames of at most framing.MAX_FIRST_FRAME (131,072 bytes), and 300 entries of 334 bytes plus
# a 1,024-character reason (4 KiB of UTF-8 at most) and the envelope fit with room to spare.
MAX_PEERS_BEFORE_HANDSHAKE: Final = 300
# Agent strings are for logs ("trionode/0.1.0"), not for essays.
MAX_AGENT_LEN: Final = 64
# Error codes are snake_case identifiers; a reason is one human sentence or a short list.
MAX_ERROR_CODE_LEN: Final = 64
MAX_ERROR_REASON_LEN: Final = 1024
# TCP ports are 16-bit; listen_port 0 means "accepts no connections".
MAX_PORT: Final = 65535


class Message:
    """Base of the typed messages: ``TYPE`` is the envelope's ``type``."""

    __slots__ = ()
    TYPE: ClassVar[str]

    def to_payload(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_payload(cls, payload: dict[Any, Any]) -> Self:
        raise NotImplementedError

    def payload_bytes(self) -> bytes:
        """The packed payload map; block-carrying types splice in cached transaction bytes."""
        return pack(self.to_payload())

    def encode(self, sender: bytes, ts: float) -> bytes:
        """This message as a complete frame (``messages.encode_message``)."""
        from trionode.wire.messages import encode_message  # here: messages imports us

        return encode_message(self, sender, ts)

    @classmethod
    def decode(cls, body: bytes) -> Self:
        """A frame body (no length prefix) that must carry this type (``messages.decode_message``);
        ``ProtocolError`` for anything invalid, a body of another type included."""
        from trionode.wire.messages import decode_message  # here: messages imports us

        envelope = decode_message(body)
        message = envelope.message
        if not isinstance(message, cls):
            raise ProtocolError(BAD_FIELD, "type", f"expected {cls.TYPE}, got {envelope.type}")
        return message


def _chain_error(exc: DecodeError) -> ProtocolError:
    detail = exc.detail.removeprefix(f"{exc.field}: ")
    return f.bad(exc.field, detail)


def block_bytes(block: Block) -> bytes:
    """``pack(block.to_wire())`` without rebuilding it: each transaction keeps its encoding."""
    txs = block.txs
    return b"".join(
        [b"\x92", pack(block.header.to_wire()), array_header(len(txs)), *[tx.encoded for tx in txs]]
    )


class Hello(Message, msgspec.Struct, frozen=True, gc=False):
    TYPE: ClassVar[str] = "Hello"
    version: int
    network: bytes
    node_id: bytes
    listen_port: int  # 0: this node accepts no connections
    height: int
    tip: bytes
    work: int
    agent: str
    key: bytes  # the Ed25519 public key whose node_id_of is node_id
    challenge: bytes  # fresh random bytes the other side must sign (HelloProof)

    def to_payload(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "network": self.network.hex(),
            "node_id": self.node_id.hex(),
            "listen_port": self.listen_port,
            "height": self.height,
            "tip": self.tip.hex(),
            "work": f.work_hex(self.work),
            "agent": self.agent,
            "key": self.key.hex(),
            "challenge": self.challenge.hex(),
        }

    @classmethod
    def from_payload(cls, payload: dict[Any, Any]) -> Self:
        # Any int is a version here: the handshake, not the decoder, refuses old ones.
        return cls(
            version=f.want_int(f.get(payload, "version"), "payload.version", -(2**63)),
            network=f.want_hash(f.get(payload, "network"), "payload.network"),
            node_id=f.want_node_id(f.get(payload, "node_id"), "payload.node_id"),
            listen_port=f.want_int(f.get(payload, "listen_port"), "payload.listen_port", 0, MAX_PORT),
            height=f.want_int(f.get(payload, "height"), "payload.height"),
            tip=f.want_hash(f.get(payload, "tip"), "payload.tip"),
            work=f.want_work(f.get(payload, "work"), "payload.work"),
            agent=f.want_str(f.get(payload, "agent"), "payload.agent", MAX_AGENT_LEN),
            key=f.want_hex(f.get(payload, "key"), "payload.key", PUBKEY_LEN),
            challenge=f.want_hex(f.get(payload, "challenge"), "payload.challenge", CHALLENGE_BYTES),
        )


class HelloProof(Message, msgspec.Struct, frozen=True, gc=False):
    """The handshake's second step: the sender's signature over the other side's challenge."""

    TYPE: ClassVar[str] = "HelloProof"
    signature: bytes

    def to_payload(self) -> dict[str, Any]:
        return {"signature": self.signature.hex()}

    @classmethod
    def from_payload(cls, payload: dict[Any, Any]) -> Self:
        return cls(f.want_hex(f.get(payload, "signature"), "payload.signature", SIGNATURE_LEN))


class NewTransaction(Message, msgspec.Struct, frozen=True, gc=False):
    TYPE: ClassVar[str] = "NewTransaction"
    tx: Transaction

    def to_payload(self) -> dict[str, Any]:
        return {"tx": self.tx.to_wire()}

    def payload_bytes(self) -> bytes:
        return b"\x81\xa2tx" + self.tx.encoded

    @classmethod
    def from_payload(cls, payload: dict[Any, Any]) -> Self:
        raw = f.get(payload, "tx")
        try:
            return cls(Transaction.from_wire(raw, "payload.tx"))
        except DecodeError as exc:
            raise _chain_error(exc) from None


class NewBlock(Message, msgspec.Struct, frozen=True, gc=False):
    TYPE: ClassVar[str] = "NewBlock"
    block: Block

    def to_payload(self) -> dict[str, Any]:
        return {"block": self.block.to_wire()}

    def payload_bytes(self) -> bytes:
        return b"\x81\xa5block" + block_bytes(self.block)

    @classmethod
    def from_payload(cls, payload: dict[Any, Any]) -> Self:
        raw = f.get(payload, "block")
        try:
            return cls(Block.from_wire(raw, "payload.block"))
        except DecodeError as exc:
            raise _chain_error(exc) from None


class RequestChain(Message, msgspec.Struct, frozen=True, gc=False):
    """Blocks after the first locator hash the responder has on its main chain.

    An empty locator means "from genesis" (the answer starts at height 0).
    """

    TYPE: ClassVar[str] = "RequestChain"
    locator: list[bytes]
    limit: int

    def to_payload(self) -> dict[str, Any]:
        return {"locator": [h.hex() for h in self.locator], "limit": self.limit}

    @classmethod
    def from_payload(cls, payload: dict[Any, Any]) -> Self:
        raw = f.want_list(f.get(payload, "locator"), "payload.locator", MAX_LOCATOR)
        locator = [f.want_hash(h, f"payload.locator[{i}]") for i, h in enumerate(raw)]
        limit = f.want_int(f.get(payload, "limit"), "payload.limit", 1, MAX_BLOCKS_PER_RESPONSE)
        return cls(locator, limit)


class ResponseChain(Message, msgspec.Struct, frozen=True, gc=False):
    TYPE: ClassVar[str] = "ResponseChain"
    blocks: list[Block]

    def to_payload(self) -> dict[str, Any]:
        return {"blocks": [b.to_wire() for b in self.blocks]}

    def payload_bytes(self) -> bytes:
        parts = [b"\x81\xa6blocks", array_header(len(self.blocks))]
        parts.extend(block_bytes(b) for b in self.blocks)
        return b"".join(parts)

    @classmethod
    def from_payload(cls, payload: dict[Any, Any]) -> Self:
        raw = f.want_list(f.get(payload, "blocks"), "payload.blocks", MAX_BLOCKS_PER_RESPONSE)
        try:
            return cls([Block.from_wire(b, f"payload.blocks[{i}]") for i, b in enumerate(raw)])
        except DecodeError as exc:
            raise _chain_error(exc) from None


class PeerInfo(msgspec.Struct, frozen=True, gc=False):
    """One peer-table entry as peers share it; ``address`` is where that peer listens."""

    address: str
    node_id: bytes
    last_seen: float

    def to_wire(self) -> dict[str, Any]:
        return {"address": self.address, "node_id": self.node_id.hex(), "last_seen": self.last_seen}

    @classmethod
    def from_wire(cls, value: Any, field: str) -> "PeerInfo":
        entry = f.want_map(value, field)
        address = f.want_str(f.get(entry, "address", field), f"{field}.address", MAX_ADDRESS_LEN)
        try:
            parse_address(address)
        except AddressError as exc:
            raise f.bad(f"{field}.address", str(exc)) from None
        node_id = f.want_node_id(f.get(entry, "node_id", field), f"{field}.node_id")
        last_seen = f.want_time(f.get(entry, "last_seen", field), f"{field}.last_seen")
        return cls(address, node_id, last_seen)


class PeerDiscovery(Message, msgspec.Struct, frozen=True, gc=False):
    """``request`` true asks the receiver for its peers; the answer has ``request`` false."""

    TYPE: ClassVar[str] = "PeerDiscovery"
    request: bool
    peers: list[PeerInfo]

    def to_payload(self) -> dict[str, Any]:
        return {"request": self.request, "peers": [p.to_wire() for p in self.peers]}

    @classmethod
    def from_payload(cls, payload: dict[Any, Any]) -> Self:
        request = f.want_bool(f.get(payload, "request"), "payload.request")
        raw = f.want_list(f.get(payload, "peers"), "payload.peers", MAX_PEERS_PER_MESSAGE)
        return cls(request, [PeerInfo.from_wire(p, f"payload.peers[{i}]") for i, p in enumerate(raw)])


class HeartbeatPayload(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A Heartbeat's payload as it is on the wire: the compiled decoder's schema
    (``fastpath``), and what ``Heartbeat.payload_bytes`` encodes (same bytes as packing
    ``to_payload``: msgspec also writes the shortest form, in field order)."""

    node_id: f.NodeIdHex
    height: UInt64
    tip: f.HashHex
    work: f.WorkHex
    nonce: UInt64
    echo: bool


_encode: Final = msgspec.msgpack.Encoder().encode


class Heartbeat(Message, msgspec.Struct, frozen=True, gc=False):
    """``echo`` false asks for an answer: a Heartbeat with ``echo`` true and the same ``nonce``."""

    TYPE: ClassVar[str] = "Heartbeat"
    node_id: bytes
    height: int
    tip: bytes
    work: int
    nonce: int
    echo: bool

    def _wire(self) -> HeartbeatPayload:
        return HeartbeatPayload(
            self.node_id.hex(), self.height, self.tip.hex(), f.work_hex(self.work), self.nonce, self.echo
        )

    def to_payload(self) -> dict[str, Any]:
        return msgspec.structs.asdict(self._wire())

    def payload_bytes(self) -> bytes:
        return _encode(self._wire())

    @classmethod
    def from_payload(cls, payload: dict[Any, Any]) -> Self:
        return cls(
            node_id=f.want_node_id(f.get(payload, "node_id"), "payload.node_id"),
            height=f.want_int(f.get(payload, "height"), "payload.height"),
            tip=f.want_hash(f.get(payload, "tip"), "payload.tip"),
            work=f.want_work(f.get(payload, "work"), "payload.work"),
            nonce=f.want_int(f.get(payload, "nonce"), "payload.nonce"),
            echo=f.want_bool(f.get(payload, "echo"), "payload.echo"),
        )


class Error(Message, msgspec.Struct, frozen=True, gc=False):
    """Why the sender is about to close (codes in ``trionode.wire.errors``); sent, then closed."""

    TYPE: ClassVar[str] = "Error"
    code: str
    reason: str
    # Optional: other nodes to try, sent with ``too_many_peers`` so that a node whose every
    # seed is full is not left alone (omitted from the payload when empty).
    peers: tuple[PeerInfo, ...] = ()

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"code": self.code, "reason": self.reason}
        if self.peers:
            payload["peers"] = [p.to_wire() for p in self.peers]
        return payload

    @classmethod
    def from_payload(cls, payload: dict[Any, Any]) -> Self:
        raw = payload.get("peers", [])
        peers = f.want_list(raw, "payload.peers", MAX_PEERS_PER_MESSAGE)
        return cls(
            code=f.want_str(f.get(payload, "code"), "payload.code", MAX_ERROR_CODE_LEN),
            reason=f.want_str(f.get(payload, "reason"), "payload.reason", MAX_ERROR_REASON_LEN),
            peers=tuple(PeerInfo.from_wire(p, f"payload.peers[{i}]") for i, p in enumerate(peers)),
        )


AnyMessage = (
    Hello
    | HelloProof
    | NewTransaction
    | NewBlock
    | RequestChain
    | ResponseChain
    | PeerDiscovery
    | Heartbeat
    | Error
)


class UnknownMessage(msgspec.Struct, frozen=True, gc=False):
    """A message of a type this version does not know; its payload is dropped unread."""

    type: str


# The envelope's layout as ``messages.encode_message`` writes it (and ``fastpath`` expects it):
# a 4-entry map of "type" and the type name, "sender" and the node id in hex, "ts" and a
# float64 (0xcb, how msgpack writes every Python float), then "payload" and the payload map.
def envelope_head(type_name: str) -> bytes:
    """The envelope's bytes up to the sender's value."""
    return b"\x84" + pack("type") + pack(type_name) + pack("sender")


TS_KEY: Final = pack("ts")
FLOAT64: Final = 0xCB
PAYLOAD_KEY: Final = pack("payload")


class Envelope(msgspec.Struct, frozen=True, gc=False):
    """A decoded frame: the typed message, who sent it and when (``messages`` has the codec)."""

    type: str
    sender: bytes  # the sender's 16-byte node id
    ts: float  # UNIX seconds at the sender
    message: AnyMessage | UnknownMessage


MESSAGE_TYPES: Final[dict[str, type[AnyMessage]]] = {
    cls.TYPE: cls
    for cls in (
        Hello,
        HelloProof,
        NewTransaction,
        NewBlock,
        RequestChain,
        ResponseChain,
        PeerDiscovery,
        Heartbeat,
        Error,
    )
}
