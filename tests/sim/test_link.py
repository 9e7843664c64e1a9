"""The simulated link: trio's stream contract, then latency, bandwidth, loss, flow control,
partitions, close and reset, all in MockClock time."""

import random

import pytest
import trio
import trio.testing

from trionode.sim.link import MAX_RETRANSMITS, WINDOW, Link, LinkProfile, SimStream


def link(profile: LinkProfile | None = None, seed: int = 0) -> Link:
    return Link(1, "10.0.0.1:40000", "10.0.0.2:5001", profile or LinkProfile(), random.Random(seed))


async def make_pair() -> tuple[SimStream, SimStream]:
    lk = link()
    return lk.client_end, lk.server_end


async def test_trio_stream_contract() -> None:
    await trio.testing.check_two_way_stream(make_pair, None)


async def test_latency_and_bandwidth_set_arrival(autojump_clock: trio.testing.MockClock) -> None:
    lk = link(LinkProfile(latency=0.05, bandwidth=100_000))
    start = trio.current_time()
    await lk.client_end.send_all(b"x" * 10_000)  # 0.1 s on the wire, then 0.05 s in flight
    assert await lk.server_end.receive_some() == b"x" * 10_000
    assert trio.current_time() - start == pytest.approx(0.15)
    await lk.client_end.send_all(b"a")
    await lk.client_end.send_all(b"b")
    await trio.sleep(1)
    assert await lk.server_end.receive_some() == b"ab"  # in order, joined as TCP may


async def test_jitter_never_reorders(autojump_clock: trio.testing.MockClock) -> None:
    lk = link(LinkProfile(latency=0.01, jitter=0.5), seed=7)
    for i in range(50):
        await lk.client_end.send_all(bytes([i]))
    got = b""
    while len(got) < 50:
        got += await lk.server_end.receive_some()
    assert got == bytes(range(50))


async def test_loss_is_retransmission_delay(autojump_clock: trio.testing.MockClock) -> None:
    lk = link(LinkProfile(latency=0.01, loss=1.0, rto=0.2))
    start = trio.current_time()
    await lk.client_end.send_all(b"lost every time")
    assert await lk.server_end.receive_some() == b"lost every time"  # late, never dropped
    backoff = sum(0.2 * 2**k for k in range(MAX_RETRANSMITS))
    assert trio.current_time() - start == pytest.approx(0.01 + backoff)


async def test_full_window_blocks_the_sender(autojump_clock: trio.testing.MockClock) -> None:
    lk = link()
    await lk.client_end.send_all(b"x" * WINDOW)
    with trio.move_on_after(5) as scope:
        await lk.client_end.send_all(b"more")
    assert scope.cancelled_caught  # nobody reads: the socket buffer is full
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lk.client_end.send_all, b"more")
        await trio.sleep(1)
        data = b""
        while len(data) < WINDOW + 4:
            data += await lk.server_end.receive_some()
    assert data.endswith(b"more")


async def test_blackhole_holds_bytes_until_heal(autojump_clock: trio.testing.MockClock) -> None:
    lk = link(LinkProfile(latency=0.01, rto=0.3))
    lk.block(trio.current_time())
    await lk.client_end.send_all(b"held")
    with trio.move_on_after(100) as scope:
        await lk.server_end.receive_some()
    assert scope.cancelled_caught
    healed = trio.current_time()
    lk.unblock(healed)
    assert await lk.server_end.receive_some() == b"held"
    assert trio.current_time() == pytest.approx(healed + 0.3)


async def test_close_delivers_then_eof_and_later_writes_fail(autojump_clock: trio.testing.MockClock) -> None:
    lk = link(LinkProfile(latency=0.1))
    await lk.client_end.send_all(b"bye")
    await lk.client_end.aclose()
    assert await lk.server_end.receive_some() == b"bye"
    assert await lk.server_end.receive_some() == b""
    # The closed end's RST comes back one round trip after the first write into it.
    await lk.server_end.send_all(b"into the void")
    await trio.sleep(0.3)
    with pytest.raises(trio.BrokenResourceError):
        await lk.server_end.send_all(b"again")


async def test_reset_breaks_both_ends(autojump_clock: trio.testing.MockClock) -> None:
    lk = link(LinkProfile(latency=0.1))
    await lk.client_end.send_all(b"in flight")

    async def read() -> None:
        with pytest.raises(trio.BrokenResourceError):
            await lk.server_end.receive_some()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await trio.sleep(0.01)
        lk.break_()
    with pytest.raises(trio.BrokenResourceError):
        await lk.client_end.send_all(b"x")
