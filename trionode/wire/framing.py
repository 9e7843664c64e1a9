"""Length-prefixed frames: a 4-byte big-endian length L, then L bytes of body.

``FrameDecoder`` takes bytes in whatever pieces the socket delivers and returns whole bodies.
It reads the declared length as soon as its 4 bytes are in and rejects it before waiting for
(or keeping) any of the body, so a peer announcing 4 GB costs us four bytes.
"""

import struct
from typing import Final

from trionode.wire.errors import EMPTY_FRAME, FRAME_TOO_LARGE, MessageTooLarge, ProtocolError

# 4 MiB: a full 1 MB block four times over, or a 500-block sync response of small blocks.
MAX_FRAME: Final = 4 * 1024 * 1024
# The length prefix: 4 bytes, unsigned, big-endian (network order).
_PREFIX: Final = struct.Struct(">I")
PREFIX_BYTES: Final = _PREFIX.size


def _check_length(length: int) -> None:
    if length == 0:
        raise ProtocolError(EMPTY_FRAME, "", "frame length 0 (a body is one msgpack map)")
    if length > MAX_FRAME:
        raise ProtocolError(FRAME_TOO_LARGE, "", f"frame length {length} > {MAX_FRAME}")


def encode_frame(body: bytes) -> bytes:
    """Prefix ``body`` with its length; ``MessageTooLarge`` if it is empty or over the limit."""
    if not 1 <= len(body) <= MAX_FRAME:
        raise MessageTooLarge(f"frame body of {len(body)} bytes; must be 1..{MAX_FRAME}")
    return _PREFIX.pack(len(body)) + body


class FrameDecoder:
    """Incremental frame splitter; after a ``ProtocolError`` it stays failed.

    Complete frames in a piece are sliced straight out of it; only an incomplete tail is
    copied into the buffer, and the buffer is compacted once per ``feed``, so feeding a
    stream costs O(bytes) however it is cut.
    """

    __slots__ = ("_buffer", "_failed")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._failed: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame (for slow-sender accounting)."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add received bytes; return the bodies of the frames they complete, in order."""
        if self._failed is not None:
            raise self._failed
        if not data:
            return []
        buffer = self._buffer
        try:
            if buffer:
                buffer += data
                with memoryview(buffer) as view:
                    bodies, end = _split(view)
                del buffer[:end]
            else:
                with memoryview(data) as view:
                    bodies, end = _split(view)
                    if end < len(view):
                        buffer += view[end:]
        except ProtocolError as exc:
            self._failed = exc
            buffer.clear()
            raise
        return bodies


def _split(view: memoryview) -> tuple[list[bytes], int]:
    """Frames in ``view`` from its start: (bodies, offset of the first unused byte)."""
    bodies: list[bytes] = []
    pos = 0
    size = len(view)
    unpack_from = _PREFIX.unpack_from
    while size - pos >= PREFIX_BYTES:
        (length,) = unpack_from(view, pos)
        if length == 0 or length > MAX_FRAME:
            _check_length(length)
        end = pos + PREFIX_BYTES + length
        if end > size:
            break
        bodies.append(view[pos + PREFIX_BYTES : end].tobytes())
        pos = end
    return bodies, pos
