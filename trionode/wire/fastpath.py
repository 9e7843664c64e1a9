"""Compiled decoding of the hot messages, for frames laid out exactly as trionode writes them.

Heartbeat, NewTransaction, NewBlock and ResponseChain are nearly all the bytes a node reads.
For them ``decode_fast`` hands the whole body to one msgspec decoder, which checks types,
lengths and ranges while it builds the objects in C, instead of ``unpackb`` building dicts
and lists that Python code then checks field by field (five to ten times the cost).

It is only a shortcut: ``None`` means "take the reference decoder" (``messages``), which
also names what is wrong with a bad frame. The contract, tested on every fuzzed input
(tests/wire/test_fastpath.py): when this returns an envelope, the reference decoder returns
an equal one for the same body. It holds because the shortcut only takes the exact layout
``encode_message`` writes (key order, a 32-character sender, a float64 ``ts``), with every
field required and none unknown: each map's header then proves it has no repeated key, which
msgspec does not check by itself (protocol.md 2). It only takes bodies under
``codec.BUDGET_FROM`` (64 KiB): a transaction's sender is decoded as any msgpack value (the
wire spells it as bin or the str "network", a union msgspec cannot express), and below that
size no shape of hostile value can cost more than a few MB before it is refused.
"""

from collections.abc import Callable
from operator import attrgetter
from typing import Annotated, Any, Final, Literal

import msgspec

from trionode.chain.block import MAX_BLOCK_TXS, Block, BlockHeader
from trionode.chain.keys import PUBKEY_LEN, SIGNATURE_LEN
from trionode.chain.transaction import COINBASE_SENDER, Transaction
from trionode.wire import fields as f
from trionode.wire.codec import BUDGET_FROM, pack
from trionode.wire.payloads import (
    MAX_BLOCKS_PER_RESPONSE,
    Heartbeat,
    NewBlock,
    NewTransaction,
    ResponseChain,
)

_UInt64 = Annotated[int, msgspec.Meta(ge=0)]  # msgpack has no integer above 2**64 - 1
_UInt32 = Annotated[int, msgspec.Meta(ge=0, le=0xFFFFFFFF)]
_Bin32 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
_NodeIdHex = Annotated[str, msgspec.Meta(min_length=2 * f.NODE_ID_BYTES, max_length=2 * f.NODE_ID_BYTES)]
_HashHex = Annotated[str, msgspec.Meta(min_length=2 * f.HASH_BYTES, max_length=2 * f.HASH_BYTES)]
_WorkHex = Annotated[str, msgspec.Meta(min_length=1, max_length=f.MAX_WORK_DIGITS)]
# A block on the wire: [[version, height, prev_hash, timestamp, merkle_root, target, nonce], [tx...]].
_Header = tuple[_UInt32, _UInt64, _Bin32, _UInt64, _Bin32, _Bin32, _UInt64]
_Block = tuple[_Header, Annotated[list[Transaction], msgspec.Meta(max_length=MAX_BLOCK_TXS)]]


