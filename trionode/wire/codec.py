"""msgpack in and out, with every limit set: a frame body becomes one map or a ProtocolError.

Decoding uses ``msgpack.unpackb`` on the whole body (the frame decoder has already bounded it
by ``MAX_FRAME``); ``unpackb`` decodes the given buffer in place, so msgpack's
``max_buffer_size`` (an option of its streaming ``Unpacker``) has nothing to bound, and the
same limit is checked here explicitly instead. Encoding goes through one cached ``Packer``.
"""

from collections.abc import Callable
from typing import Any, Final, NoReturn

import msgpack

from trionode.chain.block import MAX_BLOCK_TXS
from trionode.wire.errors import (
    BAD_MSGPACK,
    FRAME_TOO_LARGE,
    NOT_A_MAP,
    TOO_MANY_OBJECTS,
    TRAILING_DATA,
    ProtocolError,
)
from trionode.wire.framing import MAX_FRAME

if msgpack.Unpacker.__module__ != "msgpack._cmsgpack" or msgpack.Packer.__module__ != "msgpack._cmsgpack":
    raise ImportError(
        "trionode needs msgpack's C extension (msgpack._cmsgpack): the pure-Python fallback is "
        "many times slower on the hot path; reinstall msgpack from a wheel for this platform"
    )

# The largest array a v1 message holds: a block's transactions (MAX_BLOCK_TXS). Peers (1,000),
# blocks per response (500) and locators (101) are shorter; payloads check their own limits.
MAX_ARRAY_LEN: Final = MAX_BLOCK_TXS
# v1 maps have at most 8 keys; room for extension keys, but a 64k-key map is refused unread.
MAX_MAP_LEN: Final = 256
# The longest v1 string is Error.reason (1,024 chars, at most 4 KiB of UTF-8) and the longest
# bin a 64-byte signature; 64 KiB leaves room for extension fields while still refusing one
# absurd item before it is copied (the frame limit already bounds memory in total).
MAX_STR_LEN: Final = 64 * 1024
MAX_BIN_LEN: Final = 64 * 1024
# A valid v1 message has at most one container per 36 bytes of body besides the envelope's
# few (the densest is a block of minimal coinbase-sized transaction arrays). Budgeting one
# per 32 bytes plus 8 never refuses a valid frame, and caps what a hostile body of empty maps
# and arrays can cost: ~64x its size in Python objects without the budget (256 MB for 4 MiB),
# a few times its size with it.
BYTES_PER_CONTAINER: Final = 32
CONTAINER_SLACK: Final = 8
# What decoding a body may cost in Python objects, at most, as a multiple of its size: the
# worst shape left once containers are budgeted is arrays of two-character strings (3 bytes
# each on the wire, a 51-byte str and an 8-byte slot decoded), ~20x. One body is decoded at a
# time, and a stranger's handshake frames are at most 128 KiB (framing.MAX_FIRST_FRAME), so a
# hostile peer can make us hold at most ~85 MB, briefly. Tested with tracemalloc.
DECODE_COST_BOUND: Final = 24
# Below this size even 64x is only a few MB, so small bodies (every message but big blocks
# and sync responses) skip the container budget. Every body's maps go through
# ``_unique_keys`` (protocol.md 2: no repeated key): about 0.5 us per map, ~1 us per Heartbeat.
BUDGET_FROM: Final = 64 * 1024


def _no_ext(code: int, data: bytes) -> NoReturn:
    raise ProtocolError(BAD_MSGPACK, "", f"ext type {code} (ext types are not allowed)")


_LIMITS: Final[dict[str, Any]] = {
    "raw": False,  # str is UTF-8 text, bin is bytes; invalid UTF-8 is an error
    "strict_map_key": True,  # map keys are str (or bin), never ints, floats or containers
    "use_list": True,
    "max_str_len": MAX_STR_LEN,
    "max_bin_len": MAX_BIN_LEN,
    "max_array_len": MAX_ARRAY_LEN,
    "max_map_len": MAX_MAP_LEN,
    "max_ext_len": 0,  # with ``_no_ext``: no ext type, including msgpack's timestamp (-1)
    "ext_hook": _no_ext,
}

# Safe to share: ``pack`` runs in one C call that calls back into no Python for the plain
# dicts, lists, str, bytes, int, float and bool we give it, so the GIL makes it atomic.
_packer: Final = msgpack.Packer(use_bin_type=True, autoreset=True)


def pack(obj: Any) -> bytes:
    """msgpack bytes of ``obj`` in the canonical form (shortest ints, str vs bin, float64)."""
    return _packer.pack(obj)  # type: ignore[no-any-return]


def array_header(length: int) -> bytes:
    """The msgpack array header for ``length`` elements, exactly as ``pack`` writes it."""
    if length < 16:
        return bytes((0x90 | length,))
    if length < 0x10000:
        return b"\xdc" + length.to_bytes(2, "big")
    return b"\xdd" + length.to_bytes(4, "big")


def _unique_keys(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """A map from msgpack's (key, value) pairs; a key given twice is an error (protocol.md 2).

    msgpack-python would keep the last value and a decoder in another language may keep the
    first: refusing the map means no two peers can read one message two ways.
    """
    mapping = dict(pairs)
    if len(mapping) != len(pairs):
        seen: set[Any] = set()
        for key, _ in pairs:
            if key in seen:
                raise ProtocolError(BAD_MSGPACK, "", f"map key {str(key)[:64]!r} repeated")
            seen.add(key)
    return mapping


def _container_budget(budget: int, size: int) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """msgpack hooks (for arrays, for maps' pairs) that build containers as usual and fail
    after ``budget`` of them."""
    spend = iter(range(budget)).__next__

    def over() -> ProtocolError:
        return ProtocolError(TOO_MANY_OBJECTS, "", f"more than {budget} maps and arrays in {size} bytes")

    def array(container: Any) -> Any:
        try:
            spend()
        except StopIteration:
            raise over() from None
        return container

    def mapping(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
        try:
            spend()
        except StopIteration:
            raise over() from None
        return _unique_keys(pairs)

    return array, mapping


def unpack_map(body: bytes) -> dict[Any, Any]:
    """Decode a frame body that must be exactly one msgpack map; anything else is an error."""
    if len(body) > MAX_FRAME:
        raise ProtocolError(FRAME_TOO_LARGE, "", f"body of {len(body)} bytes > {MAX_FRAME}")
    try:
        if len(body) < BUDGET_FROM:
            obj = msgpack.unpackb(body, object_pairs_hook=_unique_keys, **_LIMITS)
        else:
            array, mapping = _container_budget(CONTAINER_SLACK + len(body) // BYTES_PER_CONTAINER, len(body))
            obj = msgpack.unpackb(body, list_hook=array, object_pairs_hook=mapping, **_LIMITS)
    except ProtocolError:
        raise
    except msgpack.ExtraData:
        raise ProtocolError(TRAILING_DATA, "", "bytes after the body's one msgpack object") from None
    except Exception as exc:  # msgpack reports bad input as ValueError, TypeError, StackError...
        raise ProtocolError(BAD_MSGPACK, "", f"{type(exc).__name__}: {exc}") from None
    if type(obj) is not dict:
        raise ProtocolError(NOT_A_MAP, "", f"body is a {type(obj).__name__}, not a map")
    return obj
