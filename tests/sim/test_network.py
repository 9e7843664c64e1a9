"""The simulated network under real nodes: dialling, blackhole partitions, crash and restart."""

from pathlib import Path

import pytest
import trio
import trio.testing

from tests.runtime.harness import ALICE, events, make_node, run_until_down, wait_until
from trionode.sim.link import LinkProfile
from trionode.sim.network import SimNetwork


def slow_links(a: str, b: str) -> LinkProfile:
    return LinkProfile(latency=0.05, bandwidth=1e6)


async def test_dial_refused_and_blackholed(autojump_clock: trio.testing.MockClock) -> None:
    net = SimNetwork(1, slow_links)
    transport = net.transport("10.0.0.1")
    start = trio.current_time()
    with pytest.raises(ConnectionRefusedError):
        await transport.dial("10.0.0.2", 5001)
    assert trio.current_time() - start == pytest.approx(0.1)  # SYN out, RST back
    net.cut("10.0.0.1", "10.0.0.2")
    with trio.move_on_after(30) as scope:
        await transport.dial("10.0.0.2", 5001)
    assert scope.cancelled_caught  # no answer at all: the dialler's timeout decides


async def test_faults_compose_and_heal_one_at_a_time(autojump_clock: trio.testing.MockClock) -> None:
    net = SimNetwork(1, slow_links)
    a, b, c = "10.0.0.1", "10.0.0.2", "10.0.0.3"
    split = net.partition({a}, {b, c})
    cut = net.cut(b, c)
    also = net.partition({a, b}, {c})  # a-c is blocked by two faults now
    assert all(net.is_blocked(x, y) for x, y in ((a, b), (a, c), (b, c)))
    net.heal(split)
    assert not net.is_blocked(a, b)
    assert net.is_blocked(a, c) and net.is_blocked(b, c)  # still held by the others
    net.heal(also)
    assert not net.is_blocked(a, c) and net.is_blocked(b, c)
    net.heal(cut)
    assert not net.blocked and not net.faults
    net.partition({a}, {b})
    net.cut(a, c)
    net.heal()
    assert not net.blocked and not net.faults


async def test_a_link_stays_blackholed_until_its_last_fault_heals(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = SimNetwork(1, slow_links)
    done = trio.Event()

    async def echo(stream: trio.abc.Stream, remote: str) -> None:
        await stream.send_all(await stream.receive_some())
        done.set()

    async with trio.open_nursery() as nursery:
        net.listeners["10.0.0.2:5001"] = (echo, nursery)
        stream = await net.transport("10.0.0.1").dial("10.0.0.2", 5001)
        first = net.partition({"10.0.0.1"}, {"10.0.0.2"})
        second = net.cut("10.0.0.1", "10.0.0.2")
        await stream.send_all(b"ping")
        net.heal(first)
        with trio.move_on_after(60):
            await done.wait()
        assert not done.is_set()  # the cut still holds the bytes
        net.heal(second)
        assert await stream.receive_some() == b"ping"


async def test_partition_is_silent_until_heartbeats_time_out_then_heal_reconnects(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork(1, slow_links)
    a = make_node(net, "10.0.0.1", tmp_path)
    b = make_node(net, "10.0.0.2", tmp_path, peers=("10.0.0.1:5001",))
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await nursery.start(b.run)
        await events(b).wait_for("peer_connected", peer=a.node_id)
        await events(a).wait_for("peer_connected", peer=b.node_id)  # its handshake ends last
        cut_at = trio.current_time()
        net.partition({"10.0.0.1"}, {"10.0.0.2"})
        gone = await events(b).wait_for("peer_disconnected", peer=a.node_id, within=120)
        # A blackhole breaks nothing by itself: 3 silent heartbeat intervals (5 s) do.
        assert gone["reason"] == "timeout"
        assert trio.current_time() - cut_at >= 10
        net.heal()
        await wait_until(lambda: a.node_id in b.manager.connections, within=120)
        a.stop()
        b.stop()


async def test_crash_keeps_only_what_was_committed_and_restarts(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork(1, slow_links)
    a = make_node(net, "10.0.0.1", tmp_path)
    b = make_node(net, "10.0.0.2", tmp_path, peers=("10.0.0.1:5001",))
    b_ended = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await nursery.start(run_until_down, b, b_ended)
        await events(b).wait_for("peer_connected", peer=a.node_id)
        await b.miner.mine_one(ALICE.address)
        await wait_until(lambda: a.owner.snapshot.height == 1)
        tip = b.chain.main[-1]
        net.crash("10.0.0.2")
        b.crash()
        lost = await events(a).wait_for("peer_disconnected", peer=b.node_id)
        assert lost["reason"] == "connection_lost"  # a reset, not a goodbye
        await b_ended.wait()
        assert not events(b).matching("node_stopped")  # no graceful shutdown ran
        net.restart("10.0.0.2")
        again = make_node(net, "10.0.0.2", tmp_path, peers=("10.0.0.1:5001",), seed=1)
        assert again.node_id == b.node_id and again.chain.main[-1] == tip
        await nursery.start(again.run)
        await events(again).wait_for("peer_connected", peer=a.node_id, within=120)
        a.stop()
        again.stop()
