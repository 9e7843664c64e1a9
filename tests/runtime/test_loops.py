"""The node's timed loops under MockClock: bans and their expiry, consensus wake-ups, peers
that claim more work than they deliver, sync peers that stall or leave, a sync peer kept while
we validate its batch (protocol.md 8.2, 8.3, 8.5), a transaction refused for a nonce gap
that is accepted when it comes again after its predecessor (8.1), and relay that sends each
item once per peer, even when a reorg offers the whole pool again.

The other side of each connection is a ``FakePeer``: a scripted peer speaking the wire
protocol from ``trionode.wire``, so a test controls exactly what the node is told and when.
"""

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.runtime.harness import events, make_node, wall
from tests.runtime.scripted import REWARD_TO, bad_pow_block, build_chain, open_peer
from trionode.chain.amounts import COIN
from trionode.chain.block import Block
from trionode.chain.keys import KeyPair
from trionode.chain.pow import search
from trionode.chain.transaction import Transaction, sign_transaction
from trionode.node.app import Node
from trionode.node.intake import OFFER_WAIT
from trionode.node.sync import FIRST_ROUND, STALL_TIMEOUT
from trionode.node.workers import InlineSignatureChecker
from trionode.sim.network import SimNetwork
from trionode.wire import messages as m

# ----------------------------------------------------------------------------- bans


