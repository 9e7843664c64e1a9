"""Envelopes: encode_message/decode_message, unknown types, and every envelope error."""

from typing import Any

import msgpack
import pytest

from trionode.wire.errors import (
    BAD_FIELD,
    BAD_MSGPACK,
    MISSING_FIELD,
    NOT_A_MAP,
    TRAILING_DATA,
    MessageTooLarge,
    ProtocolError,
)
from trionode.wire.framing import MAX_FRAME, FrameDecoder, encode_frame
from trionode.wire.messages import (
    Envelope,
    Heartbeat,
    Message,
    ResponseChain,
    UnknownMessage,
    decode_message,
    encode_message,
    envelope_dict,
)

from .factories import BLOCK, NODE, TIP, one_of_each
from .test_payloads import NOT_NODE_ID, NOT_TIME

HEARTBEAT = Heartbeat(NODE, 3, TIP, 77, 12, True)


def envelope(**changes: Any) -> dict[str, Any]:
    env = envelope_dict(HEARTBEAT, NODE, 1_700_000_000.5)
    env.update(changes)
    return env


def body(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def error_of(data: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_message(data)
    return info.value


@pytest.mark.parametrize("message", one_of_each(), ids=lambda m: m.TYPE)
def test_encode_is_a_frame_of_the_packed_envelope(message: Message) -> None:
    frame = encode_message(message, NODE, 1_700_000_000.25)
    assert frame == encode_frame(body(envelope_dict(message, NODE, 1_700_000_000.25)))
    (only,) = FrameDecoder().feed(frame)
    env = decode_message(only)
    assert env == Envelope(message.TYPE, NODE, 1_700_000_000.25, env.message)
    assert type(env.message) is type(message)
    assert env.message.to_payload() == message.to_payload()


def test_integer_ts_is_accepted_as_float() -> None:
    env = decode_message(body(envelope(ts=1_700_000_000)))
    assert env.ts == 1_700_000_000.0
    assert isinstance(env.ts, float)
    assert encode_message(HEARTBEAT, NODE, 5)[-len(body(HEARTBEAT.to_payload())) :] == body(
        HEARTBEAT.to_payload()
    )


def test_extra_envelope_keys_and_key_order_do_not_matter() -> None:
    env = envelope(extra={"x": [1, 2]}, hop=3)
    reordered = dict(reversed(list(env.items())))
    assert decode_message(body(reordered)).message == HEARTBEAT


def test_unknown_type_is_reported_not_rejected() -> None:
    env = decode_message(body(envelope(type="FancyNewThing", payload={"anything": [1, "x", b"y"]})))
    assert env.message == UnknownMessage("FancyNewThing")
    assert env.type == "FancyNewThing"
    assert env.sender == NODE


def test_unknown_type_still_needs_a_valid_envelope() -> None:
    err = error_of(body(envelope(type="FancyNewThing", payload=[1])))
    assert (err.code, err.field) == (BAD_FIELD, "payload")


@pytest.mark.parametrize("key", ["type", "sender", "ts", "payload"])
def test_missing_envelope_key(key: str) -> None:
    env = envelope()
    del env[key]
    err = error_of(body(env))
    assert (err.code, err.field) == (MISSING_FIELD, key)
    assert key in str(err)


def test_bin_keys_do_not_count_as_str_keys() -> None:
    env: dict[Any, Any] = envelope()
    env[b"type"] = env.pop("type")
    assert (error_of(body(env)).code, error_of(body(env)).field) == (MISSING_FIELD, "type")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        *[("type", v) for v in [None, 1, b"Heartbeat", ["Heartbeat"], "x" * 65]],
        *[("sender", v) for v in NOT_NODE_ID],
        *[("ts", v) for v in NOT_TIME],
        *[("payload", v) for v in [None, 1, "x", b"x", [], [["node_id", "x"]]]],
    ],
    ids=lambda x: repr(x)[:20],
)
def test_wrong_envelope_values(key: str, value: Any) -> None:
    err = error_of(body(envelope(**{key: value})))
    assert (err.code, err.field) == (BAD_FIELD, key)


