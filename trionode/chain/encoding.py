"""Canonical msgpack: the one byte form every implementation must reproduce to get our hashes.

msgpack-python always packs integers in their shortest form and strings/bytes as str/bin, so
``packb`` of the same array gives the same bytes in any conforming encoder (protocol.md lists
the rules). Decoding helpers here check types so a bad field becomes a ``DecodeError`` naming it.
"""

from typing import Annotated, Any, Final

import msgpack
import msgspec

from trionode.chain.errors import DecodeError

UINT64_MAX: Final = 2**64 - 1
# The same range as a msgspec type for compiled decoding: msgpack has no integer above
# 2**64 - 1, so ">= 0" is all of it.
UInt64 = Annotated[int, msgspec.Meta(ge=0)]


# One Packer reused: building one per call costs more than packing a transaction. Safe to share
# between threads: packing plain lists, ints, bytes and str is one C call that holds the GIL.
_packer: Final = msgpack.Packer(use_bin_type=True, autoreset=True)


def packb(obj: Any) -> bytes:
    """Canonical bytes of ``obj`` (arrays, ints, bytes, str only in canonical structures)."""
    return _packer.pack(obj)  # type: ignore[no-any-return]


def unpackb(data: bytes) -> Any:
    """Decode bytes we wrote ourselves (the store); network input goes through ``wire.codec``."""
    return msgpack.unpackb(data, raw=False, strict_map_key=True)


def want_list(value: Any, field: str, length: int | None = None, max_len: int | None = None) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise DecodeError(field, f"expected array, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise DecodeError(field, f"expected {length} elements, got {len(value)}")
    if max_len is not None and len(value) > max_len:
        raise DecodeError(field, f"at most {max_len} elements, got {len(value)}")
    return list(value)


def want_uint(value: Any, field: str, maximum: int = UINT64_MAX) -> int:
    if type(value) is not int:
        raise DecodeError(field, f"expected unsigned int, got {type(value).__name__}")
    if value < 0 or value > maximum:
        raise DecodeError(field, f"out of range 0..{maximum}: {value}")
    return value


def want_bytes(value: Any, field: str, length: int) -> bytes:
    if not isinstance(value, bytes):
        raise DecodeError(field, f"expected bin, got {type(value).__name__}")
    if len(value) != length:
        raise DecodeError(field, f"expected {length} bytes, got {len(value)}")
    return value
