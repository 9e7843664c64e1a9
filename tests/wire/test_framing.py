import itertools
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trionode.wire.errors import EMPTY_FRAME, FRAME_TOO_LARGE, MessageTooLarge, ProtocolError
from trionode.wire.framing import HANDSHAKE_FRAMES, MAX_FIRST_FRAME, MAX_FRAME, FrameDecoder, encode_frame


def test_encode_frame_prefixes_big_endian_length() -> None:
    assert encode_frame(b"\x80") == b"\x00\x00\x00\x01\x80"
    assert encode_frame(b"x" * 0x10203)[:4] == b"\x00\x01\x02\x03"


@pytest.mark.parametrize("size", [0, MAX_FRAME + 1])
def test_encode_frame_refuses_empty_and_oversized(size: int) -> None:
    with pytest.raises(MessageTooLarge):
        encode_frame(b"x" * size)


def test_one_frame_whole_and_byte_by_byte() -> None:
    frame = encode_frame(b"hello")
    assert FrameDecoder().feed(frame) == [b"hello"]
    decoder = FrameDecoder()
    got = [body for i in range(len(frame)) for body in decoder.feed(frame[i : i + 1])]
    assert got == [b"hello"]
    assert decoder.buffered == 0


def test_many_frames_in_one_piece_with_a_partial_tail() -> None:
    decoder = FrameDecoder()
    stream = b"".join(encode_frame(bytes([i]) * (i + 1)) for i in range(10))
    tail = encode_frame(b"tail")
    assert decoder.feed(stream + tail[:6]) == [bytes([i]) * (i + 1) for i in range(10)]
    assert decoder.buffered == 6
    assert decoder.feed(tail[6:]) == [b"tail"]
    assert decoder.buffered == 0


def test_accepts_bytearray_and_memoryview_and_empty_pieces() -> None:
    decoder = FrameDecoder()
    frame = encode_frame(b"abc")
    assert decoder.feed(b"") == []
    assert decoder.feed(bytearray(frame[:3])) == []
    assert decoder.feed(memoryview(frame)[3:]) == [b"abc"]


def test_zero_length_is_an_error() -> None:
    with pytest.raises(ProtocolError) as info:
        FrameDecoder().feed(b"\x00\x00\x00\x00")
    assert info.value.code == EMPTY_FRAME


@pytest.mark.parametrize("length", [MAX_FRAME + 1, 2**32 - 1])
def test_oversized_length_fails_on_the_prefix_alone(length: int) -> None:
    decoder = FrameDecoder()
    prefix = length.to_bytes(4, "big")
    assert decoder.feed(prefix[:3]) == []
    with pytest.raises(ProtocolError) as info:
        decoder.feed(prefix[3:])  # no body byte sent: the prefix alone is refused
    assert info.value.code == FRAME_TOO_LARGE
    assert decoder.buffered == 0


def test_bad_length_after_good_frames_in_the_same_piece() -> None:
    with pytest.raises(ProtocolError) as info:
        FrameDecoder().feed(encode_frame(b"ok") + b"\x00\x00\x00\x00")
    assert info.value.code == EMPTY_FRAME


def test_the_handshake_frames_have_their_own_limit_and_later_frames_the_full_one() -> None:
    big = encode_frame(b"\x80" * (MAX_FIRST_FRAME + 1))
    small = encode_frame(b"\x80")
    for position in range(HANDSHAKE_FRAMES):  # the Hello and the HelloProof
        with pytest.raises(ProtocolError) as info:
            FrameDecoder(MAX_FIRST_FRAME, HANDSHAKE_FRAMES).feed(small * position + big[:4])
        assert info.value.code == FRAME_TOO_LARGE
    # The limit moves to MAX_FRAME once the handshake's frames are out, within one piece too...
    decoder = FrameDecoder(MAX_FIRST_FRAME, HANDSHAKE_FRAMES)
    assert decoder.feed(small * HANDSHAKE_FRAMES + big) == [b"\x80"] * HANDSHAKE_FRAMES + [big[4:]]
    # ...or across pieces.
    split = FrameDecoder(MAX_FIRST_FRAME, HANDSHAKE_FRAMES)
    assert split.feed(small) == [b"\x80"]
    early = FrameDecoder(MAX_FIRST_FRAME, HANDSHAKE_FRAMES)
    early.feed(small)
    with pytest.raises(ProtocolError):
        early.feed(big[:4])  # the second handshake frame, in a piece of its own: still limited
    assert split.feed(small) == [b"\x80"]
    assert split.feed(big) == [big[4:]]