@pytest.mark.parametrize("value", [[], 1, "x", None, [envelope()]])
def test_body_not_a_map(value: Any) -> None:
    assert error_of(body(value)).code == NOT_A_MAP


def test_trailing_bytes_after_the_envelope() -> None:
    err = error_of(body(envelope()) + b"\x80")
    assert (err.code, err.field) == (TRAILING_DATA, "")


def test_two_envelopes_in_one_body() -> None:
    assert error_of(body(envelope()) * 2).code == TRAILING_DATA


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        body(envelope())[:-1],
        body(envelope())[:10],
        body(envelope(extra=msgpack.ExtType(1, b"x"))),
        body(envelope(payload={**HEARTBEAT.to_payload(), "when": msgpack.Timestamp(1, 0)})),
    ],
    ids=["empty", "c1", "truncated-by-one", "truncated", "ext-in-extra-key", "timestamp-in-payload"],
)
def test_invalid_msgpack_bodies(data: bytes) -> None:
    assert error_of(data).code == BAD_MSGPACK


def test_payload_errors_name_the_payload_field() -> None:
    err = error_of(body(envelope(payload={**HEARTBEAT.to_payload(), "tip": "AB" * 32})))
    assert (err.code, err.field) == (BAD_FIELD, "payload.tip")
    assert "payload.tip" in str(err)


def test_a_message_over_the_frame_limit_is_refused_on_encode() -> None:
    big = BLOCK.__class__(BLOCK.header, BLOCK.txs * 500)  # 1,000 transactions, ~89 KB
    per_block = len(encode_message(ResponseChain([big] * 2), NODE, 0.0)) - len(
        encode_message(ResponseChain([big]), NODE, 0.0)
    )
    fits = (MAX_FRAME - 200) // per_block
    with pytest.raises(MessageTooLarge):
        encode_message(ResponseChain([big] * (fits + 1)), NODE, 0.0)
    frame = encode_message(ResponseChain([big] * fits), NODE, 0.0)
    assert MAX_FRAME - per_block < len(frame) - 4 <= MAX_FRAME
    assert len(decode_message(frame[4:]).message.blocks) == fits  # type: ignore[union-attr]


@pytest.mark.parametrize("message", one_of_each(), ids=lambda m: m.TYPE)
def test_each_type_encodes_and_decodes_itself(message: Message) -> None:
    frame = message.encode(NODE, 1_700_000_000.25)
    assert frame == encode_message(message, NODE, 1_700_000_000.25)
    decoded = type(message).decode(frame[4:])
    assert type(decoded) is type(message)
    assert decoded.to_payload() == message.to_payload()


@pytest.mark.parametrize("cls", [type(m) for m in one_of_each() if not isinstance(m, Heartbeat)])
def test_decode_refuses_a_body_of_another_type(cls: type[Message]) -> None:
    with pytest.raises(ProtocolError) as info:
        cls.decode(HEARTBEAT.encode(NODE, 1.0)[4:])
    assert (info.value.code, info.value.field) == (BAD_FIELD, "type")
    assert f"expected {cls.TYPE}, got Heartbeat" in str(info.value)


def test_decode_refuses_an_unknown_type_and_checks_the_body() -> None:
    with pytest.raises(ProtocolError) as info:
        Heartbeat.decode(body(envelope(type="Gossip")))
    assert (info.value.code, info.value.field) == (BAD_FIELD, "type")
    with pytest.raises(ProtocolError) as info:
        Heartbeat.decode(b"\xc1")
    assert info.value.code == BAD_MSGPACK


def test_a_repeated_envelope_key_is_refused() -> None:
    """protocol.md 2: type "Heartbeat" then type "Foo" is neither, whatever msgpack would keep."""
    valid = body(envelope())
    assert valid[0] == 0x84  # the envelope's four keys; a fifth that repeats "type":
    repeated = b"\x85" + valid[1:] + body("type") + body("Foo")
    err = error_of(repeated)
    assert err.code == BAD_MSGPACK and "'type' repeated" in err.detail
