"""The compiled shortcut agrees with the reference decoder on every body it accepts.

``decode_fast`` may decline anything (None); what it must never do is accept a body the
reference decoder refuses, or read one differently. Checked on valid messages of the four hot
types, on hand-made near misses, and on every input of the seeded mutation fuzzer.
"""

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trionode.chain.block import Block
from trionode.chain.transaction import Transaction
from trionode.wire.codec import BUDGET_FROM, pack
from trionode.wire.errors import ProtocolError
from trionode.wire.fastpath import decode_fast
from trionode.wire.messages import (
    Envelope,
    Heartbeat,
    Message,
    NewBlock,
    NewTransaction,
    ResponseChain,
    decode_message,
    decode_reference,
    encode_message,
    envelope_dict,
)

from . import fuzzing
from .factories import (
    BLOCK,
    CB,
    NODE,
    TIP,
    TX,
    heartbeats,
    new_blocks,
    new_transactions,
    one_of_each,
    response_chains,
)

HOT = (Heartbeat, NewTransaction, NewBlock, ResponseChain)
TS = 1_700_000_000.25
NODE_HEX = NODE.hex()


def tx_view(tx: Transaction) -> tuple[Any, ...]:
    """Every field with its type: a coinbase's sender must be b"", never the wire's "network"."""
    fields = (tx.sender, tx.recipient, tx.amount, tx.nonce, tx.timestamp, tx.signature)
    return (*tuple((type(v), v) for v in fields), tx.txid)


def block_view(block: Block) -> tuple[Any, ...]:
    h = block.header
    header = (h.version, h.height, h.prev_hash, h.timestamp, h.merkle_root, h.target, h.nonce, h.block_hash)
    return header, [tx_view(tx) for tx in block.txs]


def view(message: Any) -> Any:
    """A comparable picture of a decoded message (Block compares by identity)."""
    if isinstance(message, NewBlock):
        return "NewBlock", block_view(message.block)
    if isinstance(message, ResponseChain):
        return "ResponseChain", [block_view(b) for b in message.blocks]
    if isinstance(message, NewTransaction):
        return "NewTransaction", tx_view(message.tx)
    return message


def agree(body: bytes) -> bool:
    """Assert the contract for one body; True if the shortcut took it."""
    fast = decode_fast(body)
    if fast is None:
        return False
    try:
        reference = decode_reference(body)
    except ProtocolError as exc:
        raise AssertionError(f"shortcut accepted what the reference refuses ({exc}): {body.hex()}") from None
    kind, sender, ts, message = fast.type, fast.sender, fast.ts, fast.message
    assert type(fast) is Envelope
    assert (kind, type(sender), sender, type(ts), ts) == (
        reference.type,
        bytes,
        reference.sender,
        float,
        reference.ts,
    ), body.hex()
    assert type(message) is type(reference.message), body.hex()
    assert view(message) == view(reference.message), body.hex()
    return True


def frame_body(message: Message, ts: float = TS) -> bytes:
    return encode_message(message, NODE, ts)[4:]


packed = pack  # msgpack with use_bin_type, as any peer would write it


@pytest.mark.parametrize("message", one_of_each(), ids=lambda m: m.TYPE)
def test_takes_exactly_the_hot_types_in_our_layout(message: Message) -> None:
    assert agree(frame_body(message)) == isinstance(message, HOT)


def test_decode_message_returns_the_shortcuts_envelope() -> None:
    body = frame_body(NewBlock(BLOCK))
    env = decode_message(body)
    assert isinstance(env, Envelope) and isinstance(env.message, NewBlock)
    assert block_view(env.message.block) == block_view(decode_reference(body).message.block)  # type: ignore[union-attr]
    assert env.message.block.txs[0].sender == b"" and env.message.block.txs[0].is_coinbase


@settings(max_examples=200, deadline=None)
@given(st.one_of(heartbeats, new_transactions, new_blocks, response_chains), st.floats(0, 4e9))
def test_valid_hot_messages_take_the_shortcut_and_agree(message: Message, ts: float) -> None:
    assert agree(frame_body(message, ts)) == strict_shape(message)


def signed(tx: Transaction) -> bool:
    return not tx.is_coinbase and len(tx.signature) == 64


def strict_shape(message: Message) -> bool:
    """Whether the shortcut must take ``message``: a lone transaction must be signed, and a
    block a coinbase without signature and then signed transactions (every valid block);
    any shape the reference accepts is taken for a Heartbeat and a ResponseChain."""
    if isinstance(message, NewTransaction):
        return signed(message.tx)
    if isinstance(message, NewBlock):
        txs = message.block.txs
        return bool(txs) and txs[0].is_coinbase and txs[0].signature == b"" and all(map(signed, txs[1:]))
    return True


