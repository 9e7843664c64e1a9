import importlib.util
import sys
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trionode.wire.codec as codec
from trionode.wire.codec import (
    BUDGET_FROM,
    DECODE_COST_BOUND,
    MAX_ARRAY_LEN,
    MAX_MAP_LEN,
    MAX_STR_LEN,
    array_header,
    pack,
    unpack_map,
)
from trionode.wire.errors import (
    BAD_MSGPACK,
    FRAME_TOO_LARGE,
    NOT_A_MAP,
    TOO_MANY_OBJECTS,
    TRAILING_DATA,
    ProtocolError,
)
from trionode.wire.framing import MAX_FRAME


def code_of(body: bytes) -> str:
    with pytest.raises(ProtocolError) as info:
        unpack_map(body)
    return info.value.code


def test_refuses_to_import_without_the_c_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    class PurePythonUnpacker:
        pass

    PurePythonUnpacker.__module__ = "msgpack.fallback"
    monkeypatch.setattr(msgpack, "Unpacker", PurePythonUnpacker)
    spec = importlib.util.spec_from_file_location("codec_copy", codec.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with pytest.raises(ImportError, match="C extension"):
        spec.loader.exec_module(module)
    assert "codec_copy" not in sys.modules


def test_a_map_decodes() -> None:
    assert unpack_map(pack({"a": [1, b"x", "y", 1.5, None, True]})) == {"a": [1, b"x", "y", 1.5, None, True]}


@pytest.mark.parametrize("value", [[], 1, "x", b"x", None, 1.5])
def test_a_body_that_is_not_a_map(value: Any) -> None:
    assert code_of(pack(value)) == NOT_A_MAP


@pytest.mark.parametrize("extra", [b"\x80", b"\x00", b"\xc1"])
def test_trailing_bytes(extra: bytes) -> None:
    assert code_of(pack({"a": 1}) + extra) == TRAILING_DATA


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x81",  # truncated map
        b"\x81\xa1a",  # key without value
        b"\xc1",  # the one byte msgpack never uses
        b"\x81\xa2\xff\xfe\x01",  # invalid UTF-8 in a str
        b"\x81\x01\x02",  # int map key
        b"\x81\x91\x01\x02",  # array map key
        b"\x81\xa1a\xd6\xff\x00\x00\x00\x01",  # timestamp ext
        b"\x81\xa1a\xd4\x05\x00",  # fixext 1
        b"\x81\xa1a\xc7\x00\x05",  # empty ext 8
        b"\x81\xa1a\xdd\xff\xff\xff\xff",  # array announcing 4G elements
        b"\x81\xa1a\xdf\xff\xff\xff\xff",  # map announcing 4G entries
        b"\x81\xa1a\xdb\xff\xff\xff\xff",  # str announcing 4 GB
        b"\x81\xa1a\xc6\xff\xff\xff\xff",  # bin announcing 4 GB
        b"\x81\xa1a" + b"\x91" * 2000 + b"\xc0",  # nesting beyond msgpack's stack
    ],
)
def test_invalid_msgpack(body: bytes) -> None:
    assert code_of(body) == BAD_MSGPACK


def test_limits_on_array_map_and_str() -> None:
    assert len(unpack_map(pack({"a": [0] * MAX_ARRAY_LEN}))["a"]) == MAX_ARRAY_LEN
    assert code_of(pack({"a": [0] * (MAX_ARRAY_LEN + 1)})) == BAD_MSGPACK
    assert len(unpack_map(pack({str(i): 0 for i in range(MAX_MAP_LEN)}))) == MAX_MAP_LEN
    assert code_of(pack({str(i): 0 for i in range(MAX_MAP_LEN + 1)})) == BAD_MSGPACK
    assert unpack_map(pack({"a": "x" * MAX_STR_LEN}))["a"] == "x" * MAX_STR_LEN
    assert code_of(pack({"a": "x" * (MAX_STR_LEN + 1)})) == BAD_MSGPACK
    assert code_of(pack({"a": b"x" * (MAX_STR_LEN + 1)})) == BAD_MSGPACK


def test_a_body_over_the_frame_limit() -> None:
    assert code_of(b"\x81\xa1a\xc6" + (MAX_FRAME).to_bytes(4, "big") + bytes(MAX_FRAME)) == FRAME_TOO_LARGE


