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
``codec.BUDGET_FROM`` (64 KiB): in a ResponseChain a transaction's sender is decoded as any
msgpack value (the wire spells it as bin or the str "network", a union msgspec cannot
express), and below that size no shape of hostile value can cost more than a few MB before
it is refused. A NewBlock's transactions are decoded with strict types instead: its coinbase
is split off first (``_block_transactions``).
"""

from collections.abc import Callable
from operator import attrgetter
from typing import Annotated, Any, Final, Literal, cast

import msgspec

from trionode.chain.block import MAX_BLOCK_TXS, Block, BlockHeader
from trionode.chain.encoding import UInt64
from trionode.chain.keys import ADDRESS_LEN, PUBKEY_LEN, SIGNATURE_LEN
from trionode.chain.transaction import COINBASE_SENDER, TX_FIELDS, Transaction
from trionode.wire import fields as f
from trionode.wire.codec import BUDGET_FROM, array_header, pack
from trionode.wire.payloads import (
    FLOAT64,
    MAX_BLOCKS_PER_RESPONSE,
    PAYLOAD_KEY,
    TS_KEY,
    Envelope,
    Heartbeat,
    HeartbeatPayload,
    NewBlock,
    NewTransaction,
    ResponseChain,
    envelope_head,
)

_UInt64 = UInt64
_UInt32 = Annotated[int, msgspec.Meta(ge=0, le=0xFFFFFFFF)]
_Bin32 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]

# A block on the wire: [[version, height, prev_hash, timestamp, merkle_root, target, nonce], [tx...]].
_Header = tuple[_UInt32, _UInt64, _Bin32, _UInt64, _Bin32, _Bin32, _UInt64]
_Block = tuple[_Header, Annotated[list[Transaction], msgspec.Meta(max_length=MAX_BLOCK_TXS)]]


class _Signed(Transaction, frozen=True, gc=False):
    """A transaction as almost all are on the wire: a 32-byte key and a 64-byte signature,
    both checked by the decoder (``Transaction`` leaves the sender open for the coinbase)."""

    sender: _Bin32
    signature: Annotated[bytes, msgspec.Meta(min_length=SIGNATURE_LEN, max_length=SIGNATURE_LEN)]


class _Coinbase(Transaction, frozen=True, gc=False):
    """A block's first transaction, the coinbase: sender "network", no signature."""

    sender: Literal["network"]  # type: ignore[assignment]  # a decoding schema only: replaced by b""
    signature: Annotated[bytes, msgspec.Meta(max_length=0)]


