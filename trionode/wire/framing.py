"""Length-prefixed frames: a 4-byte big-endian length L, then L bytes of body.

``FrameDecoder`` takes bytes in whatever pieces the socket delivers and returns whole bodies.
It reads the declared length as soon as its 4 bytes are in and rejects it before taking (or
keeping) any byte of the body, so a peer announcing 4 GB costs us four bytes.
"""

import struct
from typing import Final, TypeGuard

from trionode.wire.errors import EMPTY_FRAME, FRAME_TOO_LARGE, MessageTooLarge, ProtocolError

# 4 MiB: a full 1 MB block four times over, or a 500-block sync response of small blocks.
MAX_FRAME: Final = 4 * 1024 * 1024
# The handshake's frames (a Hello and a HelloProof each way, or a refusing Error, whose peer
# list trionode keeps to what fits: payloads.MAX_PEERS_BEFORE_HANDSHAKE): 128 KiB bounds what
# a stranger who never completes a handshake can make us buffer and decode, 32x less than a
# full frame.
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
    with ``MAX_FIRST_FRAME``); every later frame may be up to ``MAX_FRAME``. The buffer only
    ever holds one frame's beginning: the missing bytes of its prefix, and after the length
    check the missing bytes of its body, are taken from a piece and no more. Complete frames
    in a piece are sliced straight out of it, so feeding a stream costs O(bytes) however it is
    cut.
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
        """Add received bytes; return the bodies of the frames they complete, in order.

        A bad length prefix raises ``ProtocolError``, and the frames before it in ``data`` are
        lost with it: ``feed_partial`` keeps them."""
        bodies: list[bytes] = []
        self._feed(data, bodies)
        return bodies

    def _whole(self, data: bytes | bytearray | memoryview) -> TypeGuard[bytes]:
        """``data`` is exactly one complete, allowed frame and nothing is buffered: the common
        case of a small message read alone, split without a memoryview or a loop."""
        return (
            type(data) is bytes
            and len(data) > PREFIX_BYTES
            and not self._buffer
            and not self._limited
            and self._failed is None
            and _PREFIX.unpack_from(data)[0] == len(data) - PREFIX_BYTES <= MAX_FRAME
        )

    def feed_partial(self, data: bytes | bytearray | memoryview) -> tuple[list[bytes], ProtocolError | None]:
        """Like ``feed``, but a bad length prefix is returned with the bodies completed before it
        (a connection still handles what a peer sent before its bad frame)."""
        bodies: list[bytes] = []
        try:
            self._feed(data, bodies)
        except ProtocolError as exc:
            return bodies, exc
        return bodies, None

    def _feed(self, data: bytes | bytearray | memoryview, bodies: list[bytes]) -> None:
        if self._whole(data):
            bodies.append(data[PREFIX_BYTES:])
            return
        if self._failed is not None:
            raise self._failed
        try:
            with memoryview(data) as view:
                pos = self._fill(view, bodies) if self._buffer else 0
                if pos < len(view):
                    before = len(bodies)
                    rest = view[pos:] if pos else view
                    end = pos + _split(rest, self._first_limit, self._limited, bodies)
                    self._limited = max(0, self._limited - (len(bodies) - before))
                    if end < len(view):
                        # A prefix fragment, or the start of a frame whose length passed.
                        self._buffer += view[end:]
        except ProtocolError as exc:
            self._failed = exc
            self._buffer.clear()
            raise

    def _fill(self, view: memoryview, bodies: list[bytes]) -> int:
        """Complete the buffered frame from ``view``; returns how many bytes of it were taken."""
        buffer = self._buffer
        pos = 0
        if len(buffer) < PREFIX_BYTES:
            pos = min(PREFIX_BYTES - len(buffer), len(view))
            buffer += view[:pos]
            if len(buffer) < PREFIX_BYTES:
                return pos
        length: int = _PREFIX.unpack_from(buffer)[0]
        if pos:  # the prefix is complete just now: check it before taking any of the body
            _check_length(length, self._first_limit if self._limited > 0 else MAX_FRAME)
        take = min(PREFIX_BYTES + length - len(buffer), len(view) - pos)
        buffer += view[pos : pos + take]
        pos += take
        if len(buffer) == PREFIX_BYTES + length:
            with memoryview(buffer) as whole:
                bodies.append(whole[PREFIX_BYTES:].tobytes())
            buffer.clear()
            self._limited = max(0, self._limited - 1)
        return pos


def _split(view: memoryview, first_limit: int, limited: int, bodies: list[bytes]) -> int:
    """Append the frames in ``view`` from its start to ``bodies``; the offset of the first
    unused byte.

    The first ``limited`` frames in ``view`` may be up to ``first_limit``; later ones up to
    ``MAX_FRAME``. A length prefix is checked as soon as it is complete, whether or not its
    body is in ``view``; a bad one raises, leaving the frames before it in ``bodies``.
    """
    pos = 0
    size = len(view)
    unpack_from = _PREFIX.unpack_from
    append = bodies.append
    limit = first_limit if limited > 0 else MAX_FRAME
    while size - pos >= PREFIX_BYTES:
        (length,) = unpack_from(view, pos)
        if length == 0 or length > limit:
            _check_length(length, limit)
        end = pos + PREFIX_BYTES + length
        if end > size:
            break
        append(view[pos + PREFIX_BYTES : end].tobytes())
        pos = end
        limited -= 1
        if limited <= 0:
            limit = MAX_FRAME
    return pos
