"""Whom the node dials, and how much: dial limits, address floods, bans and `connect`
(protocol.md 8.4), between whole nodes and scripted peers over memory streams (MockClock)."""

import contextlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from tests.runtime.harness import dial_handshake, events, make_node, scripted_identity, wall
from trionode.net.candidates import MAX_DISCOVERED_PER_HOST
from trionode.net.dialer import DIAL_BURST, DIAL_RATE
from trionode.net.manager import MAX_INBOUND_HANDSHAKING, ConnectError
from trionode.net.transport import Transport
from trionode.node.app import Node
from trionode.sim.network import SimNetwork
from trionode.wire import messages as m
from trionode.wire.framing import FrameDecoder


class CountingTransport:
    """A node's transport that counts its dials per host, and the most in flight at once."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.attempts: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.most_in_flight = 0
        self.most_per_host = 0

    async def listen(self, *args: Any, **kwargs: Any) -> None:
        await self.inner.listen(*args, **kwargs)

    async def dial(self, host: str, port: int) -> trio.abc.Stream:
        self.attempts[host] += 1
        self.in_flight[host] += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight.total())
        self.most_per_host = max(self.most_per_host, self.in_flight[host])
        try:
            return await self.inner.dial(host, port)
        finally:
            self.in_flight[host] -= 1


def counting(node: Node) -> CountingTransport:
    transport = CountingTransport(node.manager.transport)
    node.manager.transport = transport
    return transport


class Stranger:
    """A listener that is not a trionode node: it counts connections, reads the Hello, sends
    ``answer`` (if any) once, and then reads until the dialler gives up."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.accepted = 0

    async def serve(self, stream: trio.abc.Stream, remote: str) -> None:
        self.accepted += 1
        if self.answer is not None:
            await stream.receive_some(65536)
            await stream.send_all(self.answer)
        while await stream.receive_some(65536):
            pass


async def tell_addresses(
    net: SimNetwork, node: Node, host: str, n: int, addresses: list[str]
) -> trio.abc.Stream:
    """Connect a scripted peer (id ``n``) from ``host`` and send ``addresses`` as one answer."""
    stream = await net.transport(host).dial(node.config.listen_host, node.config.listen_port)
    identity = scripted_identity(n)
    await dial_handshake(stream, node, identity, listen_port=5001)
    entries = [
        m.PeerInfo(address=a, node_id=scripted_identity(10_000 + i).node_id, last_seen=wall())
        for i, a in enumerate(addresses)
    ]
    answer = m.PeerDiscovery(request=False, peers=entries)
    await stream.send_all(m.encode_message(answer, identity.node_id, wall()))
    return stream


async def test_a_seed_is_dialled_and_connected_during_a_silent_inbound_flood(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Half-open inbound sockets (as many as the node accepts, reopened after each handshake
    timeout) neither take the node's outbound slots nor stop it dialling its seed."""
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path, peers=("10.0.0.2:5001",))

    async def silent(i: int) -> None:
        while True:
            stream = await net.transport(f"10.9.{i // 250}.{i % 250 + 1}").dial("10.0.0.1", 5001)
            with contextlib.suppress(trio.BrokenResourceError):
                while await stream.receive_some(65536):  # until the node gives up on us
                    pass
            await stream.aclose()

    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        for i in range(MAX_INBOUND_HANDSHAKING):
            nursery.start_soon(silent, i)
        await trio.sleep(1)
        assert sum(1 for c in a.manager.handshaking if not c.outbound) == MAX_INBOUND_HANDSHAKING
        # One more half-open socket is refused at once: inbound handshakes have their own limit.
        extra = await net.transport("10.9.9.9").dial("10.0.0.1", 5001)
        decoder, got = FrameDecoder(), []
        while data := await extra.receive_some(65536):
            got += [m.decode_message(body).message for body in decoder.feed(data)]
        assert [type(x) for x in got] == [m.Error] and got[0].code == "too_many_peers"
        await trio.sleep(30)
        b = make_node(net, "10.0.0.2", tmp_path)  # the seed comes up during the flood
        await nursery.start(b.run)
        await events(a).wait_for("peer_connected", peer=b.node_id, within=120)
        assert len(a.manager.handshaking) >= MAX_INBOUND_HANDSHAKING // 2  # the flood went on
        nursery.cancel_scope.cancel()


