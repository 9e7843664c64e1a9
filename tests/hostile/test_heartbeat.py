"""Heartbeats (Bitcoin Core's p2p_ping): silence, wrong nonces, and the ping itself.

Exact timing under ``MockClock`` on an in-process node (5 s interval), then the same two
attacks on a real daemon with a 1 s interval, in real time.
"""

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.hostile.daemons import PARAMS, Node
from tests.hostile.encoder import heartbeat
from tests.hostile.expect import disconnected, established, still_connected
from tests.hostile.peer import TrioPeer, count
from tests.runtime.harness import events, make_node
from trionode.sim.network import SimNetwork


async def answer_for(peer: TrioPeer, seconds: float) -> None:
    """Read and answer (per ``peer.auto_echo``/``echo_offset``) for ``seconds``."""
    with trio.move_on_after(seconds):
        while await peer.recv() is not None:
            pass


@pytest.mark.parametrize("attack", ["stops answering", "answers with the wrong nonce"])
async def test_a_peer_that_does_not_answer_is_dropped_after_3_intervals(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, attack: str
) -> None:
    net = SimNetwork()
    target = make_node(net, "10.0.0.1", tmp_path)
    interval = target.config.heartbeat_interval
    async with trio.open_nursery() as nursery:
        await nursery.start(target.run)
        peer = TrioPeer(await net.transport("10.0.9.3").dial("10.0.0.1", 5001), PARAMS)
        await peer.handshake()
        await answer_for(peer, 4 * interval)  # honest for a while: the node measures a round trip
        assert target.manager.connections[peer.node_id].rtt is not None
        if attack == "stops answering":
            peer.auto_echo = False
        else:
            peer.echo_offset = 1
        last_sign_of_life = peer.last_sent
        await peer.wait_closed()
        count(f"heartbeat: {attack}")
        silent_for = trio.current_time() - last_sign_of_life
        assert 3 * interval < silent_for <= 4 * interval + 0.1, attack
        assert peer.errors() == ["timeout"]
        dropped = await events(target).wait_for("peer_disconnected", peer=peer.node_id)
        assert dropped["reason"] == "timeout"
        if attack == "answers with the wrong nonce":
            assert len(events(target).matching("heartbeat_wrong_nonce", peer=peer.node_id)) >= 3
        target.stop()


async def test_a_peer_that_answers_stays_and_only_our_nonce_is_echoed(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    target = make_node(net, "10.0.0.1", tmp_path)
    interval = target.config.heartbeat_interval
    async with trio.open_nursery() as nursery:
        await nursery.start(target.run)
        honest = TrioPeer(await net.transport("10.0.9.4").dial("10.0.0.1", 5001), PARAMS)
        await honest.handshake()
        # Only its own requests, never an echo: every message is a sign of life (protocol 8.3).
        chatty = TrioPeer(await net.transport("10.0.9.5").dial("10.0.0.1", 5001), PARAMS)
        chatty.auto_echo = False
        await chatty.handshake()

        async def chat() -> None:
            for nonce in range(100, 130):
                await chatty.send("Heartbeat", heartbeat(PARAMS, chatty.node_id, nonce, False))
                await trio.sleep(interval)

        nursery.start_soon(chat)
        nursery.start_soon(answer_for, chatty, 20 * interval)
        await answer_for(honest, 20 * interval)
        assert not honest.closed and not chatty.closed
        assert not events(target).matching("peer_disconnected")
        pings = [e for e in honest.inbox if e["type"] == "Heartbeat"]
        assert len(pings) >= 19 and not any(e["payload"]["echo"] for e in pings)
        # The ping: one echo, our nonce, the node's own fields.
        await honest.send("Heartbeat", heartbeat(PARAMS, honest.node_id, 0, True))  # unsolicited echo
        await honest.ping()
        echoes = [e["payload"] for e in honest.inbox if e["type"] == "Heartbeat" and e["payload"]["echo"]]
        assert len(echoes) == 1 and echoes[0]["node_id"] == target.node_id
        assert echoes[0]["tip"] == target.chain.main[-1].hex() and echoes[0]["height"] == 0
        target.stop()
        nursery.cancel_scope.cancel()


# ----------------------------------------------------------------- real daemon, 1 s interval


@pytest.fixture(scope="module")
def node(spawn: Callable[..., Node]) -> Node:
    return spawn("heartbeat")


def test_a_daemon_drops_silent_and_wrong_nonce_peers_after_3_intervals(node: Node) -> None:
    silent = established(node, auto_echo=False)
    liar = established(node)
    liar.echo_offset = 2**63
    honest = established(node)
    start = time.monotonic()
    count("heartbeat: stops answering", 1)
    count("heartbeat: answers with the wrong nonce", 1)
    for peer in (silent, liar):
        disconnected(node, peer, "timeout", "timeout", within=5.0)
    assert 3.0 < time.monotonic() - start < 5.5
    assert node.matching("heartbeat_wrong_nonce", peer=liar.node_id)
    still_connected(node, honest)