class _Heartbeat(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    node_id: _NodeIdHex
    height: _UInt64
    tip: _HashHex
    work: _WorkHex
    nonce: _UInt64
    echo: bool


class _NewTransaction(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    tx: Transaction


class _NewBlock(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    block: _Block


class _ResponseChain(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    blocks: Annotated[list[_Block], msgspec.Meta(max_length=MAX_BLOCKS_PER_RESPONSE)]


_fromhex = bytes.fromhex
_senders = attrgetter("sender")
_signatures = attrgetter("signature")
_replace = msgspec.structs.replace


def _hex(value: str, length: int) -> bytes | None:
    """``value`` (already ``2 * length`` characters) as bytes if it is lowercase hex."""
    try:
        raw = _fromhex(value)
    except ValueError:
        return None
    # fromhex also takes uppercase and spaces: only our own spelling passes the round trip.
    return raw if len(raw) == length and raw.hex() == value else None


def _transactions(txs: list[Transaction]) -> bool:
    """Check what the compiled decoder could not, in place: every sender is a 32-byte key or
    "network" (which becomes b"", a coinbase), every signature 0 or 64 bytes."""
    senders = list(map(_senders, txs))
    kinds = list(map(type, senders))
    keys = kinds.count(bytes)
    coinbases = kinds.count(str)
    if (
        keys + coinbases != len(txs)
        or senders.count(COINBASE_SENDER) != coinbases
        or list(map(len, senders)).count(PUBKEY_LEN) != keys  # each str here is "network"
        or bytes(map(len, map(_signatures, txs))).translate(None, _SIGNATURE_LENS)
    ):
        return False
    if coinbases:
        for i, sender in enumerate(senders):
            if type(sender) is str:
                txs[i] = _replace(txs[i], sender=b"")
    return True


# Lengths (each < 256) a signature may have: deleted by translate, anything left is an error.
_SIGNATURE_LENS: Final = bytes((0, SIGNATURE_LEN))


def _block(wire: tuple[Any, list[Transaction]]) -> Block | None:
    (version, height, prev_hash, timestamp, merkle_root, target, nonce), txs = wire
    if not _transactions(txs):
        return None
    header = BlockHeader(
        version, height, prev_hash, timestamp, merkle_root, int.from_bytes(target, "big"), nonce
    )
    return Block(header, txs)


def _heartbeat(p: _Heartbeat) -> Heartbeat | None:
    node_id = _hex(p.node_id, f.NODE_ID_BYTES)
    tip = _hex(p.tip, f.HASH_BYTES)
    work = p.work
    if node_id is None or tip is None or not f.WORK_HEX.fullmatch(work):
        return None
    return Heartbeat(node_id, p.height, tip, int(work, 16), p.nonce, p.echo)


def _new_transaction(p: _NewTransaction) -> NewTransaction | None:
    txs = [p.tx]
    return NewTransaction(txs[0]) if _transactions(txs) else None


def _new_block(p: _NewBlock) -> NewBlock | None:
    block = _block(p.block)
    return None if block is None else NewBlock(block)


def _response_chain(p: _ResponseChain) -> ResponseChain | None:
    blocks = []
    for wire in p.blocks:
        block = _block(wire)
        if block is None:
            return None
        blocks.append(block)
    return ResponseChain(blocks)


class _Route:
    """One fast type: its decoder, where its payload's map header sits, and the finisher."""

    __slots__ = ("decoder", "finish", "payload_at", "payload_head")

    def __init__(self, name: str, payload: type[msgspec.Struct], finish: Callable[[Any], Any]) -> None:
        envelope = msgspec.defstruct(
            f"_{name}Envelope",
            [("type", Literal[name]), ("sender", _NodeIdHex), ("ts", float), ("payload", payload)],
            forbid_unknown_fields=True,
            gc=False,
        )
        self.decoder: Final[msgspec.msgpack.Decoder[Any]] = msgspec.msgpack.Decoder(envelope)
        self.finish: Final = finish
        self.payload_at: Final = len(_prefix(name)) + len(_MIDDLE)
        self.payload_head: Final = 0x80 | len(payload.__struct_fields__)


# encode_message's layout: a 4-entry map, "type" and the name, "sender" and 32 hex characters
# (str8), "ts" and a float64, then "payload" and the payload map.
def _prefix(name: str) -> bytes:
    return b"\x84\xa4type" + pack(name) + b"\xa6sender\xd9\x20"


_SENDER_HEX: Final = 2 * f.NODE_ID_BYTES
_MIDDLE: Final = b"?" * _SENDER_HEX + b"\xa2ts\xcb" + b"?" * 8 + b"\xa7payload"
_ROUTES: Final = {
    _prefix(name): _Route(name, payload, finish)
    for name, payload, finish in (
        ("Heartbeat", _Heartbeat, _heartbeat),
        ("NewTransaction", _NewTransaction, _new_transaction),
        ("NewBlock", _NewBlock, _new_block),
        ("ResponseChain", _ResponseChain, _response_chain),
    )
}
# Where the envelope's fixed bytes sit, relative to the end of the prefix.
_TS_KEY: Final = slice(_SENDER_HEX, _SENDER_HEX + 4)
_PAYLOAD_KEY: Final = slice(_SENDER_HEX + 12, _SENDER_HEX + 20)


def decode_fast(body: bytes) -> tuple[str, bytes, float, Any] | None:
    """``(type, sender, ts, message)`` for a hot message in trionode's own layout, else None.

    None is never a verdict: the caller decodes the body the reference way, which accepts
    or refuses it with the reason.
    """
    if len(body) >= BUDGET_FROM or len(body) < 8:
        return None
    # The type name is a fixstr at byte 6: its header gives the prefix's length.
    end = 14 + (body[6] & 0x1F) + 2
    route = _ROUTES.get(body[:end])
    if (
        route is None
        or body[end + _TS_KEY.start : end + _TS_KEY.stop] != b"\xa2ts\xcb"
        or body[end + _PAYLOAD_KEY.start : end + _PAYLOAD_KEY.stop] != b"\xa7payload"
        or len(body) <= route.payload_at
        or body[route.payload_at] != route.payload_head
    ):
        return None
    try:
        envelope: Any = route.decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    sender = _hex(envelope.sender, f.NODE_ID_BYTES)
    ts = envelope.ts
    if sender is None or not (ts >= 0.0 and ts != _INF):
        return None
    message = route.finish(envelope.payload)
    if message is None:
        return None
    return envelope.type, sender, ts, message


_INF: Final = float("inf")