async def test_the_address_budget_is_per_source_and_survives_reconnecting(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        first = [f"10.20.{i // 250}.{i % 250 + 1}:5001" for i in range(1_000)]
        stream = await tell_addresses(net, a, "10.0.0.9", 9, first)
        learned = await events(a).wait_for("addresses_learned")
        assert learned["count"] == 1_000
        await stream.aclose()
        await trio.sleep(1)
        # The same IP again (another node id, another connection): the budget is spent.
        second = [f"10.21.{i // 250}.{i % 250 + 1}:5001" for i in range(1_000)]
        stream = await tell_addresses(net, a, "10.0.0.9", 10, second)
        limited = await events(a).wait_for("addresses_rate_limited")
        assert limited["ignored"] >= 999
        assert not any(c.startswith("10.21.") for c in a.manager.candidates.by_address)
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_an_address_flood_is_dialled_at_a_bounded_rate(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path)
    dials = counting(a)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        # 1,000 hosts that refuse at once: only the rate limit holds the dialer back.
        flood = [f"10.20.{i // 250}.{i % 250 + 1}:5001" for i in range(1_000)]
        stream = await tell_addresses(net, a, "10.0.0.9", 9, flood)
        await events(a).wait_for("addresses_learned")
        start = trio.current_time()
        await trio.sleep(10)
        total = dials.attempts.total() - dials.attempts["10.0.0.9"]
        assert DIAL_BURST <= total <= DIAL_BURST + DIAL_RATE * (trio.current_time() - start) + 1
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_one_hosts_ports_are_dialled_one_at_a_time_and_only_a_few(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path)
    net.cut("10.0.0.1", "192.0.2.77")  # a victim that never answers: each dial waits 10 s
    dials = counting(a)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        ports = [f"192.0.2.77:{1_000 + i}" for i in range(1_000)]
        stream = await tell_addresses(net, a, "10.0.0.9", 9, ports)
        await events(a).wait_for("addresses_learned")
        held = [c for c in a.manager.candidates.by_address if c.startswith("192.0.2.77:")]
        assert len(held) == MAX_DISCOVERED_PER_HOST
        await trio.sleep(120)
        assert dials.most_per_host == 1
        assert dials.attempts["192.0.2.77"] <= 13  # one per 10 s dial timeout
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_dials_in_progress_count_toward_the_outbound_target(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path)  # outbound_target 4
    hosts = [f"192.0.2.{i + 1}" for i in range(100)]
    for host in hosts:
        net.cut("10.0.0.1", host)  # every dial hangs until the 10 s dial timeout
    dials = counting(a)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        stream = await tell_addresses(net, a, "10.0.0.9", 9, [f"{h}:5001" for h in hosts])
        await events(a).wait_for("addresses_learned")
        await trio.sleep(60)
        assert dials.most_in_flight == a.config.outbound_target
        assert dials.attempts.total() > 2 * a.config.outbound_target  # and it kept trying
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_a_remote_peer_cannot_make_the_node_dial_its_own_loopback(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        stream = await tell_addresses(net, a, "10.0.0.9", 9, ["127.0.0.1:22", "[::1]:25", "10.0.0.5:5001"])
        await events(a).wait_for("addresses_learned")
        assert set(a.manager.candidates.by_address) == {"10.0.0.5:5001"}
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_a_banned_address_is_not_dialled_until_the_ban_ends(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    until = wall() + 600
    bans = {"ip:10.0.0.2": {"until": until, "reason": "invalid_block:bad_pow"}}
    (tmp_path / "10.0.0.1").mkdir()
    (tmp_path / "10.0.0.1" / "bans.json").write_text(json.dumps(bans))
    a = make_node(net, "10.0.0.1", tmp_path, peers=("10.0.0.2:5001",))
    b = make_node(net, "10.0.0.2", tmp_path)
    dials = counting(a)
    async with trio.open_nursery() as nursery:
        await nursery.start(b.run)
        await nursery.start(a.run)
        # Nor is a banned host learnt from others.
        stream = await tell_addresses(net, a, "10.0.0.9", 9, ["10.0.0.2:6000", "10.0.0.5:5001"])
        await events(a).wait_for("addresses_learned")
        assert "10.0.0.2:6000" not in a.manager.candidates.by_address
        await trio.sleep(until - wall() - 1)
        assert dials.attempts["10.0.0.2"] == 0
        assert not events(a).matching("peer_banned")
        # The configured peer is still a candidate: once the ban is over it is dialled again.
        await events(a).wait_for("peer_connected", peer=b.node_id, within=120)
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_a_failed_connect_leaves_nothing_to_redial(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    stranger = Stranger(answer=None)  # reads the Hello, never answers

    async with trio.open_nursery() as nursery:
        net.listeners["10.0.0.7:5001"] = (stranger.serve, nursery)
        a = make_node(net, "10.0.0.1", tmp_path)
        await nursery.start(a.run)
        with pytest.raises(ConnectError, match="no handshake"):
            await a.manager.connect("10.0.0.7:5001")
        with pytest.raises(ConnectError, match="cannot reach"):
            await a.manager.connect("10.0.0.8:5001")
        await trio.sleep(600)
        assert stranger.accepted == 1
        assert not a.manager.candidates.by_address
        nursery.cancel_scope.cancel()


async def test_a_successful_connect_is_redialled_while_disconnected(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path)
    b = make_node(net, "10.0.0.2", tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await nursery.start(b.run)
        assert await a.manager.connect("10.0.0.2:5001") == b.node_id
        assert a.manager.candidates.by_address["10.0.0.2:5001"].source == "cli"
        b.stop()
        await events(a).wait_for("peer_disconnected", peer=b.node_id)
        await trio.sleep(120)
        b2 = make_node(net, "10.0.0.2", tmp_path)
        await nursery.start(b2.run)
        await events(b2).wait_for("peer_connected", peer=a.node_id, within=120)
        nursery.cancel_scope.cancel()


async def test_an_address_breaking_the_protocol_in_the_handshake_is_dialled_once(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    stranger = Stranger(answer=b"\x00\x00\x00\x05hello")  # a frame that is not msgpack

    async with trio.open_nursery() as nursery:
        net.listeners["10.0.0.66:5001"] = (stranger.serve, nursery)
        a = make_node(net, "10.0.0.1", tmp_path)
        await nursery.start(a.run)
        stream = await tell_addresses(net, a, "10.0.0.9", 9, ["10.0.0.66:5001"])
        failed = await events(a).wait_for("handshake_failed", address="10.0.0.66:5001")
        assert failed["reason"].startswith("protocol_error:")
        await trio.sleep(600)
        assert stranger.accepted == 1
        assert "10.0.0.66:5001" not in a.manager.candidates.by_address
        await stream.aclose()
        nursery.cancel_scope.cancel()