@pytest.mark.parametrize("count", [1, 2, 15, 16, 300])
@pytest.mark.parametrize("amount", [0, 127, 128, 255, 256, 2**16, 2**32, 2**63 - 1])
def test_a_blocks_coinbase_is_split_off_whatever_its_integers(count: int, amount: int) -> None:
    """The coinbase's end is found from its integers' sizes: every msgpack width, and both
    array header forms (fixarray up to 15, array16 from 16)."""
    base = BLOCK.txs[0]
    cb = type(base)(b"", base.recipient, amount, amount, amount, b"")
    block = Block(BLOCK.header, [cb] + [TX] * (count - 1))
    assert agree(frame_body(NewBlock(block)))


def test_a_body_from_64_kib_goes_to_the_reference_decoder() -> None:
    block = Block(BLOCK.header, [CB] + [TX] * 500)
    body = frame_body(NewBlock(block))
    assert len(body) >= BUDGET_FROM
    assert decode_fast(body) is None
    assert block_view(decode_message(body).message.block) == block_view(block)  # type: ignore[union-attr]


def heartbeat_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = envelope_dict(Heartbeat(NODE, 3, TIP, 77, 12, True), NODE, TS)["payload"]
    payload.update(changes)
    return payload


def envelope_of(payload: Any, kind: str = "Heartbeat", ts: Any = TS, sender: Any = NODE_HEX) -> bytes:
    return packed({"type": kind, "sender": sender, "ts": ts, "payload": payload})


def tx_wire(**changes: Any) -> list[Any]:
    wire = TX.to_wire()
    for i, name in enumerate(("sender", "recipient", "amount", "nonce", "timestamp", "signature")):
        if name in changes:
            wire[i] = changes[name]
    return wire


def block_wire(txs: list[Any]) -> list[Any]:
    return [BLOCK.header.to_wire(), txs]


def repeated_echo() -> bytes:
    """A Heartbeat whose payload map has seven entries: the six fields, then "echo" again."""
    payload = packed(heartbeat_payload())
    assert payload[0] == 0x86
    doubled = b"\x87" + payload[1:] + packed("echo") + packed(False)
    return envelope_of(None)[: -len(packed(None))] + doubled


