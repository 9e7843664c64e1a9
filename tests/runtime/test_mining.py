"""A tip change abandons the search in flight at once, and the miner starts on the new tip.

Two views: a solver whose rounds would take an hour of trio's clock (MockClock: the latency is
measured exactly, and a miner that waits for the round to end fails), and the real worker
processes of ``ProcessSolver`` (no round on the old template after the change, and the one in
flight stopped within a few jobs of real time).
"""

from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.runtime.harness import events, make_node, wait_until, wall
from trionode.chain import pow
from trionode.chain.block import Block
from trionode.chain.keys import KeyPair
from trionode.node.app import Node
from trionode.node.workers import JOB_SECONDS, PowSolver, ProcessSolver
from trionode.sim.network import SimNetwork

ALICE = KeyPair(bytes(31) + b"\x01")
BOB = KeyPair(bytes(31) + b"\x02")
# A round of the slow solver: far longer than any wait in these tests.
HOUR = 3600.0
# Real-time guard for the worker-process test (spawning workers takes a moment).
REAL_LIMIT = 30.0


@dataclass
class Round:
    prev_hash: bytes
    began: float
    ended: float | None = None
    finished: bool = False  # False: cancelled


class RecordingSolver:
    """Wraps a solver (or, with none, takes ``HOUR`` of trio's clock a round and never hits);
    records every round's template and when it began and ended. ``target`` overrides the
    template's target, so that a chain at an easy difficulty still gets a long search."""

    def __init__(self, inner: PowSolver | None = None, target: int | None = None) -> None:
        self.inner = inner
        self.target = target
        self.workers = inner.workers if inner else 1
        self.rounds: list[Round] = []

    async def search(self, prefix: bytes, target: int, start: int) -> tuple[int | None, int]:
        current = Round(prefix[12:44], trio.current_time())  # after version (4) and height (8)
        self.rounds.append(current)
        try:
            if self.inner is None:
                await trio.sleep(HOUR)
                result: tuple[int | None, int] = (None, 1 << 30)
            else:
                result = await self.inner.search(
                    prefix, self.target if self.target is not None else target, start
                )
            current.finished = True
            return result
        finally:
            current.ended = trio.current_time()

    def on(self, prev_hash: bytes) -> list[Round]:
        return [r for r in self.rounds if r.prev_hash == prev_hash]


async def block_from_elsewhere(node: Node) -> Block:
    """A valid block on the node's tip, mined here to another address: it moves the tip."""
    template = await node.owner.call(lambda chain: chain.template(BOB.address, int(wall() * 1000)))
    header = template.header
    nonce = pow.search(header.prefix(), header.target, 0, 1 << 24)
    assert nonce is not None
    return Block(header.with_nonce(nonce), template.txs)


async def tip_moves(node: Node, at: list[float], *, task_status: trio.TaskStatus[None]) -> None:
    """Note in ``at`` the moment the chain owner publishes a new tip (what the miner reacts to)."""
    generation = node.owner.tip_generation
    task_status.started()
    await node.owner.wait_tip_change(generation)
    at.append(trio.current_time())


async def start_node(nursery: trio.Nursery, tmp_path: Path, solver: PowSolver) -> Node:
    node = make_node(SimNetwork(), "10.0.0.1", tmp_path, discover=False)
    node.miner.solver = solver
    await nursery.start(node.run)
    return node


async def test_a_tip_change_cancels_a_long_round_at_once_and_mining_restarts_on_the_new_tip(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    solver = RecordingSolver()
    async with trio.open_nursery() as nursery:
        node = await start_node(nursery, tmp_path, solver)
        old_tip = bytes.fromhex(node.owner.snapshot.tip)
        nursery.start_soon(node.miner.mine_one, ALICE.address)
        await wait_until(lambda: len(solver.rounds) == 1)
        await trio.sleep(5.0)  # well into the hour-long round
        moved: list[float] = []
        await nursery.start(tip_moves, node, moved)
        block = await block_from_elsewhere(node)
        result = await node.intake.submit_block(block, None, signatures_checked=True)
        assert result.status == "connected"
        await wait_until(lambda: bool(solver.on(block.block_hash)), within=HOUR / 2)
        (changed,) = moved
        (stale,) = solver.on(old_tip)
        (fresh,) = solver.on(block.block_hash)
        # Abandoned in the same instant of trio's clock, not an hour later; started over on
        # the new tip at once.
        assert not stale.finished and stale.ended == changed
        assert fresh.began == changed and fresh.ended is None
        abandoned = await events(node).wait_for("mining_abandoned", reason="tip_changed")
        assert abandoned["height"] == 1
        assert node.miner.active == 1
        node.stop()
        nursery.cancel_scope.cancel()  # the miner runs in the test's nursery


async def test_the_miner_rebuilds_an_old_template_without_waiting_for_its_round(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    from trionode.node.miner import TEMPLATE_REFRESH

    solver = RecordingSolver()
    async with trio.open_nursery() as nursery:
        node = await start_node(nursery, tmp_path, solver)
        nursery.start_soon(node.miner.mine_one, ALICE.address)
        await wait_until(lambda: len(solver.rounds) == 2, within=HOUR / 2)
        first, second = solver.rounds
        assert not first.finished and first.ended is not None
        assert first.ended - first.began == pytest.approx(TEMPLATE_REFRESH)
        assert second.began == first.ended
        await events(node).wait_for("mining_abandoned", reason="template_refresh")
        node.stop()
        nursery.cancel_scope.cancel()


async def test_worker_processes_leave_a_stale_template_within_one_short_job(tmp_path: Path) -> None:
    # The chain's difficulty is 1 (the test mines the competing block in a moment), but the
    # miner searches for a target nothing meets: a search that would never end by itself.
    solver = RecordingSolver(ProcessSolver(2), target=0)
    with trio.fail_after(REAL_LIMIT):
        async with trio.open_nursery() as nursery:
            node = await start_node(nursery, tmp_path, solver)
            old_tip = bytes.fromhex(node.owner.snapshot.tip)
            nursery.start_soon(node.miner.mine_one, ALICE.address)
            # Workers started and rounds sized by their measured rate.
            await wait_until(lambda: len(solver.rounds) >= 5, within=REAL_LIMIT, step=0.01)
            moved: list[float] = []
            await nursery.start(tip_moves, node, moved)
            block = await block_from_elsewhere(node)
            result = await node.intake.submit_block(block, None, signatures_checked=True)
            assert result.status == "connected"
            await wait_until(lambda: bool(solver.on(block.block_hash)), within=REAL_LIMIT, step=0.01)
            (changed,) = moved
            # At most the round in flight went on after the change, was cut short (cancelled,
            # not finished: its result is dropped) when its jobs in flight ended.
            late = [r for r in solver.on(old_tip) if r.ended is None or r.ended > changed]
            assert len(late) <= 1 and not any(r.finished for r in late), [
                (r.began - changed, (r.ended or 0) - changed, r.finished) for r in late
            ]
            stale_end = max(r.ended or 0.0 for r in solver.on(old_tip))
            assert stale_end - changed < 10 * JOB_SECONDS, stale_end - changed
            assert solver.on(block.block_hash)[0].began >= stale_end
            node.stop()
            nursery.cancel_scope.cancel()