def test_container_budget_refuses_a_large_body_of_empty_containers() -> None:
    assert len(pack({"a": [[{}] * 20000] * 4})) > BUDGET_FROM
    assert code_of(pack({"a": [[{}] * 20000] * 4})) == TOO_MANY_OBJECTS
    assert code_of(pack({"a": [[[]] * 20000] * 4})) == TOO_MANY_OBJECTS
    # The same kind of body with 32 bytes per container is within budget.
    assert len(unpack_map(pack({"a": [["x" * 30]] * 3000}))["a"]) == 3000


@pytest.mark.parametrize("size", [BUDGET_FROM, 100_000, 100_031])
def test_container_budget_is_floor_of_size_over_32_plus_8(size: int) -> None:
    # protocol.md 2 states the budget exactly: floor(L/32) + 8 maps and arrays, all counted.
    def body(containers: int) -> bytes:
        """A body of ``size`` bytes with exactly ``containers`` maps and arrays (the map, an
        array, then empty arrays), padded with two str16 strings (each within MAX_STR_LEN)."""
        empty = containers - 2
        pad = size - len(pack({"a": [[]] * empty, "p": "", "q": ""})) - 4  # str16: 2 more bytes each
        padded = pack({"a": [[]] * empty, "p": "x" * (pad // 2), "q": "x" * (pad - pad // 2)})
        assert len(padded) == size
        return padded

    budget = size // 32 + 8
    assert len(unpack_map(body(budget))["a"]) == budget - 2
    assert code_of(body(budget + 1)) == TOO_MANY_OBJECTS


def test_small_bodies_are_not_budgeted() -> None:
    # Under BUDGET_FROM even 64x amplification is a few MB: decoded at full speed.
    assert len(unpack_map(pack({"a": [{}] * 1000}))["a"]) == 1000


def test_no_exception_but_protocol_error_for_unhashable_or_odd_keys() -> None:
    # bin keys are allowed by msgpack's strict_map_key; they are just unknown fields.
    assert unpack_map(b"\x81\xc4\x01k\x01") == {b"k": 1}
    assert code_of(b"\x81\xc0\x01") == BAD_MSGPACK  # nil key
    assert code_of(b"\x81\x80\x01") == BAD_MSGPACK  # map key


# ----------------------------------------------------------------- repeated map keys


def map_header(n: int) -> bytes:
    return bytes((0x80 | n,)) if n < 16 else b"\xde" + n.to_bytes(2, "big")


def pack_repeating(obj: Any, path: list[Any], value: Any) -> bytes:
    """``pack(obj)``, except that the map at ``path`` gets its first key once more, with
    ``value``: bytes no Python dict can produce."""
    if not path:
        assert isinstance(obj, dict) and obj
        pairs = [*obj.items(), (next(iter(obj)), value)]
        return map_header(len(pairs)) + b"".join(pack(k) + pack(v) for k, v in pairs)
    step, rest = path[0], path[1:]
    if isinstance(obj, dict):
        items = [pack(k) + (pack_repeating(v, rest, value) if k == step else pack(v)) for k, v in obj.items()]
        return map_header(len(obj)) + b"".join(items)
    return array_header(len(obj)) + b"".join(
        pack_repeating(v, rest, value) if i == step else pack(v) for i, v in enumerate(obj)
    )


def test_a_repeated_key_is_refused_not_read_one_way() -> None:
    # msgpack alone keeps the last value: this would decode as a message of type "Foo".
    body = b"\x82\xa4type\xa9Heartbeat\xa4type\xa3Foo"
    assert msgpack.unpackb(body) == {"type": "Foo"}
    with pytest.raises(ProtocolError) as info:
        unpack_map(body)
    assert info.value.code == BAD_MSGPACK and "'type' repeated" in str(info.value)


@pytest.mark.parametrize("big", [False, True], ids=["small body", "budgeted body"])
def test_a_repeated_key_deep_inside_is_refused_whatever_the_body_size(big: bool) -> None:
    padding = ["x" * 60] * (BUDGET_FROM // 60 if big else 1)
    tree = {"type": "Heartbeat", "payload": {"peers": [{"address": "a", "node_id": "b"}], "pad": padding}}
    body = pack_repeating(tree, ["payload", "peers", 0], "c")
    assert (len(body) >= BUDGET_FROM) == big
    assert code_of(body) == BAD_MSGPACK
    assert unpack_map(pack(tree)) == tree  # the same tree without the repeat is fine


def test_a_str_key_and_a_bin_key_of_the_same_bytes_are_not_a_repeat() -> None:
    assert unpack_map(b"\x82\xa1k\x01\xc4\x01k\x02") == {"k": 1, b"k": 2}


keys = st.text(max_size=6)
trees = st.recursive(
    st.none() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8) | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=20,
)


def map_paths(obj: Any, path: list[Any]) -> list[list[Any]]:
    """Paths to every non-empty map in ``obj``."""
    found = [path] if isinstance(obj, dict) and obj else []
    children = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else []
    for step, child in children:
        found += map_paths(child, [*path, step])
    return found


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, trees, min_size=1, max_size=4), st.data())
def test_any_map_with_a_repeated_key_is_refused(tree: dict[str, Any], data: st.DataObject) -> None:
    assert unpack_map(pack(tree)) == tree
    path = data.draw(st.sampled_from(map_paths(tree, [])))
    value = data.draw(trees)
    assert code_of(pack_repeating(tree, path, value)) == BAD_MSGPACK


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\xcc\x80"),
        (256, b"\xcd\x01\x00"),
        (2**32, b"\xcf\x00\x00\x00\x01\x00\x00\x00\x00"),
        (-1, b"\xff"),
        (-33, b"\xd0\xdf"),
        ("ab", b"\xa2ab"),
        (b"ab", b"\xc4\x02ab"),
        (1.5, b"\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00"),
        (True, b"\xc3"),
        (None, b"\xc0"),
    ],
)
def test_pack_is_canonical(value: Any, expected: bytes) -> None:
    assert pack(value) == expected


