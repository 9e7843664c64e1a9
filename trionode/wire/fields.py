"""Typed field readers: each returns the value or raises a ProtocolError naming the field.

Payload fields are checked by exact type (``type(x) is int``), so msgpack's bool never passes
for an int; hex strings must be lowercase and exactly as long as the protocol says, so one
value has one spelling on the wire.
"""

import math
import re
import sys
from typing import Annotated, Any, Final

import msgspec

from trionode.chain.encoding import UINT64_MAX
from trionode.wire.errors import BAD_FIELD, MISSING_FIELD, ProtocolError

_MISSING: Final = object()
# Cumulative work is below 2**256: at most 64 hex digits; no sign, 0x, _ or spaces.
MAX_WORK_DIGITS: Final = 64
WORK_HEX: Final = re.compile(f"[0-9a-f]{{1,{MAX_WORK_DIGITS}}}")
# SHA-256 hashes (block hashes, the network id), and node ids: 128 random bits are enough
# that two nodes never pick the same one, while staying short in logs.
HASH_BYTES: Final = 32
NODE_ID_BYTES: Final = 16


# The same limits as msgspec types, for the compiled decoder (``fastpath``): lengths and
# ranges only; that hex is lowercase hex is still checked in Python after decoding.
NodeIdHex = Annotated[str, msgspec.Meta(min_length=2 * NODE_ID_BYTES, max_length=2 * NODE_ID_BYTES)]
HashHex = Annotated[str, msgspec.Meta(min_length=2 * HASH_BYTES, max_length=2 * HASH_BYTES)]
WorkHex = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_WORK_DIGITS)]
# UNIX seconds: finite and not negative (NaN fails ``ge``).
Seconds = Annotated[float, msgspec.Meta(ge=0.0, le=sys.float_info.max)]


def bad(field: str, detail: str) -> ProtocolError:
    return ProtocolError(BAD_FIELD, field, detail)


def _type_name(value: Any) -> str:
    return "nil" if value is None else type(value).__name__


def get(mapping: dict[Any, Any], key: str, prefix: str = "payload") -> Any:
    """The value at ``key``; a missing key is ``missing_field`` (a nil value is not missing)."""
    value = mapping.get(key, _MISSING)
    if value is _MISSING:
        raise ProtocolError(MISSING_FIELD, f"{prefix}.{key}" if prefix else key, "required field is missing")
    return value


def want_map(value: Any, field: str) -> dict[Any, Any]:
    if type(value) is not dict:
        raise bad(field, f"expected map, got {_type_name(value)}")
    return value


def want_list(value: Any, field: str, max_len: int) -> list[Any]:
    if type(value) is not list:
        raise bad(field, f"expected array, got {_type_name(value)}")
    if len(value) > max_len:
        raise bad(field, f"at most {max_len} elements, got {len(value)}")
    return value


def want_int(value: Any, field: str, low: int = 0, high: int = UINT64_MAX) -> int:
    if type(value) is not int:
        raise bad(field, f"expected int, got {_type_name(value)}")
    if not low <= value <= high:
        raise bad(field, f"out of range {low}..{high}: {value}")
    return value


def want_bool(value: Any, field: str) -> bool:
    if type(value) is not bool:
        raise bad(field, f"expected bool, got {_type_name(value)}")
    return value


def want_str(value: Any, field: str, max_chars: int) -> str:
    if type(value) is not str:
        raise bad(field, f"expected str, got {_type_name(value)}")
    if len(value) > max_chars:
        raise bad(field, f"at most {max_chars} characters, got {len(value)}")
    return value


def want_time(value: Any, field: str) -> float:
    """UNIX seconds: a float (or an int, which peers may send), finite and not negative."""
    if type(value) is float:
        if value >= 0.0 and math.isfinite(value):
            return value
        raise bad(field, f"expected finite seconds >= 0, got {value}")
    if type(value) is int and value >= 0:
        return float(value)
    raise bad(field, f"expected float seconds >= 0, got {_type_name(value)}")


_fromhex = bytes.fromhex  # (hex_bytes runs for most fields of every Heartbeat)


def hex_bytes(value: str, length: int) -> bytes | None:
    """``value`` as ``length`` bytes if it is exactly ``2 * length`` lowercase hex characters."""
    try:
        raw = _fromhex(value)
    except ValueError:
        return None
    # fromhex also takes uppercase and spaces: the round trip admits only our spelling.
    return raw if len(raw) == length and raw.hex() == value else None


def want_hex(value: Any, field: str, length: int) -> bytes:
    """Exactly ``length`` bytes written as ``2 * length`` lowercase hex characters."""
    if type(value) is str and len(value) == 2 * length:
        raw = hex_bytes(value, length)
        if raw is not None:
            return raw
        raise bad(field, f"expected {2 * length} lowercase hex characters")
    if type(value) is str:
        raise bad(field, f"expected {2 * length} lowercase hex characters, got {len(value)}")
    raise bad(field, f"expected hex str, got {_type_name(value)}")


def want_hash(value: Any, field: str) -> bytes:
    return want_hex(value, field, HASH_BYTES)


def want_node_id(value: Any, field: str) -> bytes:
    return want_hex(value, field, NODE_ID_BYTES)


def want_work(value: Any, field: str) -> int:
    """Cumulative work: 1..64 lowercase hex digits (it outgrows uint64), leading zeros allowed."""
    if type(value) is str and WORK_HEX.fullmatch(value):
        return int(value, 16)
    raise bad(field, f"expected 1..{MAX_WORK_DIGITS} lowercase hex digits")


def work_hex(work: int) -> str:
    """The wire spelling of cumulative work: shortest lowercase hex."""
    return format(work, "x")