class _NewTransaction(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    tx: _Signed


class _NewBlock(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    # The transactions are left encoded: a block of a coinbase and then signed transactions
    # is split in two and each part decoded with its strict type (``_block_transactions``).
    block: tuple[_Header, msgspec.Raw]


class _ResponseChain(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    blocks: Annotated[list[_Block], msgspec.Meta(max_length=MAX_BLOCKS_PER_RESPONSE)]


_hex = f.hex_bytes
_work_hex = f.WORK_HEX.fullmatch
_senders = attrgetter("sender")
_signatures = attrgetter("signature")
# Stands in for a coinbase's sender in ``_transactions``' length check.
_A_KEY: Final = bytes(PUBKEY_LEN)


def _transactions(txs: list[Transaction]) -> bool:
    """Check what the compiled decoder could not, in place: every sender is a 32-byte key or
    "network" (which becomes b"", a coinbase), every signature 0 or 64 bytes.

    Counting over lists built by C iterators, not a Python loop per transaction: a block's
    hundred transactions cost a few microseconds here.
    """
    count = len(txs)
    senders = list(map(_senders, txs))
    kinds = list(map(type, senders))
    keys = kinds.count(bytes)
    at = -1
    for _ in range(count - keys):  # the non-key senders: each must be "network"
        try:
            at = kinds.index(str, at + 1)
        except ValueError:  # a sender of another type
            return False
        if senders[at] != COINBASE_SENDER:
            return False
        senders[at] = _A_KEY
        tx = txs[at]
        txs[at] = Transaction(b"", tx.recipient, tx.amount, tx.nonce, tx.timestamp, tx.signature)
    if list(map(len, senders)).count(PUBKEY_LEN) != count:
        return False
    # Each signature is at most 64 bytes (the decoder checked): the non-empty ones are all
    # exactly 64 if and only if their lengths add up to 64 each.
    signatures = list(map(_signatures, txs))
    return len(b"".join(signatures)) == SIGNATURE_LEN * (count - signatures.count(b""))


def _block(wire: tuple[Any, list[Transaction]]) -> Block | None:
    (version, height, prev_hash, timestamp, merkle_root, target, nonce), txs = wire
    if not _transactions(txs):
        return None
    header = BlockHeader(
        version, height, prev_hash, timestamp, merkle_root, int.from_bytes(target, "big"), nonce
    )
    return Block(header, txs)


def _heartbeat(p: HeartbeatPayload, sender_hex: str, sender: bytes) -> Heartbeat | None:
    # A Heartbeat names its sender (the connection checks that): no need to decode it twice.
    node_id = sender if p.node_id == sender_hex else _hex(p.node_id, f.NODE_ID_BYTES)
    tip = _hex(p.tip, f.HASH_BYTES)
    work = p.work
    if node_id is None or tip is None or not _work_hex(work):
        return None
    return Heartbeat(node_id, p.height, tip, int(work, 16), p.nonce, p.echo)


def _new_transaction(p: _NewTransaction, sender_hex: str, sender: bytes) -> NewTransaction:
    return NewTransaction(p.tx)


def _new_block(p: _NewBlock, sender_hex: str, sender: bytes) -> NewBlock | None:
    (version, height, prev_hash, timestamp, merkle_root, target, nonce), raw = p.block
    txs = _block_transactions(memoryview(raw))
    if txs is None:
        return None
    header = BlockHeader(
        version, height, prev_hash, timestamp, merkle_root, int.from_bytes(target, "big"), nonce
    )
    return NewBlock(Block(header, txs))


# Encoded size of a msgpack uint by its first byte (0: not a uint, or not in shortest form is
# not judged here: the decoder that reads the bytes afterwards is the judge).
_UINT_SIZE: Final = bytes([1] * 0x80 + [0] * 0x4C + [2, 3, 5, 9] + [0] * 0x30)
# A coinbase's array up to its recipient's bytes: array of 6, "network", a bin8 header.
_COINBASE_HEAD: Final = array_header(TX_FIELDS) + pack(COINBASE_SENDER) + bytes((0xC4, ADDRESS_LEN))
_EMPTY_BIN: Final = len(pack(b""))  # a coinbase's signature
_SIGNED_LIST: Final = msgspec.msgpack.Decoder(list[_Signed])
_COINBASE: Final = msgspec.msgpack.Decoder(_Coinbase)


def _block_transactions(data: memoryview) -> list[Transaction] | None:
    """A block's transactions from their encoded array when it is a coinbase and then signed
    transactions (every valid block), else None.

    The coinbase's end is found from its integers' first bytes; a wrong guess only makes one
    of the two strict decoders fail (trailing or missing bytes), never a wrong read.
    """
    try:
        head = data[0]
        if head & 0xF0 == 0x90:
            count, at = head & 0x0F, 1
        elif head == 0xDC:
            count, at = int.from_bytes(data[1:3], "big"), 3
        else:  # more than 65,535 transactions cannot be valid; the reference decoder says why
            return None
        end = at + len(_COINBASE_HEAD)
        if not 0 < count <= MAX_BLOCK_TXS or data[at:end].tobytes() != _COINBASE_HEAD:
            return None
        end += ADDRESS_LEN
        for _ in range(3):  # amount, nonce, timestamp
            size = _UINT_SIZE[data[end]]
            if not size:
                return None
            end += size
        end += _EMPTY_BIN
        coinbase = _COINBASE.decode(data[at:end])
        txs = cast(list[Transaction], _SIGNED_LIST.decode(array_header(count - 1) + data[end:]))
    except (IndexError, msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    txs.insert(
        0,
        Transaction(b"", coinbase.recipient, coinbase.amount, coinbase.nonce, coinbase.timestamp, b""),
    )
    return txs


def _response_chain(p: _ResponseChain, sender_hex: str, sender: bytes) -> ResponseChain | None:
    blocks = []
    for wire in p.blocks:
        block = _block(wire)
        if block is None:
            return None
        blocks.append(block)
    return ResponseChain(blocks)


class _Route:
    """One fast type: its decoder, where its payload's map header sits, and the finisher."""

    __slots__ = ("decoder", "finish", "payload_key", "payload_key_at", "ts_at")

    def __init__(
        self, name: str, payload: type[msgspec.Struct], finish: Callable[[Any, str, bytes], Any]
    ) -> None:
        envelope = msgspec.defstruct(
            f"_{name}Envelope",
            [("type", Literal[name]), ("sender", f.NodeIdHex), ("ts", f.Seconds), ("payload", payload)],
            forbid_unknown_fields=True,
            gc=False,
        )
        self.decoder: Final[msgspec.msgpack.Decoder[Any]] = msgspec.msgpack.Decoder(envelope)
        self.finish: Final = finish
        prefix = len(_prefix(name))
        self.ts_at: Final = prefix + _SENDER_HEX
        # "payload", then the header of a map with exactly as many entries as the payload has
        # fields: with every field required and no other allowed, none can be repeated.
        self.payload_key: Final = PAYLOAD_KEY + bytes((0x80 | len(payload.__struct_fields__),))
        self.payload_key_at: Final = self.ts_at + _PAYLOAD_AFTER_TS


# encode_message's layout (payloads.envelope_head): the envelope up to the sender's value,
# then the str8 header of the sender's 32 hex characters.
_SENDER_HEX: Final = 2 * f.NODE_ID_BYTES


def _prefix(name: str) -> bytes:
    return envelope_head(name) + pack("0" * _SENDER_HEX)[:-_SENDER_HEX]


# The prefix's length without the type name's characters.
_PREFIX_FIXED: Final = len(_prefix(""))
# After the sender's characters: "ts" and a float64's marker, the 8 bytes of the float, then
# "payload" and the payload map's header.
_TS_FLOAT: Final = TS_KEY + bytes((FLOAT64,))
_PAYLOAD_AFTER_TS: Final = len(_TS_FLOAT) + 8
_ROUTES: Final = {
    _prefix(name): _Route(name, payload, finish)
    for name, payload, finish in (
        ("Heartbeat", HeartbeatPayload, _heartbeat),
        ("NewTransaction", _NewTransaction, _new_transaction),
        ("NewBlock", _NewBlock, _new_block),
        ("ResponseChain", _ResponseChain, _response_chain),
    )
}


def decode_fast(body: bytes) -> Envelope | None:
    """The envelope of a hot message in trionode's own layout, else None.

    None is never a verdict: the caller decodes the body the reference way, which accepts
    or refuses it with the reason.
    """
    if len(body) >= BUDGET_FROM or len(body) < 8:
        return None
    # The type name is a fixstr at byte 6: its header gives the prefix's length.
    route = _ROUTES.get(body[: _PREFIX_FIXED + (body[6] & 0x1F)])
    if (
        route is None
        or not body.startswith(_TS_FLOAT, route.ts_at)
        or not body.startswith(route.payload_key, route.payload_key_at)
    ):
        return None
    try:
        envelope: Any = route.decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        # (msgspec counts nesting against Python's recursion limit: deep arrays inside a
        # Raw or an Any sender end here; the reference decoder refuses them with a reason.)
        return None
    sender = _hex(envelope.sender, f.NODE_ID_BYTES)
    if sender is None:
        return None
    message = route.finish(envelope.payload, envelope.sender, sender)
    if message is None:
        return None
    return Envelope(envelope.type, sender, envelope.ts, message)
