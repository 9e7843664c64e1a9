"""Relay, sync, reorgs and mining between whole nodes over memory streams (MockClock)."""

from pathlib import Path

import trio
import trio.testing

from tests.runtime.harness import (
    ALICE,
    BOB,
    PARAMS,
    events,
    make_node,
    mine,
    send,
    start_line,
    tips,
    wait_until,
)
from tests.runtime.scripted import build_chain, open_peer
from trionode.chain.amounts import COIN
from trionode.node.sync import FIRST_ROUND
from trionode.sim.network import SimNetwork
from trionode.wire import messages as m


async def test_tx_and_block_reach_every_node_once(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        _, nodes = await start_line(nursery, tmp_path, 3)
        n1, _n2, n3 = nodes
        await mine(n1, ALICE, 2)
        await wait_until(lambda: len(tips(*nodes)) == 1)
        txid = await send(n1, ALICE, BOB.address, 30)
        for node in nodes:
            await events(node).wait_for("tx_accepted", txid=txid.hex())
        await mine(n3, BOB)
        await wait_until(lambda: len(tips(*nodes)) == 1 and nodes[0].owner.snapshot.height == 3)
        for node in nodes:
            assert len(events(node).matching("tx_accepted", txid=txid.hex())) == 1
            assert node.owner.snapshot.pending == 0
            balances = await node.owner.call(lambda c: (c.balance(ALICE.address), c.balance(BOB.address)))
            assert balances == (70 * COIN, 80 * COIN)
            heights = [e["height"] for e in events(node).matching("block_accepted")]
            assert sorted(heights) == [1, 2, 3]  # each block accepted exactly once
        for node in nodes:
            node.stop()


async def test_partitioned_groups_reorg_to_most_work_and_lose_no_tx(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        net, nodes = await start_line(nursery, tmp_path, 4)
        await mine(nodes[0], ALICE, 3)
        await wait_until(lambda: len(tips(*nodes)) == 1)
        left, right = nodes[:2], nodes[2:]
        net.partition({"10.0.0.1", "10.0.0.2"}, {"10.0.0.3", "10.0.0.4"})
        await events(nodes[2]).wait_for("peer_disconnected", peer=nodes[1].node_id)
        # The left side sends a transaction and mines 1 block; the right mines 3.
        lost_side_tx = await send(left[0], ALICE, BOB.address, 10)
        await mine(left[1], ALICE, 1)
        await mine(right[0], BOB, 3)
        await wait_until(lambda: len(tips(*left)) == 1 and len(tips(*right)) == 1)
        assert tips(*left) != tips(*right)
        net.heal()
        await events(nodes[2]).wait_for("peer_connected", peer=nodes[1].node_id, within=120)
        await wait_until(lambda: len(tips(*nodes)) == 1, within=120)
        assert nodes[0].owner.snapshot.height == 6
        reorged = events(left[0]).matching("chain_reorganized")
        assert reorged and reorged[-1]["depth"] == 1
        # Logged while handling a peer's blocks, the line names that peer (contextvars).
        assert reorged[-1].get("peer") in {n.node_id for n in nodes[1:]}
        for node in nodes:
            confirmed = await node.owner.call(
                lambda c: any(tx.txid == lost_side_tx for h in c.main for tx in c.block(h).txs)  # type: ignore[union-attr]
            )
            pending = await node.owner.call(lambda c: lost_side_tx in c.mempool)
            assert confirmed or pending, "the losing side's transaction was lost"
            total = await node.owner.call(lambda c: c.ledger.total())
            assert total == PARAMS.mining_reward * 6
        for node in nodes:
            node.stop()


async def test_new_node_syncs_in_batches_and_catches_up_one_block(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        _, (n1,) = await start_line(nursery, tmp_path, 1)
        await mine(n1, ALICE, 620)
        net2 = n1.env.transport.network  # type: ignore[attr-defined]
        late = make_node(net2, "10.0.0.9", tmp_path, peers=("10.0.0.1:5001",))
        await nursery.start(late.run)
        await wait_until(lambda: late.owner.snapshot.height == 620, within=300)
        progress = events(late).matching("sync_progress")
        assert [p["blocks"] for p in progress][:2] == [500, 620]
        assert all(p["target"] == 620 for p in progress)
        # One more block: the catch-up moves exactly one block.
        conn = late.manager.connections[n1.node_id]
        before = conn.bytes_in
        await mine(n1, ALICE, 1)
        await wait_until(lambda: late.owner.snapshot.height == 621)
        assert conn.bytes_in - before < 10_000
        assert len(events(late).matching("block_accepted", height=621)) == 1
        n1.stop()
        late.stop()


async def test_node_that_missed_blocks_in_a_partition_catches_up_when_it_heals(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Reconnecting, the Hello shows more work and the consensus round fetches the blocks."""
    async with trio.open_nursery() as nursery:
        net, (n1, n2) = await start_line(nursery, tmp_path, 2)
        net.partition({"10.0.0.1"}, {"10.0.0.2"})
        await events(n2).wait_for("peer_disconnected", peer=n1.node_id)
        await mine(n1, ALICE, 5)
        net.heal()
        await events(n2).wait_for("peer_connected", peer=n1.node_id, within=120)
        await wait_until(lambda: len(tips(n1, n2)) == 1, within=120)
        assert n2.owner.snapshot.height == 5
        n1.stop()
        n2.stop()


async def test_orphan_block_fetches_its_missing_parents(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A NewBlock whose parent is unknown, from a peer claiming no more work than ours (so no
    consensus round runs): RequestChain with our locator, the ancestors come back, the orphan
    joins as the tip, and the peer is not penalised."""
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path, sync_interval=10_000.0)
    blocks, _ = build_chain(tmp_path / "prep.db", 3)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await trio.sleep(FIRST_ROUND + 5)  # past the first round
        peer = await open_peer(nursery, net, "10.0.0.50", a, 50)  # claims our work
        await trio.sleep(5)
        assert not peer.of_type("RequestChain")
        await peer.send(m.NewBlock(block=blocks[2]))
        _, request = await peer.wait_for("RequestChain")
        assert request.locator == [PARAMS.network]  # our chain: genesis alone
        await peer.send(m.ResponseChain(blocks=blocks[:2]))
        await events(a).wait_for("block_accepted", hash=blocks[2].block_hash.hex())
        assert a.owner.snapshot.tip == blocks[2].block_hash.hex()
        assert [e["height"] for e in events(a).matching("block_accepted")] == [1, 2, 3]
        assert not events(a).matching("sync_undelivered")
        assert a.manager.table.records[peer.node_id.hex()].misbehaviour == 0
        assert len(peer.of_type("RequestChain")) == 1
        a.stop()


class RecordingSolver:
    """Never finds a nonce; records the previous hash of every template it is asked about."""

    workers = 1

    def __init__(self) -> None:
        self.prev_hashes: list[bytes] = []

    async def search(self, prefix: bytes, target: int, start: int) -> tuple[int | None, int]:
        await trio.sleep(0.01)  # a round of work takes (simulated) time
        self.prev_hashes.append(prefix[12:44])  # version (4) and height (8), then prev_hash
        return None, 1000


async def test_mining_abandons_its_template_when_the_tip_moves(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        _, (n1, n2) = await start_line(nursery, tmp_path, 2)
        solver = RecordingSolver()
        n2.miner.solver = solver
        nursery.start_soon(n2.miner.mine_one, BOB.address)
        await wait_until(lambda: len(solver.prev_hashes) >= 3)
        assert set(solver.prev_hashes) == {PARAMS.network}  # working on genesis
        await mine(n1, ALICE)  # a block from elsewhere moves n2's tip
        new_tip = bytes.fromhex(n1.owner.snapshot.tip)
        await wait_until(lambda: n2.owner.snapshot.tip == new_tip.hex())
        rounds_before = len(solver.prev_hashes)
        await wait_until(lambda: len(solver.prev_hashes) >= rounds_before + 2)
        # At most the round in flight finished on the old template; then the new tip.
        assert solver.prev_hashes[rounds_before + 1] == new_tip
        n1.stop()
        n2.stop()
        nursery.cancel_scope.cancel()
