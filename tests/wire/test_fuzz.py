"""The decoder never raises anything but ProtocolError, whatever the bytes."""

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trionode.wire.errors import PROTOCOL_ERROR_CODES, ProtocolError
from trionode.wire.framing import FrameDecoder
from trionode.wire.messages import MESSAGE_TYPES, decode_message

from . import fuzzing
from .factories import NODE

# The CI run: at least 100,000 inputs (issue 3); tests/fuzz/fuzz_wire.py runs millions.
FUZZ_INPUTS = 100_000


def decode_or_protocol_error(body: bytes) -> None:
    try:
        decode_message(body)
    except ProtocolError as exc:
        assert exc.code in PROTOCOL_ERROR_CODES


def test_seeded_mutations_of_valid_frames() -> None:
    seed = fuzzing.fuzz_seed()
    replay = f"seed {seed}: replay with TRIONODE_FUZZ_SEED={seed}"
    try:
        outcomes = fuzzing.run(FUZZ_INPUTS, seed=seed)
    except AssertionError as exc:
        raise AssertionError(f"{exc} ({replay})") from exc
    assert sum(outcomes.values()) == FUZZ_INPUTS, replay
    # The mutations reach both sides: some inputs stay valid, and every kind of error occurs.
    assert outcomes["ok"] > 1000, f"{outcomes} ({replay})"
    assert {
        "bad_msgpack",
        "trailing_data",
        "not_a_map",
        "missing_field",
        "bad_field",
        "too_many_objects",
    } <= set(outcomes), f"{outcomes} ({replay})"


def test_seeded_corrupted_streams_through_the_frame_decoder() -> None:
    seed = fuzzing.fuzz_seed()
    replay = f"seed {seed}: replay with TRIONODE_FUZZ_SEED={seed}"
    try:
        outcomes = fuzzing.run_framing(10_000, seed=seed)
    except AssertionError as exc:
        raise AssertionError(f"{exc} ({replay})") from exc
    assert outcomes["ok"] > 100 and outcomes["frame_too_large"] > 100, f"{outcomes} ({replay})"


def test_a_failure_names_its_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    def escapes(body: bytes) -> None:
        raise KeyError("a bug")

    monkeypatch.setenv("TRIONODE_FUZZ_SEED", "12345")
    monkeypatch.setattr(fuzzing, "decode_message", escapes)
    with pytest.raises(AssertionError, match="TRIONODE_FUZZ_SEED=12345"):
        test_seeded_mutations_of_valid_frames()


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(body: bytes) -> None:
    decode_or_protocol_error(body)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.lists(st.integers(1, 70), max_size=10))
def test_random_streams_in_random_pieces(stream: bytes, sizes: list[int]) -> None:
    decoder = FrameDecoder()
    pos = 0
    try:
        for size in [*sizes, len(stream)]:
            for body in decoder.feed(stream[pos : pos + size]):
                decode_or_protocol_error(body)
            pos += size
    except ProtocolError as exc:
        assert exc.code in PROTOCOL_ERROR_CODES


leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.text(max_size=70),
    st.binary(max_size=70),
)
trees = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([*MESSAGE_TYPES, "Unknown"]),
    trees,
    st.dictionaries(st.text(max_size=12), trees, max_size=8),
)
def test_arbitrary_payloads_of_every_type(type_name: str, ts: Any, payload: dict[str, Any]) -> None:
    env = {"type": type_name, "sender": NODE.hex(), "ts": ts, "payload": payload}
    decode_or_protocol_error(msgpack.packb(env, use_bin_type=True))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5000), st.sampled_from([b"\x91", b"\x81\xa1a"]))
def test_deep_nesting(depth: int, opener: bytes) -> None:
    decode_or_protocol_error(b"\x84\xa7payload" + opener * depth + b"\xc0")


@settings(max_examples=50, deadline=None)
@given(
    st.sampled_from([b"\xdc", b"\xdd", b"\xde", b"\xdf", b"\xda", b"\xdb", b"\xc5", b"\xc6"]),
    st.binary(min_size=4, max_size=4),
)
def test_huge_container_and_string_headers(marker: bytes, length: bytes) -> None:
    decode_or_protocol_error(b"\x81\xa7payload" + marker + length + b"\x00" * 16)