@pytest.mark.parametrize("length", [0, 1, 15, 16, 65535, 65536])
def test_array_header_matches_pack(length: int) -> None:
    assert pack([None] * length).startswith(array_header(length))
    assert len(pack([None] * length)) == len(array_header(length)) + length


def _hostile_bodies() -> dict[str, bytes]:
    """4 MiB-class bodies built to cost the most decoded memory per byte, shape by shape."""
    n = MAX_ARRAY_LEN  # the longest array the decoder allows
    leaves: dict[str, Any] = {
        "two-char strings": "ab",  # 3 bytes -> a 51-byte str and an 8-byte slot
        "16-bit ints": 40_000,  # 3 bytes -> a 28-byte int
        "one-byte bins": b"\x01",  # 3 bytes -> a 34-byte bytes
        "floats": 0.5,  # 9 bytes -> a 24-byte float
    }
    leaves["empty maps"] = {}  # 1 byte -> a 64-byte dict: what the container budget is for

    def fill(leaf: Any) -> bytes:
        rows = (MAX_FRAME - 64) // (len(pack(leaf)) * n + 3)  # as many full arrays as fit
        return pack({"x": [[leaf] * n for _ in range(rows)]})

    bodies = {name: fill(leaf) for name, leaf in leaves.items()}
    # Distinct objects: msgpack builds a new one per element, but be sure no cache flatters us.
    bodies["distinct strings"] = pack({"x": [[f"{i % 100:02}" for i in range(n)] for _ in range(69)]})
    return bodies


@pytest.mark.parametrize("shape", sorted(_hostile_bodies()))
def test_decoding_a_hostile_body_costs_at_most_a_bounded_multiple_of_its_size(shape: str) -> None:
    """protocol.md section 2: decoding never costs more than ~20x the body, whatever its shape."""
    import tracemalloc

    body = _hostile_bodies()[shape]
    assert len(body) <= MAX_FRAME
    tracemalloc.start()
    try:
        try:
            decoded = unpack_map(body)
        except ProtocolError:
            decoded = None  # refused: what it cost before refusing still counts below
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del decoded
    assert peak <= DECODE_COST_BOUND * len(body), f"{shape}: {peak / len(body):.1f}x the body"
