"""``trionode sync``: what it reports when it moves the tip, and while a round runs; and what the
node remembers of peers that claimed more work than they delivered (protocol.md 8.2), under
MockClock against scripted peers."""

from pathlib import Path

import pytest
import trio
import trio.testing

from tests.runtime.harness import events, make_node, wait_until
from tests.runtime.scripted import build_chain, open_peer
from trionode.control.verbs import sync as sync_verb
from trionode.node.sync import FIRST_ROUND
from trionode.sim.network import SimNetwork
from trionode.wire import messages as m

CLAIM = 10**9  # far more work than the node has


async def test_sync_verb_fetches_the_better_chain_and_reports_the_tip_replaced(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verb's own round does the work: the peer's claim is made to wake nothing (as the
    Hello would otherwise sync before the verb is called, and ``replaced`` be False)."""
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path, sync_interval=10_000.0)
    monkeypatch.setattr(a.consensus, "on_peer_work", lambda conn: None)
    blocks, work = build_chain(tmp_path / "prep.db", 3)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await trio.sleep(FIRST_ROUND + 5)  # the first round is over
        before = a.owner.snapshot.tip
        peer = await open_peer(
            nursery, net, "10.0.0.51", a, 51, work=work, height=3, tip=blocks[-1].block_hash
        )
        await trio.sleep(60)
        assert not peer.of_type("RequestChain")  # nothing but the verb will ask it
        result: list[dict[str, object]] = []

        async def call() -> None:
            result.append(await sync_verb(a, {}))

        nursery.start_soon(call)
        await peer.wait_for("RequestChain")
        assert not result  # the verb waits for its round
        await peer.send(m.ResponseChain(blocks=blocks))
        await wait_until(lambda: bool(result), within=10)
        tip = blocks[-1].block_hash.hex()
        assert result == [{"height": 3, "tip": tip, "replaced": True, "peers": 1}]
        assert before != tip and a.owner.snapshot.tip == tip
        # Nothing more to fetch: the next call says the tip stayed.
        assert await sync_verb(a, {}) == {"height": 3, "tip": tip, "replaced": False, "peers": 1}
        assert len(peer.of_type("RequestChain")) == 1
        a.stop()


async def test_sync_requested_during_a_round_waits_for_a_fresh_round(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path, sync_interval=10_000.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await trio.sleep(FIRST_ROUND + 5)  # the first round is over
        slow = await open_peer(nursery, net, "10.0.0.51", a, 51, work=CLAIM, height=1_000)
        await slow.wait_for("RequestChain")  # a round is running, waiting for this peer
        before = a.consensus.rounds
        returned_after: list[int] = []

        async def sync() -> None:
            await a.consensus.run_now()
            returned_after.append(a.consensus.rounds)

        nursery.start_soon(sync)
        await trio.sleep(5)
        assert not returned_after
        await slow.send(m.ResponseChain(blocks=[]))  # ends the running round
        await events(a).wait_for("sync_undelivered", peer=slow.node_id.hex())
        await wait_until(lambda: bool(returned_after), within=10)
        # Not the round that was running when asked, but the one after it.
        assert returned_after == [before + 2]
        a.stop()


async def test_a_peer_that_failed_to_deliver_is_asked_again_once_it_reconnects(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path, sync_interval=10_000.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await trio.sleep(FIRST_ROUND + 5)
        liar = await open_peer(nursery, net, "10.0.0.51", a, 51, work=CLAIM, height=1_000)
        await liar.wait_for("RequestChain")
        await liar.send(m.ResponseChain(blocks=[]))
        await events(a).wait_for("sync_undelivered", peer=liar.node_id.hex())
        await liar.heartbeat(1, work=CLAIM)  # the same claim on the same connection: not asked
        await trio.sleep(30)
        assert len(liar.of_type("RequestChain")) == 1
        await liar.stream.aclose()
        await events(a).wait_for("peer_disconnected", peer=liar.node_id.hex())
        # A new connection is a new chance (and, if it fails again, a new penalty).
        again = await open_peer(nursery, net, "10.0.0.51", a, 51, work=CLAIM, height=1_000)
        await again.wait_for("RequestChain")
        await again.send(m.ResponseChain(blocks=[]))
        await wait_until(lambda: len(events(a).matching("sync_undelivered", peer=liar.node_id.hex())) == 2)
        assert a.manager.table.records[liar.node_id.hex()].misbehaviour == 40
        # Another liar fails while the first is gone: only connected peers are remembered.
        await again.stream.aclose()
        await events(a).wait_for("peer_disconnected", peer=liar.node_id.hex())
        other = await open_peer(nursery, net, "10.0.0.52", a, 52, work=CLAIM, height=1_000)
        await other.wait_for("RequestChain")
        await other.send(m.ResponseChain(blocks=[]))
        await events(a).wait_for("sync_undelivered", peer=other.node_id.hex())
        assert list(a.consensus._undelivered) == [other.node_id.hex()]
        a.stop()