NEAR_MISSES = {
    "repeated key, header of 7": repeated_echo(),
    # Repeated keys in a map whose header still says six entries: one field is then missing.
    "repeated key, header of 6": envelope_of(heartbeat_payload()).replace(b"\xa4echo", b"\xa4tip_", 1),
    "uppercase node id": envelope_of(heartbeat_payload(node_id=NODE.hex().upper())),
    "hex with a space": envelope_of(heartbeat_payload(tip=TIP.hex()[:-2] + " 0")),
    "work with a newline": envelope_of(heartbeat_payload(work="4d\n")),
    "work uppercase": envelope_of(heartbeat_payload(work="4D")),
    "height negative": envelope_of(heartbeat_payload(height=-1)),
    "echo as int": envelope_of(heartbeat_payload(echo=1)),
    "ts NaN": envelope_of(heartbeat_payload(), ts=math.nan),
    "ts infinite": envelope_of(heartbeat_payload(), ts=math.inf),
    "ts negative": envelope_of(heartbeat_payload(), ts=-1.0),
    "sender uppercase": envelope_of(heartbeat_payload(), sender=NODE.hex().upper()),
    "tx of 7 elements": envelope_of({"tx": [*tx_wire(), None]}, "NewTransaction"),
    # A 7th element that would fill the id cache: the peer would choose the transaction's id.
    "tx of 7 elements, forged cache": envelope_of({"tx": [*tx_wire(), [b"x", bytes(32)]]}, "NewTransaction"),
    "block with a forged cache": envelope_of(
        {"block": block_wire([CB.to_wire(), [*tx_wire(), [b"x", bytes(32)]]])}, "NewBlock"
    ),
    "response with a forged coinbase cache": envelope_of(
        {"blocks": [block_wire([[*CB.to_wire(), [CB.encoded, CB.txid]]])]}, "ResponseChain"
    ),
    # Nesting deeper than Python's recursion limit, inside what msgspec skips (a Raw) or
    # decodes as anything (a sender): declined, not a RecursionError.
    "block of 3,000 nested arrays": envelope_of({"block": block_wire([])}, "NewBlock")[:-1]
    + b"\x91" * 3000
    + b"\xc0",
    "sender of 3,000 nested arrays": envelope_of(
        {"blocks": [block_wire([tx_wire(sender=None)])]}, "ResponseChain"
    ).replace(b"\xc0", b"\x91" * 3000 + b"\xc0", 1),
    "tx of 5 elements": envelope_of({"tx": tx_wire()[:5]}, "NewTransaction"),
    "tx sender of 31 bytes": envelope_of({"tx": tx_wire(sender=bytes(31))}, "NewTransaction"),
    "tx sender empty bin": envelope_of({"tx": tx_wire(sender=b"")}, "NewTransaction"),
    "tx sender other str": envelope_of({"tx": tx_wire(sender="netwerk")}, "NewTransaction"),
    "tx sender 32-char str": envelope_of({"tx": tx_wire(sender="x" * 32)}, "NewTransaction"),
    "tx sender a list": envelope_of({"tx": tx_wire(sender=[0] * 32)}, "NewTransaction"),
    "tx sender nil": envelope_of({"tx": tx_wire(sender=None)}, "NewTransaction"),
    "tx signature of 63 bytes": envelope_of({"tx": tx_wire(signature=bytes(63))}, "NewTransaction"),
    "tx signature of 65 bytes": envelope_of({"tx": tx_wire(signature=bytes(65))}, "NewTransaction"),
    "tx amount above the money supply": envelope_of({"tx": tx_wire(amount=2**63)}, "NewTransaction"),
    "tx nonce a bool": envelope_of({"tx": tx_wire(nonce=True)}, "NewTransaction"),
    "tx recipient a str": envelope_of({"tx": tx_wire(recipient="r" * 20)}, "NewTransaction"),
    "block header of 6": envelope_of({"block": [BLOCK.header.to_wire()[:6], []]}, "NewBlock"),
    "block version above uint32": envelope_of(
        {"block": [[2**32, *BLOCK.header.to_wire()[1:]], []]}, "NewBlock"
    ),
    "block with a bad second sender": envelope_of(
        {"block": block_wire([CB.to_wire(), tx_wire(sender="network!")])}, "NewBlock"
    ),
    "block of three parts": envelope_of({"block": [*block_wire([CB.to_wire()]), 1]}, "NewBlock"),
    "response with a bad block": envelope_of(
        {"blocks": [block_wire([CB.to_wire()]), block_wire([tx_wire(signature=b"s")])]}, "ResponseChain"
    ),
}


@pytest.mark.parametrize("body", NEAR_MISSES.values(), ids=NEAR_MISSES.keys())
def test_near_misses_are_declined_and_refused(body: bytes) -> None:
    assert decode_fast(body) is None
    with pytest.raises(ProtocolError):
        decode_message(body)


def test_an_extension_key_is_declined_and_read_by_the_reference() -> None:
    body = envelope_of(heartbeat_payload(extra=1))
    assert decode_fast(body) is None
    assert decode_message(body).message == Heartbeat(NODE, 3, TIP, 77, 12, True)


def test_a_coinbase_anywhere_is_read_as_the_reference_reads_it() -> None:
    txs = [TX.to_wire(), CB.to_wire(), CB.to_wire()]
    new_block = envelope_of({"block": block_wire(txs)}, "NewBlock")
    assert decode_fast(new_block) is None  # not a valid block's shape: the reference reads it
    assert [tx.sender for tx in decode_message(new_block).message.block.txs] == [TX.sender, b"", b""]  # type: ignore[union-attr]
    response = envelope_of({"blocks": [block_wire(txs)]}, "ResponseChain")
    assert agree(response)
    envelope = decode_fast(response)
    assert envelope is not None and isinstance(envelope.message, ResponseChain)
    assert [tx.sender for tx in envelope.message.blocks[0].txs] == [TX.sender, b"", b""]


def test_every_fuzzed_input_agrees() -> None:
    """The seeded fuzzer's mutations (structural edits keep our key order, so many stay on the
    shortcut's side): for each one the shortcut declines or agrees with the reference."""
    seed = fuzzing.fuzz_seed()
    taken = 0

    def check(body: bytes) -> None:
        nonlocal taken
        taken += agree(body)

    try:
        hot = [b for b in fuzzing.corpus() if decode_fast(b) is not None]
        fuzzing.run(100_000, seed=seed, check=check, bodies=hot)
    except AssertionError as exc:
        raise AssertionError(f"{exc} (replay with TRIONODE_FUZZ_SEED={seed})") from exc
    assert taken > 700, f"only {taken} fuzzed inputs took the shortcut (seed {seed})"