async def test_ban_refuses_the_peer_survives_a_restart_and_expires(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    ban_time = 3_600.0
    a = make_node(net, "10.0.0.1", tmp_path, ban_time=ban_time)
    bad = bad_pow_block(tmp_path / "bad.db")
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        peer = await open_peer(nursery, net, "10.0.0.66", a, 66)
        await events(a).wait_for("peer_connected", peer=peer.node_id.hex())
        await peer.send(m.NewBlock(block=bad))
        banned = await events(a).wait_for("peer_banned")
        assert banned["reason"] == "invalid_block:bad_pow"
        assert banned["until"] == pytest.approx(wall() + ban_time, abs=1)
        _, goodbye = await peer.wait_for("Error")
        assert goodbye.code == "misbehaviour"
        await peer.closed.wait()
        dropped = await events(a).wait_for("peer_disconnected", peer=peer.node_id.hex())
        assert dropped["reason"] == "banned"

        async def refused(node: Node, peer_id: int) -> None:
            """A new connection from the banned IP gets Error banned before any handshake."""
            again = await open_peer(nursery, net, "10.0.0.66", node, peer_id, hello=False)
            _, error = await again.wait_for("Error")
            assert error.code == "banned"
            await again.closed.wait()
            assert not again.of_type("Hello")  # the node told it nothing about itself

        await refused(a, 67)  # another node id changes nothing: the ban is on the IP
        assert events(a).matching("handshake_failed", reason="banned")
        # Bans live in bans.json: a restarted node still refuses the peer.
        a.stop()
        await events(a).wait_for("node_stopped")
        saved = json.loads((tmp_path / "10.0.0.1" / "bans.json").read_text())
        assert saved["ip:10.0.0.66"]["until"] == banned["until"]
        a2 = make_node(net, "10.0.0.1", tmp_path, ban_time=ban_time)
        await nursery.start(a2.run)
        await refused(a2, 68)
        # Simulated time passes the ban's end: the same peer is welcome again.
        await trio.sleep(banned["until"] - wall() + 1)
        back = await open_peer(nursery, net, "10.0.0.66", a2, 66)
        await events(a2).wait_for("peer_connected", peer=back.node_id.hex())
        assert not back.of_type("Error")
        assert json.loads((tmp_path / "10.0.0.1" / "bans.json").read_text()) == {}
        a2.stop()


async def test_on_loopback_the_ban_applies_to_the_node_id_only(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "127.0.0.1", tmp_path)
    bad = bad_pow_block(tmp_path / "bad.db")
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        # Garbage before the handshake on loopback: closed, but there is no one to ban.
        junk = await open_peer(nursery, net, "127.0.0.1", a, 1, hello=False)
        await junk.stream.send_all(b"\x00\x00\x00\x05hello")
        failed = await events(a).wait_for("handshake_failed")
        assert failed["reason"].startswith("protocol_error:")
        await junk.closed.wait()
        assert a.manager.bans.bans == {}
        bad_peer = await open_peer(nursery, net, "127.0.0.1", a, 2)
        await bad_peer.send(m.NewBlock(block=bad))
        await events(a).wait_for("peer_banned", peer=bad_peer.node_id.hex())
        assert set(a.manager.bans.bans) == {f"node:{bad_peer.node_id.hex()}"}
        # Another local process (another node id) on 127.0.0.1 is not affected...
        honest = await open_peer(nursery, net, "127.0.0.1", a, 3)
        await events(a).wait_for("peer_connected", peer=honest.node_id.hex())
        # ...while the banned node id is refused once it says who it is.
        again = await open_peer(nursery, net, "127.0.0.1", a, 2, hello=False)
        await again.hello(a.network, work=a.chain.work, height=0, tip=a.network)
        _, error = await again.wait_for("Error")
        assert error.code == "banned"
        await again.closed.wait()
        assert honest.node_id.hex() in a.manager.connections
        a.stop()


# ----------------------------------------------------------------------------- consensus


async def test_heartbeat_showing_more_work_wakes_the_consensus_loop(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path, sync_interval=10_000.0)
    blocks, work = build_chain(tmp_path / "prep.db", 3)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        peer = await open_peer(nursery, net, "10.0.0.50", a, 50)
        await trio.sleep(FIRST_ROUND + 5)  # the first round has run: nothing to do
        # A heartbeat with no more work than ours does not wake the loop...
        await peer.heartbeat(1)
        await trio.sleep(100)
        assert not peer.of_type("RequestChain")
        # ...one with more work does, long before the next scheduled round.
        sent = trio.current_time()
        await peer.heartbeat(2, work=work, height=3)
        arrived, request = await peer.wait_for("RequestChain")
        assert arrived - sent < 1.0
        assert request.locator == [a.network]
        await peer.send(m.ResponseChain(blocks=blocks))
        await events(a).wait_for("sync_progress", height=3)
        assert a.owner.snapshot.tip == blocks[-1].block_hash.hex()
        a.stop()


async def test_consensus_rounds_run_soon_after_start_then_every_sync_interval(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path, sync_interval=60.0)
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        await nursery.start(a.run)
        await trio.sleep_until(start + FIRST_ROUND - 0.5)
        assert a.consensus.rounds == 0
        await trio.sleep_until(start + FIRST_ROUND + 0.5)
        assert a.consensus.rounds == 1  # the first round, 10 s after start
        await trio.sleep_until(start + FIRST_ROUND + 5 * 60.0 + 0.5)
        assert a.consensus.rounds == 6  # then one every sync_interval
        a.stop()


async def test_a_hello_showing_more_work_starts_a_sync_at_once(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path, sync_interval=10_000.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await trio.sleep(FIRST_ROUND + 5)  # past the first round: only the Hello can trigger one
        sent = trio.current_time()
        peer = await open_peer(nursery, net, "10.0.0.52", a, 52, work=10**6, height=5)
        arrived, _ = await peer.wait_for("RequestChain")
        assert arrived - sent < 1.0
        a.stop()


async def honest_node_ahead(nursery: trio.Nursery, net: SimNetwork, tmp_path: Path, count: int) -> Node:
    """A node on 10.0.0.2 with ``count`` blocks, connected to no one yet."""
    b = make_node(net, "10.0.0.2", tmp_path)
    await nursery.start(b.run)
    for _ in range(count):
        await b.miner.mine_one(REWARD_TO)
    return b


async def test_peer_claiming_more_work_than_it_delivers_is_penalised_and_next_peer_tried(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path, sync_interval=10_000.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        b = await honest_node_ahead(nursery, net, tmp_path, 3)
        claim = 10**9
        liar = await open_peer(nursery, net, "10.0.0.51", a, 51, work=claim, height=1_000)
        await liar.wait_for("RequestChain")  # the most work claimed: asked first
        # While the liar is being asked, an honest peer with less (but real) extra work joins.
        await b.manager.connect("10.0.0.1:5001")
        await events(a).wait_for("peer_connected", peer=b.node_id)
        await liar.send(m.ResponseChain(blocks=[]))
        undelivered = await events(a).wait_for("sync_undelivered", peer=liar.node_id.hex())
        assert undelivered["claimed"] == claim
        assert a.manager.table.records[liar.node_id.hex()].misbehaviour == 20
        # The same round goes on to the next best peer and gets its chain.
        await events(a).wait_for("sync_progress", peer=b.node_id, height=3)
        assert a.owner.snapshot.tip == b.owner.snapshot.tip
        assert events(a).index(undelivered) < events(a).index(
            events(a).matching("sync_progress", peer=b.node_id)[0]
        )
        assert liar.node_id.hex() in a.manager.connections  # 20 points: not banned
        # It is not asked again while it claims the same work...
        await a.consensus.run_now()
        await trio.sleep(60)
        assert len(liar.of_type("RequestChain")) == 1
        # ...but is once it claims more.
        await liar.heartbeat(7, work=claim * 2)
        await liar.wait_for("RequestChain", count=2)
        a.stop()
        b.stop()


async def test_peer_answering_with_blocks_that_do_not_connect_counts_as_undelivered(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path, sync_interval=10_000.0)
    blocks, _ = build_chain(tmp_path / "prep.db", 3)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        claim = 10**9
        liar = await open_peer(nursery, net, "10.0.0.51", a, 51, work=claim, height=1_000)
        await liar.wait_for("RequestChain")
        await liar.send(m.ResponseChain(blocks=blocks[2:]))  # block 3 alone: its parent is unknown
        await events(a).wait_for("sync_unconnected", peer=liar.node_id.hex())
        await events(a).wait_for("sync_undelivered", peer=liar.node_id.hex())
        assert a.manager.table.records[liar.node_id.hex()].misbehaviour == 20
        for nonce in range(5):  # the same claim again and again: it is not asked again
            await liar.heartbeat(100 + nonce, work=claim)
            await trio.sleep(10)
        assert len(liar.of_type("RequestChain")) == 1
        a.stop()


async def test_peer_delivering_an_invalid_block_is_banned_and_the_next_peer_tried(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path, sync_interval=10_000.0)
    bad = bad_pow_block(tmp_path / "bad.db")
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        b = await honest_node_ahead(nursery, net, tmp_path, 3)
        liar = await open_peer(nursery, net, "10.0.0.53", a, 53, work=10**9, height=1_000)
        await liar.wait_for("RequestChain")
        await b.manager.connect("10.0.0.1:5001")
        await events(a).wait_for("peer_connected", peer=b.node_id)
        await liar.send(m.ResponseChain(blocks=[bad]))
        rejected = await events(a).wait_for("block_rejected", hash=bad.block_hash.hex())
        assert rejected["reason"] == "bad_pow"
        await events(a).wait_for("peer_banned", peer=liar.node_id.hex())
        # The same round goes on to the honest peer and gets its chain.
        await events(a).wait_for("sync_progress", peer=b.node_id, height=3)
        assert a.owner.snapshot.tip == b.owner.snapshot.tip
        assert liar.node_id.hex() not in a.manager.connections
        a.stop()
        b.stop()


async def test_stalled_sync_peer_is_dropped_after_30s_and_the_next_one_tried(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path, sync_interval=10_000.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        b = await honest_node_ahead(nursery, net, tmp_path, 3)
        # Answers heartbeats (so it is alive) but never the RequestChain.
        staller = await open_peer(nursery, net, "10.0.0.52", a, 52, work=10**9, height=1_000)
        asked, _ = await staller.wait_for("RequestChain")
        await b.manager.connect("10.0.0.1:5001")
        dropped = await events(a).wait_for("peer_disconnected", peer=staller.node_id.hex(), within=120)
        assert dropped["reason"] == "sync_stalled"
        stalled_for = trio.current_time() - asked
        assert STALL_TIMEOUT <= stalled_for < STALL_TIMEOUT + 1
        assert events(a).matching("sync_stalled", peer=staller.node_id.hex())
        await staller.closed.wait()
        assert [e.code for _, e in staller.of_type("Error")] == ["timeout"]
        # Heartbeats kept flowing all along: the staller was alive, only its sync stalled.
        assert len(staller.of_type("Heartbeat")) >= 5
        await events(a).wait_for("sync_progress", peer=b.node_id, height=3)
        assert a.owner.snapshot.tip == b.owner.snapshot.tip
        a.stop()
        b.stop()


# ----------------------------------------------------------------------------- relay


async def test_relay_sends_each_item_once_per_peer_and_never_back_to_its_sender(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Counted on the wire: three peers; one sends a transaction and a block, the other two
    get each once, and when one of them sends its copy back nothing moves again."""
    alice = KeyPair(bytes(31) + b"\x0b")
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await a.miner.mine_one(alice.address)
        origin = await open_peer(nursery, net, "10.0.0.71", a, 71)
        echoer = await open_peer(nursery, net, "10.0.0.72", a, 72)
        listener = await open_peer(nursery, net, "10.0.0.73", a, 73)
        tx = sign_transaction(alice, a.network, bytes(20), COIN, 0, int(wall() * 1000))
        await origin.send(m.NewTransaction(tx=tx))
        await echoer.wait_for("NewTransaction")
        await listener.wait_for("NewTransaction")
        await echoer.send(m.NewTransaction(tx=tx))  # its copy comes back: must not loop
        template = await a.owner.call(lambda c: c.template(bytes(20), int(wall() * 1000)))
        nonce = search(template.header.prefix(), template.header.target, 0, 1 << 20)
        assert nonce is not None
        block = Block(template.header.with_nonce(nonce), template.txs)  # with the transaction
        await origin.send(m.NewBlock(block=block))
        await echoer.wait_for("NewBlock")
        await listener.wait_for("NewBlock")
        await echoer.send(m.NewBlock(block=block))
        await trio.sleep(60)  # long enough for any late duplicate or echo to arrive
        for peer, expected in ((origin, 0), (echoer, 1), (listener, 1)):
            txs = [msg.tx.txid for _, msg in peer.of_type("NewTransaction")]
            got = [msg.block.block_hash for _, msg in peer.of_type("NewBlock")]
            assert txs.count(tx.txid) == expected, (peer.node_id.hex(), txs)
            assert got.count(block.block_hash) == expected, (peer.node_id.hex(), got)
        assert len(events(a).matching("block_accepted", hash=block.block_hash.hex())) == 1
        a.stop()


# Rewards on a scripted fork: never the node's own blocks, even mined in the same millisecond.
FORK_REWARD_TO = bytes([0xF0]) * 20


async def test_pool_offered_again_after_a_reorg_skips_the_peers_known_to_have_each_transaction(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """After a reorg the node broadcasts its whole pool again (``relay_mempool``): what each
    peer is known to have (sent it to us, or got it from us) is what keeps a transaction from
    going to it twice, while a peer that joined since gets it."""
    alice = KeyPair(bytes(31) + b"\x0c")
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path, sync_interval=10_000.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await a.miner.mine_one(alice.address)  # height 1: alice's coins, on both branches
        await a.miner.mine_one(REWARD_TO)  # height 2: the block the reorg takes away
        base = await a.owner.call(lambda c: [c.block_at(1)])
        fork, _ = build_chain(
            tmp_path / "fork.db", 2, on=[b for b in base if b is not None], reward_to=FORK_REWARD_TO
        )
        sender = await open_peer(nursery, net, "10.0.0.81", a, 81)
        relayed = await open_peer(nursery, net, "10.0.0.82", a, 82)
        tx = sign_transaction(alice, a.network, bytes(20), COIN, 0, int(wall() * 1000))
        await sender.send(m.NewTransaction(tx=tx))
        await relayed.wait_for("NewTransaction")
        # Joins after the relay; its pool offer waits for its tip to match ours (OFFER_WAIT).
        joined_at = trio.current_time()
        late = await open_peer(nursery, net, "10.0.0.83", a, 83)
        for block in fork:  # a heavier branch from height 1: a reorg, the pool relayed again
            await relayed.send(m.NewBlock(block=block))
        reorg = await events(a).wait_for("chain_reorganized")
        assert reorg["depth"] == 1 and reorg["new_tip"] == fork[-1].block_hash.hex()
        assert await a.owner.call(lambda c: tx.txid in c.mempool.txs)
        arrived, offered = await late.wait_for("NewTransaction")
        assert offered.tx.txid == tx.txid
        assert arrived - joined_at < OFFER_WAIT  # by the reorg's relay, not the join's offer
        await trio.sleep(2 * OFFER_WAIT)  # every pool offer has run by now
        for peer, expected in ((sender, 0), (relayed, 1), (late, 1)):
            txs = [msg.tx.txid for _, msg in peer.of_type("NewTransaction")]
            assert txs.count(tx.txid) == expected, (peer.node_id.hex(), txs)
        a.stop()


async def test_transaction_refused_for_a_nonce_gap_is_accepted_once_its_predecessor_came(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Two paths can deliver a sender's nonce 1 before its nonce 0. The early copy is refused
    (``nonce_gap``, a race, no penalty); the copy that follows nonce 0 must then be accepted,
    not ignored as already processed, or the node never relays it."""
    alice = KeyPair(bytes(31) + b"\x0a")
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await a.miner.mine_one(alice.address)
        fast = await open_peer(nursery, net, "10.0.0.61", a, 61)
        slow = await open_peer(nursery, net, "10.0.0.62", a, 62)
        listener = await open_peer(nursery, net, "10.0.0.63", a, 63)
        now_ms = int(wall() * 1000)
        tx0, tx1 = (sign_transaction(alice, a.network, bytes(20), COIN, n, now_ms) for n in (0, 1))
        await fast.send(m.NewTransaction(tx=tx1))
        refused = await events(a).wait_for("tx_rejected", txid=tx1.txid.hex())
        assert refused["reason"] == "nonce_gap"
        await slow.send(m.NewTransaction(tx=tx0))
        await slow.send(m.NewTransaction(tx=tx1))
        await events(a).wait_for("tx_accepted", txid=tx0.txid.hex())
        await events(a).wait_for("tx_accepted", txid=tx1.txid.hex(), within=10)
        assert await a.owner.call(lambda c: [tx.txid for tx in c.mempool.txs.values()]) == [
            tx0.txid,
            tx1.txid,
        ]
        # Relayed on, in order, to the peer that had neither.
        await listener.wait_for("NewTransaction", count=2)
        assert [msg.tx.txid for _, msg in listener.of_type("NewTransaction")] == [tx0.txid, tx1.txid]
        assert a.manager.table.records[fast.node_id.hex()].misbehaviour == 0
        a.stop()


async def test_sync_peer_that_disconnects_mid_session_is_given_up_at_once(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A peer that leaves (rather than stalls) cannot answer: the round moves on to the next
    peer without waiting out the 30 s stall timeout."""
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path, sync_interval=10_000.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        b = await honest_node_ahead(nursery, net, tmp_path, 3)
        quitter = await open_peer(nursery, net, "10.0.0.53", a, 53, work=10**9, height=1_000)
        await quitter.wait_for("RequestChain")
        await b.manager.connect("10.0.0.1:5001")
        await events(a).wait_for("peer_connected", peer=b.node_id)
        await quitter.stream.aclose()
        left = trio.current_time()
        await events(a).wait_for("peer_disconnected", peer=quitter.node_id.hex())
        await events(a).wait_for("sync_progress", peer=b.node_id, height=3, within=60)
        assert trio.current_time() - left < 2.0
        assert a.owner.snapshot.tip == b.owner.snapshot.tip
        a.stop()
        b.stop()


class SlowSignatures(InlineSignatureChecker):
    """Signature checks that take ``seconds`` of (simulated) time: a slow machine, big batch."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def first_bad(self, txs: Sequence[Transaction], network: bytes) -> int | None:
        await trio.sleep(self.seconds)
        return await super().first_bad(txs, network)


async def test_sync_peer_is_not_timed_out_while_the_node_validates_its_batch(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The peer's heartbeat echoes wait in our socket behind the batch we are validating: its
    silence is our own, and must not get it disconnected as ``timeout``."""
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path, sync_interval=10_000.0)
    interval = a.config.heartbeat_interval
    a.consensus.signatures = SlowSignatures(5 * interval)
    blocks, work = build_chain(tmp_path / "prep.db", 3)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        peer = await open_peer(nursery, net, "10.0.0.54", a, 54, work=work, height=3)
        await peer.wait_for("RequestChain")
        await peer.send(m.ResponseChain(blocks=blocks))
        await events(a).wait_for("sync_progress", height=3, within=60)
        assert a.owner.snapshot.tip == blocks[-1].block_hash.hex()
        await trio.sleep(3 * interval)  # its queued echoes have been read by now
        assert peer.node_id.hex() in a.manager.connections
        assert not events(a).matching("peer_disconnected")
        a.stop()
