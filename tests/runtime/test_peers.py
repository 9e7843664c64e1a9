"""Peers, handshakes and heartbeats between whole nodes over memory streams (MockClock)."""

import json
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.runtime.harness import (
    connected_pair,
    dial_handshake,
    events,
    make_node,
    run_until_down,
    scripted_identity,
    wait_until,
    wall,
)
from trionode.sim.network import SimNetwork
from trionode.wire import messages as m
from trionode.wire.framing import FrameDecoder


async def test_two_nodes_connect_and_measure_rtt(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path)
    b = make_node(net, "10.0.0.2", tmp_path, peers=("10.0.0.1:5001",))
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await nursery.start(b.run)
        got = await events(b).wait_for("peer_connected", peer=a.node_id)
        assert got["direction"] == "outbound" and got["address"] == "10.0.0.1:5001"
        inbound = await events(a).wait_for("peer_connected", peer=b.node_id)
        assert inbound["direction"] == "inbound" and inbound["address"] == "10.0.0.2:5001"
        await wait_until(lambda: a.manager.connections[b.node_id].rtt is not None)
        assert all(e["level"] == "debug" for e in events(a).matching("heartbeat"))
        a.stop()
        b.stop()
    assert events(a).matching("node_stopped") and events(b).matching("node_stopped")


