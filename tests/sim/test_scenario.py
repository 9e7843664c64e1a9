"""Whole scenarios: a seed replays bit for bit, and the invariants catch a node that is wrong.

The "catch" tests break the node on purpose (a monkeypatched method) and check that the
simulation reports it: a check that never fires proves nothing.
"""

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

import trionode.sim.scenario as scenario
from tests.sim.faults import mint_on_undo
from trionode.chain.mempool import Mempool
from trionode.chain.store import Store
from trionode.chain.transaction import Transaction
from trionode.chain.tree import Chain
from trionode.net.manager import PeerManager
from trionode.node.app import Node
from trionode.node.chain_owner import ChainOwner
from trionode.node.dispatch import Dispatcher
from trionode.node.intake import Intake
from trionode.sim.plan import Spec, make_plan
from trionode.sim.scenario import run_scenario
from trionode.wire.errors import BAD_FIELD, ProtocolError

ROOT = Path(__file__).resolve().parents[2]
SMALL: dict[str, Any] = {"nodes": 6, "events": 30}


def sim_stdout(seed: int, hash_seed: str) -> bytes:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    proc = subprocess.run(
        [sys.executable, "-m", "trionode.sim", "--seed", str(seed), "--nodes", "8", "--events", "40", "-v"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr.decode()
    return proc.stdout


def test_a_seed_replays_byte_for_byte_across_processes_and_hash_seeds() -> None:
    first = sim_stdout(81274, "1")
    second = sim_stdout(81274, "2")
    assert first == second
    assert first.count(b"\n") > 100  # a real timeline: blocks, transactions, faults
    assert sim_stdout(81275, "1") != first


def test_a_seed_replays_in_one_process() -> None:
    spec = Spec(seed=5, **SMALL)
    a, b = run_scenario(spec), run_scenario(spec)
    assert a.timeline.render() == b.timeline.render()
    assert (a.final_tip, a.violations) == (b.final_tip, b.violations)
    assert a.final_height > 0


def test_without_pinning_the_scheduler_runs_diverge(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why ``deterministic_scheduling`` exists: trio varies the order of runnable tasks."""
    monkeypatch.setattr(scenario, "deterministic_scheduling", lambda seed: contextlib.nullcontext())
    spec = Spec(seed=5, **SMALL)
    runs = {run_scenario(spec).timeline.digest() for _ in range(3)}
    assert len(runs) > 1


def violations(spec: Spec) -> list[str]:
    result = run_scenario(spec)
    return result.violations


def test_a_forgetful_mempool_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Accepted, logged and relayed, but never kept: transactions are lost."""
    original = Mempool._insert

    def forget_odd_amounts(self: Mempool, tx: Transaction) -> None:
        if tx.amount % 2 == 0:
            original(self, tx)

    monkeypatch.setattr(Mempool, "_insert", forget_odd_amounts)
    found = violations(Spec(seed=3, **SMALL, partitions=False, crashes=False))
    assert any("lost" in v for v in found), found


def test_a_lost_transaction_hidden_by_a_reused_nonce_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every node forgets the second transaction ever sent (accepted and logged, never kept).
    Its wallet's next send takes the same nonce from the node's view; once that one confirms,
    the lost one looks like the loser of a double spend, unless the check knows the sending
    node had held it and never dropped it."""
    original = Mempool._insert
    sent: list[bytes] = []

    def forget_the_second(self: Mempool, tx: Transaction) -> None:
        if tx.txid not in sent:
            sent.append(tx.txid)
        if sent.index(tx.txid) != 1:
            original(self, tx)

    monkeypatch.setattr(Mempool, "_insert", forget_the_second)
    found = violations(Spec(seed=1, **SMALL, partitions=False, crashes=False))
    assert any(f"tx {sent[1].hex()[:8]} lost on" in v for v in found), found


def test_a_node_that_never_offers_its_mempool_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """New peers are not offered the mempool: a transaction accepted on one side of a
    partition, or while a node was down, never reaches the nodes that missed its relay."""

    async def no_offer(self: Intake, conn: Any) -> None:
        return None

    monkeypatch.setattr(Intake, "offer_mempool", no_offer)
    for seed in range(1, 11):
        found = violations(Spec(seed=seed, **SMALL))
        if any("is neither confirmed nor pending on" in v for v in found):
            return
    raise AssertionError("a node that never offers its mempool went unnoticed in 10 seeds")


def test_a_reorganisation_that_keeps_the_coinbase_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undoing a block leaves its reward in the ledger: every reorganisation mints coins. No
    crashes, so no restart rebuilds a ledger from the store and hides it."""
    mint_on_undo(monkeypatch)
    for seed in range(1, 21):
        result = run_scenario(Spec(seed=seed, **SMALL, crashes=False))
        if result.stats["reorgs"]:
            assert any("balances sum to" in v for v in result.violations), result.violations
            return
    raise AssertionError("no reorganisation in 20 seeds")


def first_seed_with(kind: str, **spec: Any) -> Spec:
    for seed in range(1, 100):
        candidate = Spec(seed=seed, **SMALL, **spec)
        if any(e.kind == kind for e in make_plan(candidate).events):
            return candidate
    raise AssertionError(f"no plan with a {kind} event")


def test_a_store_that_never_commits_is_caught_by_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing durable until a graceful stop: a crash loses the chain, and the restart shows it."""
    monkeypatch.setattr(Store, "commit", lambda self: None)
    found = violations(first_seed_with("crash", partitions=False))
    assert any("restarted at tip" in v for v in found), found
    # And what each node left on disk when it stopped (a graceful stop commits nothing either).
    assert sum(" data dir: reopened at 0 " in v for v in found) == SMALL["nodes"], found


def test_a_node_that_never_reorganizes_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fork choice broken: only blocks extending the tip are ever adopted."""

    def no_reorg(self: Chain, candidate: Any, now_ms: int, result: Any) -> None:
        if candidate.prev == self.main[-1]:
            original(self, candidate, now_ms, result)

    original = Chain._activate
    monkeypatch.setattr(Chain, "_activate", no_reorg)
    for seed in range(1, 6):
        found = violations(Spec(seed=seed, **SMALL, crashes=False))
        if any("convergence" in v or "work" in v for v in found):
            return
    raise AssertionError("a node that never reorganizes went unnoticed in 5 seeds")


def test_an_error_from_peer_input_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A handler that raises on what a peer sent: the connection survives it, the log says
    ``peer_task_failed`` at error level, and the simulation counts that as a failure."""
    original = Dispatcher.on_message
    raised: list[bool] = []

    async def fragile(self: Dispatcher, conn: Any, env: Any) -> None:
        if type(env.message).__name__ == "PeerDiscovery" and not raised:
            raised.append(True)
            raise ValueError("boom")
        await original(self, conn, env)

    monkeypatch.setattr(Dispatcher, "on_message", fragile)
    found = violations(Spec(seed=2, **SMALL, partitions=False, crashes=False))
    assert any("logged an error" in v for v in found), found


def test_a_commit_one_step_late_is_caught_by_a_crash_in_mid_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chain owner commits one scheduler step after it applied a batch (and answered):
    harmless unless the node dies in between, which only a crash landing in the middle of
    the node's work (not at an idle moment) can show."""
    original_run = ChainOwner.run

    async def late_commits(self: ChainOwner, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        chain = self._chain
        commit = chain.commit

        async def soon() -> None:
            await trio.lowlevel.checkpoint()
            commit()

        async with trio.open_nursery() as nursery:

            def later() -> None:
                try:
                    nursery.start_soon(soon)
                except RuntimeError:  # the node is closing: its last commit is synchronous
                    commit()

            monkeypatch.setattr(chain, "commit", later)
            await original_run(self, task_status=task_status)

    monkeypatch.setattr(ChainOwner, "run", late_commits)
    for seed in range(1, 30):
        spec = Spec(seed=seed, **SMALL, partitions=False)
        if sum(e.kind == "crash" for e in make_plan(spec).events) < 2:
            continue
        found = violations(spec)
        if any("restarted" in v for v in found):
            return
    raise AssertionError("commits one step late went unnoticed by every crash")


def test_a_leaked_connection_task_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A task started for each connection that never ends: the root cancel would end it
    without a word, so the check looks at the live task tree once the network is quiet."""
    original = PeerManager._register

    async def leaked() -> None:
        await trio.sleep_forever()

    def register(self: PeerManager, conn: Any) -> bool:
        ok = original(self, conn)
        if ok and self.nursery is not None:
            self.nursery.start_soon(leaked)
        return ok

    monkeypatch.setattr(PeerManager, "_register", register)
    found = violations(Spec(seed=3, **SMALL, partitions=False, crashes=False))
    assert any(
        "task leaked (end of schedule)" in v and "leaked in the connections' nursery" in v for v in found
    ), found


def test_a_task_left_running_at_shutdown_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A task started as the node stops that nothing ends but the root cancel."""
    original = Node._shutdown

    async def lingering() -> None:
        await trio.sleep_forever()

    async def shutdown(self: Node) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(lingering)
        await original(self)

    monkeypatch.setattr(Node, "_shutdown", shutdown)
    found = violations(Spec(seed=3, **SMALL, partitions=False, crashes=False))
    left = [v for v in found if "task left at the root cancel of its stop" in v and "lingering" in v]
    assert len(left) == SMALL["nodes"], found


def test_misbehaviour_below_the_ban_threshold_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A node that once takes an honest peer's message for a protocol violation: 34 points,
    no ban, no error log; the simulation still counts it (the log line, and the points)."""
    original = Dispatcher.on_message
    raised: list[bool] = []

    async def strict(self: Dispatcher, conn: Any, env: Any) -> None:
        if type(env.message).__name__ == "PeerDiscovery" and not raised:
            raised.append(True)
            raise ProtocolError(BAD_FIELD, "peers", "judged wrongly")
        await original(self, conn, env)

    monkeypatch.setattr(Dispatcher, "on_message", strict)
    found = violations(Spec(seed=2, **SMALL, partitions=False, crashes=False))
    assert not any("peer_banned" in v for v in found), found
    assert any("protocol_violation" in v for v in found), found
    assert any("misbehaviour points" in v for v in found), found


@pytest.fixture(autouse=True)
def _no_leftover_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Scenarios put their data dirs under pytest's tmp_path, not /dev/shm."""
    monkeypatch.setattr(scenario, "_default_root", lambda: tmp_path)
    yield
    assert not any(tmp_path.iterdir())
