"""Envelopes: a typed message plus who sent it and when, to and from complete frames.

The envelope is the map ``{"type": str, "sender": node id hex, "ts": float, "payload": map}``;
other keys are ignored. An unknown ``type`` is not an error: it decodes to ``UnknownMessage``
so the node can count and skip it (a newer peer may speak more than we do).
"""

import struct
from typing import Any, Final

from trionode.wire import fields as f
from trionode.wire.codec import pack, unpack_map
from trionode.wire.errors import MessageTooLarge
from trionode.wire.fastpath import decode_fast
from trionode.wire.framing import MAX_FRAME
from trionode.wire.payloads import (
    FLOAT64,
    MESSAGE_TYPES,
    PAYLOAD_KEY,
    PROTOCOL_VERSION,
    TS_KEY,
    AnyMessage,
    Envelope,
    Error,
    Heartbeat,
    Hello,
    HelloProof,
    Message,
    NewBlock,
    NewTransaction,
    PeerDiscovery,
    PeerInfo,
    RequestChain,
    ResponseChain,
    UnknownMessage,
    envelope_head,
)

__all__ = [
    "MAX_TYPE_LEN",
    "MESSAGE_TYPES",
    "PROTOCOL_VERSION",
    "AnyMessage",
    "Envelope",
    "Error",
    "Heartbeat",
    "Hello",
    "HelloProof",
    "Message",
    "NewBlock",
    "NewTransaction",
    "PeerDiscovery",
    "PeerInfo",
    "RequestChain",
    "ResponseChain",
    "UnknownMessage",
    "decode_message",
    "decode_reference",
    "encode_message",
]

# Type names are identifiers ("ResponseChain"); 64 characters leaves room for new ones.
MAX_TYPE_LEN: Final = 64
_PREFIX: Final = struct.Struct(">I")
# "ts", then its value as msgpack float64.
_TS: Final = struct.Struct(">3sBd")
_HEADS: Final = {name: envelope_head(name) for name in MESSAGE_TYPES}


def encode_message(msg: Message, sender: bytes, ts: float) -> bytes:
    """The complete frame (length prefix included) carrying ``msg``.

    Byte for byte what ``encode_frame(pack(envelope_dict))`` gives, assembled from parts so a
    block's transactions are copied from their cached encodings instead of re-packed.
    ``MessageTooLarge`` if the body exceeds ``MAX_FRAME`` (cut a ResponseChain shorter).
    """
    parts = [
        b"",
        _HEADS[msg.TYPE],
        pack(sender.hex()),
        _TS.pack(TS_KEY, FLOAT64, float(ts)),
        PAYLOAD_KEY,
        msg.payload_bytes(),
    ]
    size = sum(map(len, parts))
    if size > MAX_FRAME:
        raise MessageTooLarge(f"{msg.TYPE} of {size} bytes exceeds the {MAX_FRAME}-byte frame limit")
    parts[0] = _PREFIX.pack(size)
    return b"".join(parts)


def decode_message(body: bytes) -> Envelope:
    """A frame body (no length prefix) -> ``Envelope``; ``ProtocolError`` for anything invalid.

    The hot types in trionode's own layout take the compiled shortcut (``fastpath``); every
    other body, and any the shortcut declines, the reference decoder below.
    """
    return decode_fast(body) or decode_reference(body)


def decode_reference(body: bytes) -> Envelope:
    """``decode_message`` without the shortcut: the decoder every input's verdict comes from."""
    envelope = unpack_map(body)
    type_name = f.want_str(f.get(envelope, "type", ""), "type", MAX_TYPE_LEN)
    sender = f.want_node_id(f.get(envelope, "sender", ""), "sender")
    ts = f.want_time(f.get(envelope, "ts", ""), "ts")
    payload = f.want_map(f.get(envelope, "payload", ""), "payload")
    cls = MESSAGE_TYPES.get(type_name)
    message: AnyMessage | UnknownMessage
    message = UnknownMessage(type_name) if cls is None else cls.from_payload(payload)
    return Envelope(type_name, sender, ts, message)


def envelope_dict(msg: Message, sender: bytes, ts: float) -> dict[str, Any]:
    """The envelope as a plain dict: what ``encode_message`` packs (tests and tools use it)."""
    return {"type": msg.TYPE, "sender": sender.hex(), "ts": float(ts), "payload": msg.to_payload()}