def test_decoder_stays_failed() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError):
        decoder.feed(b"\xff\xff\xff\xff" + b"x" * 100)
    assert decoder.buffered == 0
    with pytest.raises(ProtocolError) as info:
        decoder.feed(encode_frame(b"fine"))
    assert info.value.code == FRAME_TOO_LARGE


def test_largest_frame_in_small_pieces_is_linear() -> None:
    body = bytes(range(256)) * (MAX_FRAME // 256)
    frame = encode_frame(body)
    decoder = FrameDecoder()
    start = time.perf_counter()
    got = [b for i in range(0, len(frame), 512) for b in decoder.feed(frame[i : i + 512])]
    elapsed = time.perf_counter() - start
    assert got == [body]
    # ~8,200 pieces: linear buffering takes ~10 ms; copying the buffer per piece would take minutes.
    assert elapsed < 5.0


def test_a_batch_of_small_frames_in_one_piece_is_fast() -> None:
    stream = encode_frame(b"\x80" * 20) * 100_000
    start = time.perf_counter()
    bodies = FrameDecoder().feed(stream)
    elapsed = time.perf_counter() - start
    assert len(bodies) == 100_000
    assert all(b == b"\x80" * 20 for b in bodies)
    assert elapsed < 2.0  # ~30 ms here


@settings(max_examples=300, deadline=None)
@given(
    bodies=st.lists(st.binary(min_size=1, max_size=300), max_size=12),
    cuts=st.lists(st.integers(0, 4000), max_size=30),
)
def test_every_split_of_the_stream_gives_the_same_frames(bodies: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(b) for b in bodies)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder()
    got = [body for a, b in itertools.pairwise(points) for body in decoder.feed(stream[a:b])]
    assert got == bodies
    assert decoder.buffered == 0


def test_feed_partial_keeps_the_frames_before_a_bad_length() -> None:
    decoder = FrameDecoder()
    bodies, error = decoder.feed_partial(encode_frame(b"one") + encode_frame(b"two") + b"\x00\x00\x00\x00")
    assert bodies == [b"one", b"two"]
    assert error is not None and error.code == EMPTY_FRAME
    assert decoder.feed_partial(encode_frame(b"three")) == ([], error)  # and it stays failed
    # A buffered frame completed by the same piece as the bad prefix is kept as well.
    split = FrameDecoder()
    assert split.feed_partial(encode_frame(b"four")[:3]) == ([], None)
    bodies, error = split.feed_partial(encode_frame(b"four")[3:] + b"\xff\xff\xff\xff")
    assert bodies == [b"four"] and error is not None and error.code == FRAME_TOO_LARGE


def test_a_buffered_frame_takes_only_its_own_missing_bytes() -> None:
    decoder = FrameDecoder()
    first, second = encode_frame(b"a" * 10), encode_frame(b"b" * 20)
    assert decoder.feed(first[:2]) == []
    assert decoder.buffered == 2  # half a prefix
    assert decoder.feed(first[2:7]) == []
    assert decoder.buffered == 7  # the prefix and 3 body bytes
    assert decoder.feed(first[7:] + second + second[:5]) == [b"a" * 10, b"b" * 20]
    assert decoder.buffered == 5  # only the start of the third frame


@pytest.mark.parametrize("length", [0, MAX_FRAME + 1, 0xFFFFFFFF])
@pytest.mark.parametrize("held", [0, 1, 2, 3])
def test_a_bad_length_costs_no_memory_however_the_prefix_arrives(length: int, held: int) -> None:
    """The length is checked before anything after the prefix is kept: bytes that follow a bad
    prefix in the same piece (here 1 MB of them) are never copied, and the body it announces
    never allocated."""
    import tracemalloc

    prefix = length.to_bytes(4, "big")
    piece = prefix[held:] + bytes(1_000_000)
    decoder = FrameDecoder()
    assert decoder.feed(prefix[:held]) == []
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError):
            decoder.feed(piece)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, f"{peak} bytes"
    assert decoder.buffered == 0