async def test_silent_peer_fails_handshake_after_10s(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        stream = await net.transport("10.0.0.9").dial("10.0.0.1", 5001)
        start = trio.current_time()
        failed = await events(a).wait_for("handshake_failed")
        assert failed["reason"] == "handshake_timeout"
        assert 10.0 <= trio.current_time() - start < 11.0
        await stream.aclose()
        a.stop()


async def test_peer_silent_after_handshake_is_dropped_after_three_intervals(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        stream = await net.transport("10.0.0.9").dial("10.0.0.1", 5001)
        peer_id = scripted_identity(9).node_id
        await dial_handshake(stream, a, scripted_identity(9), agent="silent")
        await events(a).wait_for("peer_connected", peer=peer_id.hex())
        silent_since = trio.current_time()

        async def drain() -> None:  # read everything, answer nothing
            while await stream.receive_some(65536):
                pass

        nursery.start_soon(drain)
        dropped = await events(a).wait_for("peer_disconnected", peer=peer_id.hex())
        assert dropped["reason"] == "timeout"
        interval = a.config.heartbeat_interval
        assert 3 * interval <= trio.current_time() - silent_since <= 4 * interval + 0.1
        a.stop()


async def test_unreachable_seed_is_redialled_with_growing_backoff(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path, peers=("10.0.0.7:5001",))
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        cand = a.manager.candidates.by_address["10.0.0.7:5001"]
        await wait_until(lambda: cand.failures >= 5, within=120)
        gaps = []
        last = cand.next_try
        while cand.failures < 7:
            await wait_until(lambda f=cand.failures: cand.failures > f, within=300)
            gaps.append(cand.next_try - last)
            last = cand.next_try
        assert gaps[-1] > 8  # 1, 2, 4, 8, 16... seconds with jitter
        # Once the peer appears, the next redial connects.
        b = make_node(net, "10.0.0.7", tmp_path)
        await nursery.start(b.run)
        await events(a).wait_for("peer_connected", peer=b.node_id, within=120)
        a.stop()
        b.stop()


async def test_line_topology_discovers_the_far_end(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    n1 = make_node(net, "10.0.0.1", tmp_path, peers=("10.0.0.2:5001",))
    n2 = make_node(net, "10.0.0.2", tmp_path)
    n3 = make_node(net, "10.0.0.3", tmp_path, peers=("10.0.0.2:5001",))
    async with trio.open_nursery() as nursery:
        for node in (n2, n1, n3):
            await nursery.start(node.run)
        await events(n1).wait_for("peer_connected", peer=n3.node_id)
        await events(n3).wait_for("peer_connected", peer=n1.node_id)
        for node in (n1, n2, n3):
            node.stop()


async def test_discover_false_only_dials_configured_peers(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    n1 = make_node(net, "10.0.0.1", tmp_path, peers=("10.0.0.2:5001",), discover=False)
    n2 = make_node(net, "10.0.0.2", tmp_path)
    n3 = make_node(net, "10.0.0.3", tmp_path, peers=("10.0.0.2:5001",), discover=False)
    async with trio.open_nursery() as nursery:
        for node in (n2, n1, n3):
            await nursery.start(node.run)
        await events(n1).wait_for("peer_connected", peer=n2.node_id)
        await events(n3).wait_for("peer_connected", peer=n2.node_id)
        await trio.sleep(60)
        assert n3.node_id not in n1.manager.connections
        for node in (n1, n2, n3):
            node.stop()


async def test_peers_json_survives_restart_and_peers_are_redialled(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path)
    b = make_node(net, "10.0.0.2", tmp_path, peers=("10.0.0.1:5001",))
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await nursery.start(b.run)
        await events(b).wait_for("peer_connected", peer=a.node_id)
        b.stop()
        await events(b).wait_for("node_stopped")
        saved = (tmp_path / "10.0.0.2" / "peers.json").read_text()
        assert a.node_id in saved
        # Restart b without any configured peer: it redials a from peers.json.
        b2 = make_node(net, "10.0.0.2", tmp_path)
        assert b2.node_id == b.node_id
        await nursery.start(b2.run)
        await events(b2).wait_for("peer_connected", peer=a.node_id)
        a.stop()
        b2.stop()


async def test_peers_saved_as_connected_by_a_killed_node_are_loaded_disconnected(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path)
    b = make_node(net, "10.0.0.2", tmp_path, peers=("10.0.0.1:5001",))
    peers_json = tmp_path / "10.0.0.2" / "peers.json"
    b_down = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await nursery.start(run_until_down, b, b_down)
        await events(b).wait_for("peer_connected", peer=a.node_id)
        await wait_until(lambda: peers_json.exists() and a.node_id in peers_json.read_text())
        # kill -9 while connected: the file still says so, and a goes away too.
        net.crash("10.0.0.2")
        b.crash()
        await b_down.wait()
        assert json.loads(peers_json.read_text())[a.node_id]["connected"] is True
        a.stop()
        await events(a).wait_for("node_stopped")
        (tmp_path / "10.0.0.1" / "peers.json").unlink()  # a2 must not dial b2 itself
        net.restart("10.0.0.2")
        b2 = make_node(net, "10.0.0.2", tmp_path)
        await nursery.start(b2.run)
        # a is down, so nothing can have connected b2 to it: the record is as loaded.
        assert b2.manager.table.records[a.node_id].connected is False
        # Once a is back, b2 redials it from peers.json.
        a2 = make_node(net, "10.0.0.1", tmp_path)
        await nursery.start(a2.run)
        got = await events(b2).wait_for("peer_connected", peer=a.node_id, within=120)
        assert got["direction"] == "outbound"
        assert b2.manager.table.records[a.node_id].connected is True
        a2.stop()
        b2.stop()


async def test_stale_peers_leave_the_table(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path, peer_timeout=60.0)
    b = make_node(net, "10.0.0.2", tmp_path, peers=("10.0.0.1:5001",))
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await nursery.start(b.run)
        await events(a).wait_for("peer_connected", peer=b.node_id)
        b.stop()
        await events(a).wait_for("peer_disconnected", peer=b.node_id)
        assert b.node_id in a.manager.table.records
        gone = await events(a).wait_for("peer_forgotten", peer=b.node_id, within=200)
        assert gone["reason"] == "stale"
        assert b.node_id not in a.manager.table.records
        a.stop()


async def test_a_forgotten_peer_from_peers_json_is_no_longer_dialled(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    async with trio.open_nursery() as nursery:
        a, b = await connected_pair(nursery, net, tmp_path)
        a.stop()
        await events(a).wait_for("node_stopped")
        # Restarted without configured peers: b is known from peers.json only.
        a2 = make_node(net, "10.0.0.1", tmp_path, peer_timeout=60.0)
        await nursery.start(a2.run)
        await events(a2).wait_for("peer_connected", peer=b.node_id)
        assert a2.manager.candidates.by_address["10.0.0.2:5001"].source == "table"
        b.stop()
        await events(a2).wait_for("peer_forgotten", peer=b.node_id, within=300)
        assert "10.0.0.2:5001" not in a2.manager.candidates.by_address
        dials = len(events(a2).matching("dial_failed", address="10.0.0.2:5001"))
        await trio.sleep(600)
        assert len(events(a2).matching("dial_failed", address="10.0.0.2:5001")) == dials
        a2.stop()


async def test_self_connection_is_closed_and_never_redialled(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path, peers=("10.0.0.1:5001",))
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await events(a).wait_for("handshake_failed", reason="self_connection")
        await trio.sleep(120)
        attempts = [e for e in events(a).matching("handshake_failed") if e.get("reason") == "self_connection"]
        assert len(attempts) <= 2  # one for each side of the single attempt
        assert "10.0.0.1:5001" not in a.manager.candidates.by_address
        a.stop()


@pytest.mark.parametrize("age", [0.5, 11.0], ids=["fresh", "settled"])
async def test_a_stranger_claiming_a_connected_peers_node_id_cannot_evict_it(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, age: float
) -> None:
    # The larger id dials the smaller: by the duplicate tie-break alone, a connection "dialled
    # by the smaller id" would win and evict the real one. The impostor has the real node's id
    # and public key (both public) but not its private key, so it cannot sign the challenge.
    net = SimNetwork()
    x = make_node(net, "10.0.0.1", tmp_path)
    y = make_node(net, "10.0.0.2", tmp_path)
    small, large = sorted((x, y), key=lambda n: n.node_id)
    async with trio.open_nursery() as nursery:
        await nursery.start(x.run)
        await nursery.start(y.run)
        assert await large.manager.connect(f"{small.config.listen_host}:5001") == small.node_id
        await trio.sleep(age)  # within a handshake's 10 s, or after
        stream = await net.transport("10.0.0.66").dial(large.config.listen_host, 5001)
        claimed = small.identity.node_id
        hello = m.Hello(
            1, large.network, claimed, 5001, 0, large.network, large.chain.work, "impostor",
            small.identity.key.public_key, bytes(16),
        )  # fmt: skip
        await stream.send_all(m.encode_message(hello, claimed, wall()))
        decoder, got = FrameDecoder(), []
        while "HelloProof" not in got:
            got += [m.decode_message(b).type for b in decoder.feed(await stream.receive_some(65536))]
        forged = m.HelloProof(scripted_identity(66).key.sign(b"anything"))
        await stream.send_all(m.encode_message(forged, claimed, wall()))
        refused = await events(large).wait_for("handshake_failed", address="10.0.0.66:32768")
        assert refused["reason"] == "bad_proof"
        assert not events(large).matching("peer_disconnected", peer=small.node_id)
        assert small.node_id in large.manager.connections
        await stream.aclose()
        x.stop()
        y.stop()


async def test_late_echoes_still_count_as_signs_of_life(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A peer whose round trip exceeds one interval answers every ping late: not a timeout."""
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        stream = await net.transport("10.0.0.9").dial("10.0.0.1", 5001)
        peer_id = scripted_identity(9).node_id
        await dial_handshake(stream, a, scripted_identity(9), agent="slow")
        await events(a).wait_for("peer_connected", peer=peer_id.hex())
        interval = a.config.heartbeat_interval

        async def answer_late() -> None:
            decoder = FrameDecoder()
            while data := await stream.receive_some(65536):
                for body in decoder.feed(data):
                    msg = m.decode_message(body).message
                    if isinstance(msg, m.Heartbeat) and not msg.echo:
                        nursery.start_soon(echo_after, msg.nonce, 1.5 * interval)

        async def echo_after(nonce: int, delay: float) -> None:
            await trio.sleep(delay)
            echo = m.Heartbeat(peer_id, 0, a.network, 0, nonce, True)
            await stream.send_all(m.encode_message(echo, peer_id, wall()))

        nursery.start_soon(answer_late)
        await trio.sleep(10 * interval)
        assert not events(a).matching("peer_disconnected", peer=peer_id.hex())
        rtt = a.manager.connections[peer_id.hex()].rtt
        assert rtt is not None and 1.4 * interval <= rtt <= 1.6 * interval
        a.stop()
        nursery.cancel_scope.cancel()


async def test_a_node_whose_seed_is_full_is_told_where_else_to_go(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    hub = make_node(net, "10.0.0.1", tmp_path, max_peers=2, outbound_target=1)
    assert hub.manager.limits.max_inbound == 1
    other = make_node(net, "10.0.0.2", tmp_path, peers=("10.0.0.1:5001",))
    lonely = make_node(net, "10.0.0.3", tmp_path, peers=("10.0.0.1:5001",))
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        await nursery.start(other.run)
        await events(hub).wait_for("peer_connected", peer=other.node_id)
        await nursery.start(lonely.run)
        refused = await events(lonely).wait_for("handshake_failed", address="10.0.0.1:5001")
        assert refused["reason"] == "too_many_peers"
        await events(lonely).wait_for("peer_connected", peer=other.node_id)
        assert hub.node_id not in lonely.manager.connections
        for node in (hub, other, lonely):
            node.stop()


async def test_a_peer_the_operator_disconnected_is_not_redialled_until_connect(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    async with trio.open_nursery() as nursery:
        a, b = await connected_pair(nursery, net, tmp_path)
        assert a.manager.disconnect(b.node_id, "disconnect_requested")
        await events(a).wait_for("peer_disconnected", peer=b.node_id, reason="disconnect_requested")
        await events(b).wait_for("peer_disconnected", peer=a.node_id, reason="peer_error:disconnect")
        await trio.sleep(600)  # ten minutes: a configured peer would be redialled within 1 s
        assert len(events(a).matching("peer_connected", peer=b.node_id)) == 1
        assert b.node_id not in a.manager.connections
        assert await a.manager.connect("10.0.0.2:5001") == b.node_id  # `connect` lifts the hold
        a.stop()
        b.stop()


async def test_peers_json_last_seen_follows_heartbeats(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    async with trio.open_nursery() as nursery:
        a, b = await connected_pair(nursery, net, tmp_path)
        await trio.sleep(600)  # nothing but heartbeats (every 5 s) for ten minutes
        # Read while a runs, as after a kill -9: the periodic save (every 60 s) has it.
        saved = json.loads((tmp_path / "10.0.0.1" / "peers.json").read_text())
        assert wall() - saved[b.node_id]["last_seen"] < 60 + 15
        a.stop()
        b.stop()


async def test_a_peer_on_another_network_is_not_redialled_after_connect_fails(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    from trionode.chain.params import ChainParams
    from trionode.net.manager import ConnectError

    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path)
    foreign = make_node(net, "10.0.0.2", tmp_path, chain=ChainParams(difficulty=2))
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await nursery.start(foreign.run)
        with pytest.raises(ConnectError, match="different network"):
            await a.manager.connect("10.0.0.2:5001")
        await trio.sleep(600)
        assert len(events(a).matching("handshake_failed", reason="wrong_network")) == 1
        assert "10.0.0.2:5001" not in a.manager.candidates.by_address
        a.stop()
        foreign.stop()


async def test_a_peer_saying_you_are_me_does_not_make_the_node_give_up_its_address(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Only our own Hello coming back to our own listener proves an address is us; a stranger
    answering ``Error self_connection`` is just a failed dial, redialled with backoff."""
    net = SimNetwork()
    refusals = 0

    async def liar(stream: trio.abc.Stream, remote: str) -> None:
        nonlocal refusals
        decoder = FrameDecoder()
        while not decoder.feed(await stream.receive_some(65536)):  # until its Hello is in
            pass
        refusals += 1
        error = m.Error(code="self_connection", reason="connected to ourselves")
        await stream.send_all(m.encode_message(error, scripted_identity(77).node_id, wall()))
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        net.listeners["10.0.0.77:5001"] = (liar, nursery)
        a = make_node(net, "10.0.0.1", tmp_path, peers=("10.0.0.77:5001",))
        await nursery.start(a.run)
        await events(a).wait_for("handshake_failed", reason="self_connection")
        await trio.sleep(120)
        assert refusals >= 3  # redialled
        assert "10.0.0.77:5001" in a.manager.candidates.by_address
        assert "10.0.0.77:5001" not in a.manager.our_addresses
        a.stop()
        nursery.cancel_scope.cancel()


async def test_peers_known_only_from_peers_json_outlive_a_long_downtime(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Time switched off does not count as a peer's time unseen: after a downtime longer than
    peer_timeout, the table is still redialled, and forgotten only after peer_timeout of
    running without reaching it."""
    net = SimNetwork()
    async with trio.open_nursery() as nursery:
        a, b = await connected_pair(nursery, net, tmp_path)
        a.stop()
        b.stop()
        await events(a).wait_for("node_stopped")
        await trio.sleep(2 * a.config.peer_timeout)
        a2 = make_node(net, "10.0.0.1", tmp_path)  # knows b from peers.json only
        await nursery.start(a2.run)
        started = trio.current_time()
        await trio.sleep(60)  # b is still down: a2 redials it and fails
        assert b.node_id in a2.manager.table.records
        b2 = make_node(net, "10.0.0.2", tmp_path)
        await nursery.start(b2.run)
        await events(a2).wait_for("peer_connected", peer=b.node_id, within=120)
        assert not events(a2).matching("peer_forgotten")
        # Now b goes away for good: it is forgotten once unseen for peer_timeout.
        a2.stop()
        b2.stop()
        await events(a2).wait_for("node_stopped")
        a3 = make_node(net, "10.0.0.1", tmp_path)
        await nursery.start(a3.run)
        started = trio.current_time()
        gone = await events(a3).wait_for("peer_forgotten", peer=b.node_id, within=600)
        assert gone["reason"] == "stale"
        interval = a3.config.heartbeat_interval
        assert (
            a3.config.peer_timeout <= trio.current_time() - started <= a3.config.peer_timeout + 2 * interval
        )
        assert "10.0.0.2:5001" not in a3.manager.candidates.by_address
        a3.stop()


async def test_peers_json_writes_are_debounced_and_the_last_change_is_flushed_at_stop(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trionode.net import peers

    writes: list[float] = []
    real_write = peers.write_atomic

    def counted(path: Path, data: bytes, mode: int = 0o644) -> None:
        writes.append(trio.current_time())
        real_write(path, data, mode=mode)

    monkeypatch.setattr(peers, "write_atomic", counted)
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path, max_peers=100)
    peer_count = 40
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await trio.sleep(peers.SAVE_DEBOUNCE / 2)  # mid-way between two saver wake-ups
        burst_start = trio.current_time()
        streams = []
        for n in range(peer_count):  # 40 peers come and go, each chatting, within 1 s
            stream = await net.transport(f"10.0.1.{n + 1}").dial("10.0.0.1", 5001)
            identity = scripted_identity(100 + n)
            await dial_handshake(stream, a, identity, listen_port=5001)
            for nonce in range(20):
                ping = m.Heartbeat(identity.node_id, 0, a.network, 0, nonce, False)
                await stream.send_all(m.encode_message(ping, identity.node_id, wall()))
            streams.append(stream)
            if n % 2:
                await stream.aclose()
            await trio.sleep(1 / peer_count)
        assert trio.current_time() - burst_start < peers.SAVE_DEBOUNCE
        await wait_until(lambda: len(a.manager.connections) == peer_count // 2)
        await trio.sleep(burst_start + peers.SAVE_DEBOUNCE - trio.current_time())
        # 40 connections, 20 disconnections and 800 messages: one write (it changed once).
        assert len([t for t in writes if t >= burst_start]) == 1
        # One more change, and a stop before the saver's next round: nothing is lost.
        last = await net.transport("10.0.2.1").dial("10.0.0.1", 5001)
        await dial_handshake(last, a, scripted_identity(999), listen_port=5001)
        await events(a).wait_for("peer_connected", peer=scripted_identity(999).node_id.hex())
        before = json.loads((tmp_path / "10.0.0.1" / "peers.json").read_text())
        assert scripted_identity(999).node_id.hex() not in before  # not written yet...
        a.stop()
        await events(a).wait_for("node_stopped")
        assert len(writes) <= 4  # the burst, the periodic saves, the one at stop
        # ...but written at stop.
        saved = json.loads((tmp_path / "10.0.0.1" / "peers.json").read_text())
        expected = {scripted_identity(100 + n).node_id.hex() for n in range(peer_count)}
        expected.add(scripted_identity(999).node_id.hex())
        assert set(saved) == expected
        for stream in [*streams, last]:
            await stream.aclose()


@pytest.mark.parametrize("seed", range(4))
async def test_two_nodes_dialling_each_other_at_once_keep_the_same_one_connection(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, seed: int
) -> None:
    net = SimNetwork(seed=seed)
    a = make_node(net, "10.0.0.1", tmp_path, peers=("10.0.0.2:5001",), seed=seed)
    b = make_node(net, "10.0.0.2", tmp_path, peers=("10.0.0.1:5001",), seed=seed)
    small, large = sorted((a, b), key=lambda n: n.node_id)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.run)  # both start, and dial each other, in the same instant
        nursery.start_soon(b.run)
        await events(a).wait_for("peer_connected", peer=b.node_id)
        await events(b).wait_for("peer_connected", peer=a.node_id)
        await trio.sleep(120)
        # Both connections were made (4 handshakes in all), and one was closed on each side.
        handshakes = len(events(a).matching("peer_connected")) + len(events(b).matching("peer_connected"))
        duplicates = [e for node in (a, b) for e in events(node) if e.get("reason") == "duplicate_connection"]
        assert handshakes >= 3 and duplicates
        kept_by_small = small.manager.connections[large.node_id]
        kept_by_large = large.manager.connections[small.node_id]
        # The same connection from both ends: the one the smaller node id dialled.
        assert kept_by_small.outbound and not kept_by_large.outbound
        assert kept_by_small.dialed == f"{large.config.listen_host}:5001"
        assert kept_by_large.remote_host == small.config.listen_host
        # And it stays: no churn afterwards.
        assert len(small.manager.connections) == len(large.manager.connections) == 1
        assert kept_by_small.connected_at < 1 and not kept_by_small.closing
        a.stop()
        b.stop()
