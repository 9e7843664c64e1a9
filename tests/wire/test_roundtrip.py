"""Property tests: every valid message survives encode -> frames -> decode, byte-exactly."""

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trionode.wire.framing import FrameDecoder, encode_frame
from trionode.wire.messages import Message, UnknownMessage, decode_message, encode_message, envelope_dict

from . import factories as fx

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def known(message: Message | UnknownMessage) -> Message:
    assert isinstance(message, Message)
    return message


def check_round_trip(message: Message, sender: bytes, ts: float) -> None:
    frame = encode_message(message, sender, ts)
    # The spliced encoding is exactly what a generic msgpack encoder writes for the envelope.
    assert frame == encode_frame(msgpack.packb(envelope_dict(message, sender, ts), use_bin_type=True))
    (body,) = FrameDecoder().feed(frame)
    env = decode_message(body)
    assert (env.type, env.sender, env.ts) == (message.TYPE, sender, ts)
    assert type(env.message) is type(message)
    assert env.message.to_payload() == message.to_payload()
    # Messages without chain objects compare equal as Structs too.
    if message.TYPE not in ("NewBlock", "ResponseChain"):
        assert env.message == message


@SETTINGS
@given(fx.hellos, fx.node_ids, fx.times)
def test_hello(message: Message, sender: bytes, ts: float) -> None:
    check_round_trip(message, sender, ts)


@SETTINGS
@given(fx.hello_proofs, fx.node_ids, fx.times)
def test_hello_proof(message: Message, sender: bytes, ts: float) -> None:
    check_round_trip(message, sender, ts)


@SETTINGS
@given(fx.new_transactions, fx.node_ids, fx.times)
def test_new_transaction(message: Message, sender: bytes, ts: float) -> None:
    check_round_trip(message, sender, ts)


@SETTINGS
@given(fx.new_blocks, fx.node_ids, fx.times)
def test_new_block(message: Message, sender: bytes, ts: float) -> None:
    check_round_trip(message, sender, ts)


@SETTINGS
@given(fx.request_chains, fx.node_ids, fx.times)
def test_request_chain(message: Message, sender: bytes, ts: float) -> None:
    check_round_trip(message, sender, ts)


@SETTINGS
@given(fx.response_chains, fx.node_ids, fx.times)
def test_response_chain(message: Message, sender: bytes, ts: float) -> None:
    check_round_trip(message, sender, ts)


@SETTINGS
@given(fx.peer_discoveries, fx.node_ids, fx.times)
def test_peer_discovery(message: Message, sender: bytes, ts: float) -> None:
    check_round_trip(message, sender, ts)


@SETTINGS
@given(fx.heartbeats, fx.node_ids, fx.times)
def test_heartbeat(message: Message, sender: bytes, ts: float) -> None:
    check_round_trip(message, sender, ts)


@SETTINGS
@given(fx.errors, fx.node_ids, fx.times)
def test_error(message: Message, sender: bytes, ts: float) -> None:
    check_round_trip(message, sender, ts)


@SETTINGS
@given(st.lists(st.tuples(fx.messages, fx.node_ids, fx.times), min_size=1, max_size=5), st.data())
def test_a_stream_of_messages_cut_anywhere(
    items: list[tuple[Message, bytes, float]], data: st.DataObject
) -> None:
    stream = b"".join(encode_message(m, s, t) for m, s, t in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = FrameDecoder()
    bodies = [
        b for a, z in zip([0, *cuts], [*cuts, len(stream)], strict=True) for b in decoder.feed(stream[a:z])
    ]
    decoded = [decode_message(b) for b in bodies]
    assert [(e.type, e.sender, e.ts, known(e.message).to_payload()) for e in decoded] == [
        (m.TYPE, s, t, m.to_payload()) for m, s, t in items
    ]
