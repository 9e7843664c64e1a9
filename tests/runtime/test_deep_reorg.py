"""Sync across deep forks (protocol.md 8.2): a branch longer than one batch is fetched batch by
batch from the last block received, not from our own main chain again, so two groups that
mined apart for hundreds of blocks converge, and the honest peer is never penalised.

Chains are built offline (difficulty 1, instant) and fed to nodes while they are partitioned,
so only the sync itself runs over the (simulated) network.
"""

from pathlib import Path

import pytest
import trio
import trio.testing

from tests.runtime.harness import ALICE, BOB, PARAMS, events, make_node, start_line, tips, wait_until, wall
from tests.runtime.scripted import FakePeer, open_peer
from trionode.chain.block import Block
from trionode.chain.locator import branch_locator, build_locator
from trionode.chain.pow import search, work_for_target
from trionode.chain.store import Store
from trionode.chain.tree import Chain
from trionode.node.app import Node
from trionode.node.sync import FIRST_ROUND
from trionode.sim.network import SimNetwork
from trionode.wire import messages as m
from trionode.wire.payloads import MAX_BLOCKS_PER_RESPONSE


def extend(chain: Chain, reward_to: bytes, count: int) -> list[Block]:
    """Mine ``count`` blocks on ``chain``'s tip (difficulty 1: instant)."""
    now_ms = int(wall() * 1000)
    blocks = []
    for _ in range(count):
        template = chain.template(reward_to, now_ms)
        nonce = search(template.header.prefix(), template.header.target, 0, 1 << 20)
        assert nonce is not None
        block = Block(template.header.with_nonce(nonce), template.txs)
        assert chain.add_block(block, now_ms).status == "connected"
        blocks.append(block)
    return blocks


def fork(path: Path, common: int, left: int, right: int) -> tuple[list[Block], list[Block], list[Block]]:
    """A shared stem of ``common`` blocks, then two branches of ``left`` and ``right`` blocks."""
    a = Chain(PARAMS, Store(path / "prep-a.db"))
    b = Chain(PARAMS, Store(path / "prep-b.db"))
    stem = extend(a, ALICE.address, common)
    for block in stem:
        assert b.add_block(block, int(wall() * 1000)).status == "connected"
    branches = extend(a, ALICE.address, left), extend(b, BOB.address, right)
    a.store.close()
    b.store.close()
    return stem, *branches


async def feed(node: Node, blocks: list[Block]) -> None:
    for block in blocks:
        result = await node.intake.submit_block(block, None, relay=False, quiet=True)
        assert result.status == "connected"


def penalty(node: Node, of: Node | FakePeer) -> int:
    peer = of.node_id if isinstance(of, Node) else of.node_id.hex()
    record = node.manager.table.records.get(peer)
    return 0 if record is None else record.misbehaviour


def test_a_branch_locator_has_the_shape_of_a_main_chain_locator() -> None:
    """Off the main chain its own hashes, below the fork the main chain's, genesis last."""
    main = [b"m%d" % h for h in range(300)]
    branch = main[:120] + [b"b%d" % h for h in range(120, 700)]
    parent = {branch[h]: branch[h - 1] for h in range(1, 700)}
    assert branch_locator(branch[-1], 699, parent.__getitem__, main) == build_locator(branch)
    assert branch_locator(main[250], 250, parent.__getitem__, main) == build_locator(main[:251])
    with pytest.raises(ValueError, match="genesis"):
        branch_locator(b"x", 1, lambda _: b"y", main)


