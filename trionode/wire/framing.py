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
# The handshake's frames (a Hello and a HelloProof each way, or an Error whose optional peer
# list is at most 1,000 addresses, ~100 KB): 128 KiB bounds what a stranger who never
# completes a handshake can make us buffer and decode, 32x less than a full frame.
MAX_FIRST_FRAME: Final = 128 * 1024
# How many frames a side receives before its handshake is complete: the peer's Hello and
# HelloProof (anything else before them ends the connection).
HANDSHAKE_FRAMES: Final = 2
# The length prefix: 4 bytes, unsigned, big-endian (network order).
_PREFIX: Final = struct.Struct(">I")
PREFIX_BYTES: Final = _PREFIX.size


def _check_length(length: int, limit: int) -> None:
    if length == 0:
        raise ProtocolError(EMPTY_FRAME, "", "frame length 0 (a body is one msgpack map)")
    if length > limit:
        what = "frame length" if limit == MAX_FRAME else "handshake frame length"
        raise ProtocolError(FRAME_TOO_LARGE, "", f"{what} {length} > {limit}")


def encode_frame(body: bytes) -> bytes:
    """Prefix ``body`` with its length; ``MessageTooLarge`` if it is empty or over the limit."""
    if not 1 <= len(body) <= MAX_FRAME:
        raise MessageTooLarge(f"frame body of {len(body)} bytes; must be 1..{MAX_FRAME}")
    return _PREFIX.pack(len(body)) + body


class FrameDecoder:
    """Incremental frame splitter; after a ``ProtocolError`` it stays failed.

    ``first_limit`` bounds the first ``first_frames`` frames (on a connection: the handshake's,
    with ``MAX_FIRST_FRAME``); every later frame may be up to ``MAX_FRAME``. Complete frames in
    a piece are sliced straight out of it; only an incomplete tail is copied into the buffer,
    and the buffer is compacted once per ``feed``, so feeding a stream costs O(bytes) however
    it is cut.
    """

    __slots__ = ("_buffer", "_failed", "_first_limit", "_limited")

    def __init__(self, first_limit: int = MAX_FRAME, first_frames: int = 1) -> None:
        self._buffer = bytearray()
        self._failed: ProtocolError | None = None
        self._first_limit = min(first_limit, MAX_FRAME)
        self._limited = first_frames  # frames still under ``first_limit``

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
                    bodies, end = _split(view, self._first_limit, self._limited)
                del buffer[:end]
            else:
                with memoryview(data) as view:
                    bodies, end = _split(view, self._first_limit, self._limited)
                    if end < len(view):
                        buffer += view[end:]
        except ProtocolError as exc:
            self._failed = exc
            buffer.clear()
            raise
        self._limited = max(0, self._limited - len(bodies))
        return bodies


def _split(view: memoryview, first_limit: int, limited: int) -> tuple[list[bytes], int]:
    """Frames in ``view`` from its start: (bodies, offset of the first unused byte).

    The first ``limited`` frames in ``view`` may be up to ``first_limit``; later ones up to
    ``MAX_FRAME``.
    """
    bodies: list[bytes] = []
    pos = 0
    size = len(view)
    unpack_from = _PREFIX.unpack_from
    limit = first_limit if limited > 0 else MAX_FRAME
    while size - pos >= PREFIX_BYTES:
        (length,) = unpack_from(view, pos)
        if length == 0 or length > limit:
            _check_length(length, limit)
        end = pos + PREFIX_BYTES + length
        if end > size:
            break
        bodies.append(view[pos + PREFIX_BYTES : end].tobytes())
        pos = end
        if len(bodies) >= limited:
            limit = MAX_FRAME
    return bodies, pos
