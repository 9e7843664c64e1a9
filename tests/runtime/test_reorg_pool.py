"""Transactions of a lone miner's branch survive its reorganisation away, and a crash right
after it (protocol.md 8.1): the long isolation of the fault run (tests/hostile/test_faults.py),
in short and deterministic form.

A mines alone, confirming more of one wallet's transactions than the per-sender cap (100)
allows pending; B mines a heavier chain meanwhile. When they meet, A reorganises onto B's chain
and every one of those transactions comes back to its pool, where they are stored with the
reorganisation: A is killed right after it and still has them all when it restarts. Then they
reach B a cap's worth at a time (peers apply the cap too) and are all confirmed.
"""

from pathlib import Path

import pytest
import trio
import trio.testing

from tests.chain.helpers import main_txids
from tests.runtime.harness import (
    ALICE,
    BOB,
    PARAMS,
    events,
    make_node,
    mine,
    run_until_down,
    tips,
    wait_until,
    wall,
)
from trionode.chain.errors import ValidationError
from trionode.chain.mempool import MAX_PENDING_PER_SENDER
from trionode.chain.transaction import sign_transaction
from trionode.chain.tree import Chain
from trionode.node.app import Node
from trionode.sim.network import SimNetwork

A_HOST, B_HOST = "10.0.0.1", "10.0.0.2"
# Blocks A mines alone, each with this many of Alice's transactions: 150 in all, past the cap.
LONE_BLOCKS = 3
PER_BLOCK = 50


async def pay_bob(node: Node) -> bytes:
    """One unit from Alice to Bob at Alice's next nonce on ``node``; raises if refused."""
    nonce = await node.owner.call(lambda c: c.mempool.next_nonce(ALICE.address, c.ledger))
    tx = sign_transaction(ALICE, PARAMS.network, BOB.address, 1, nonce, int(wall() * 1000))
    await node.intake.submit_transaction(tx, None)
    return tx.txid


def confirmed(chain: Chain) -> set[bytes]:
    return set(main_txids(chain))


def node_a(net: SimNetwork, root: Path) -> Node:
    return make_node(net, A_HOST, root, peers=(f"{B_HOST}:5001",), discover=False)


async def test_a_lone_branch_reorganised_away_then_a_crash_loses_no_transaction(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = SimNetwork()
    a = node_a(net, tmp_path)
    b = make_node(net, B_HOST, tmp_path, discover=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(b.run)
        a_down = trio.Event()
        await nursery.start(run_until_down, a, a_down)
        await events(a).wait_for("peer_connected", peer=b.node_id)
        await mine(a, ALICE, 2)
        await wait_until(lambda: len(tips(a, b)) == 1)
        net.partition({A_HOST}, {B_HOST})
        await events(a).wait_for("peer_disconnected", peer=b.node_id)

        lone: list[bytes] = []
        for _ in range(LONE_BLOCKS):
            lone += [await pay_bob(a) for _ in range(PER_BLOCK)]
            await mine(a, ALICE, 1)
        assert a.owner.snapshot.pending == 0 and len(lone) > MAX_PENDING_PER_SENDER
        await mine(b, BOB, LONE_BLOCKS + 2)  # more work: A's branch is the one to go

        net.heal()
        await events(a).wait_for("chain_reorganized", within=300)
        # kill -9 the moment the reorganisation is logged: only what it committed survives.
        net.crash(A_HOST)
        a.crash()
        await a_down.wait()

        net.restart(A_HOST)
        a = node_a(net, tmp_path)
        pending = set(a.chain.mempool.txs)
        assert set(lone) - pending - confirmed(a.chain) == set(), "accepted transactions lost"
        assert set(lone) <= pending  # none of them is on B's chain
        await nursery.start(a.run)
        # Over the cap because of them: a new payment of Alice's waits (a refusal, not a loss).
        with pytest.raises(ValidationError) as refused:
            await pay_bob(a)
        assert refused.value.reason == "too_many_pending"

        # B gets them a cap's worth at a time and confirms them all.
        for _ in range(LONE_BLOCKS + 2):
            if set(lone) <= await b.owner.call(confirmed):
                break
            await wait_until(lambda: len(tips(a, b)) == 1, within=300)
            await wait_until(lambda: b.owner.snapshot.pending > 0, within=300)
            await mine(b, BOB, 1)
        assert set(lone) <= await b.owner.call(confirmed)
        await wait_until(lambda: len(tips(a, b)) == 1, within=300)
        assert set(lone) <= await a.owner.call(confirmed)
        assert not events(a).matching("tx_dropped") and not events(b).matching("tx_dropped")
        a.stop()
        b.stop()