async def test_600_vs_700_partition_heals_to_the_700_chain_without_penalty(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    stem, left, right = fork(tmp_path, 3, 600, 700)
    async with trio.open_nursery() as nursery:
        net, (n1, n2) = await start_line(nursery, tmp_path, 2)
        await feed(n1, stem)
        await wait_until(lambda: len(tips(n1, n2)) == 1)
        net.partition({"10.0.0.1"}, {"10.0.0.2"})
        await events(n2).wait_for("peer_disconnected", peer=n1.node_id)
        await feed(n1, left)
        await feed(n2, right)
        net.heal()
        await events(n2).wait_for("peer_connected", peer=n1.node_id, within=300)
        winner = right[-1].block_hash.hex()
        await wait_until(lambda: tips(n1, n2) == {winner}, within=600)
        reorg = events(n1).matching("chain_reorganized")
        assert [r["depth"] for r in reorg] == [600]  # once the branch had more work
        # A full batch of side-branch blocks (from genesis, the last hash of our locator the
        # peer has: the stem, then its branch), then the rest from the last block received.
        progress = [(p["blocks"], p["height"]) for p in events(n1).matching("sync_progress")]
        assert progress == [(MAX_BLOCKS_PER_RESPONSE, 603), (703, 703)]
        assert not events(n1).matching("sync_undelivered")
        assert penalty(n1, n2) == 0 and penalty(n2, n1) == 0
        total = await n1.owner.call(lambda c: c.ledger.total())
        assert total == PARAMS.mining_reward * 703
        n1.stop()
        n2.stop()


async def test_sync_goes_on_while_the_peer_claims_more_work_though_batches_are_short(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A batch cut short (by the frame limit) and a claimed height we already reach: the node
    keeps asking because the peer still claims more work than it has seen."""
    stem, _, branch = fork(tmp_path, 0, 0, 30)
    assert not stem
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path, sync_interval=10_000.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        work = await a.owner.call(lambda c: c.work)
        claim = work + sum(work_for_target(block.header.target) for block in branch)
        peer = await open_peer(nursery, net, "10.0.0.50", a, 50, work=claim, height=0)
        for n in range(3):
            _, req = await peer.wait_for("RequestChain", count=n + 1)
            # Each request goes on from the last block sent (dense part first).
            assert req.locator[0] == (branch[10 * n - 1].block_hash if n else PARAMS.network)
            await peer.send(m.ResponseChain(blocks=branch[10 * n : 10 * n + 10]))
        await wait_until(lambda: a.owner.snapshot.tip == branch[-1].block_hash.hex())
        await trio.sleep(5)
        assert len(peer.of_type("RequestChain")) == 3  # the claimed work reached: done
        assert not events(a).matching("sync_undelivered")
        assert penalty(a, peer) == 0
        a.stop()


async def test_orphan_on_a_deep_side_branch_fetches_its_ancestors_batch_by_batch(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A NewBlock at the tip of a 700-block branch forked at genesis, sent to a node with 400
    blocks of its own: the orphan's ancestors come in several (short) batches, each asked
    from the last block received, and the orphan joins as the new tip."""
    _, ours, branch = fork(tmp_path, 0, 400, 700)
    net = SimNetwork()
    a = make_node(net, "10.0.0.1", tmp_path, sync_interval=10_000.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await feed(a, ours)
        await trio.sleep(FIRST_ROUND + 5)
        peer = await open_peer(nursery, net, "10.0.0.50", a, 50, height=400)  # our work: no sync
        await trio.sleep(5)
        assert not peer.of_type("RequestChain")
        # From now on its heartbeats tell the truth about its chain.
        genesis_work = work_for_target(PARAMS.genesis.header.target)
        peer.work = genesis_work + sum(work_for_target(b.header.target) for b in branch)
        peer.height = 700
        await peer.send(m.NewBlock(block=branch[-1]))
        sent = 0
        for n in range(1, 4):
            _, req = await peer.wait_for("RequestChain", count=n)
            assert req.locator[0] == (branch[sent - 1].block_hash if sent else ours[-1].block_hash)
            batch = branch[sent : min(sent + 300, len(branch) - 1)]  # short batches, as if cut
            await peer.send(m.ResponseChain(blocks=batch))
            sent += len(batch)
        await events(a).wait_for("block_accepted", hash=branch[-1].block_hash.hex(), within=60)
        assert a.owner.snapshot.tip == branch[-1].block_hash.hex()
        await trio.sleep(5)
        assert len(peer.of_type("RequestChain")) == 3
        assert penalty(a, peer) == 0
        a.stop()
