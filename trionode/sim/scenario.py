"""Run one scenario: real nodes on a simulated network, the plan's events, then the checks.

``run_scenario(spec)`` builds the plan from the seed, starts every node (the same ``Node``
as ``trionode run``, on its own data dir of real files) inside one ``trio.run`` under
``MockClock(autojump_threshold=0)``, plays the events, and then:

1. *settles*: heals every link, restarts crashed nodes, and lets simulated time pass until
   all nodes are connected (one component), agree on the tip and have no sync in flight;
2. checks the mempools (``invariants.check_mempools``);
3. *drains*: mines the pending transactions, on the first node that has any, until no
   mempool holds one, and settles again;
4. checks the chains and transactions (``invariants``), stops every node gracefully, and
   reopens every data dir to check what is on disk.

After each settling, and at the end of each node's graceful stop, every node's task tree is
checked for leaks (``tasks``): trio's nursery cannot show one, the root cancel ends it.

This module wires the parts together and holds the order of the run; the parts live in
``lifecycle`` (the nodes: start, crash in mid-work, restart on the same data dir),
``events`` (one planned event against the live network), ``settling`` (steps 1 and 3),
``record`` (timeline, violations, counters, what the nodes log), ``watchdog`` (the real-time
budget) and ``result`` (what a run returns).
"""

import hashlib
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Final

import trio
import trio.testing

from trionode.chain.keys import KeyPair
from trionode.chain.params import ChainParams
from trionode.sim import invariants
from trionode.sim.determinism import deterministic_scheduling
from trionode.sim.events import EventPlayer
from trionode.sim.lifecycle import BASE_TIME, Fleet, SimNode, wall
from trionode.sim.network import SimNetwork
from trionode.sim.plan import Plan, Spec, make_plan
from trionode.sim.record import Record, describe_exception
from trionode.sim.result import Result
from trionode.sim.settling import MAX_DRAIN, QUIET_HEARTBEATS, SETTLE_LIMIT, SETTLE_STEP, TIE_CHECKS, Settler
from trionode.sim.tasks import ShutdownWatch, check_node
from trionode.sim.watchdog import WALL_BUDGET, Watchdog

# Names that lived here before the split, still importable from here.
__all__ = [
    "BASE_TIME",
    "MAX_DRAIN",
    "QUIET_HEARTBEATS",
    "SETTLE_LIMIT",
    "SETTLE_STEP",
    "STOP_LIMIT",
    "TIE_CHECKS",
    "WALL_BUDGET",
    "Result",
    "SimNode",
    "Simulation",
    "Watchdog",
    "run_scenario",
]

# A stopping node has SHUTDOWN_DRAIN (2 s) plus its close: everything must be over by then.
STOP_LIMIT: Final = 30.0


class Simulation:
    def __init__(self, plan: Plan, root: Path) -> None:
        self.plan = plan
        self.spec = plan.spec
        self.params = ChainParams(difficulty=self.spec.difficulty)
        self.net = SimNetwork(self.spec.seed, plan.profile_for)
        self.record = Record()
        self.keys = [
            KeyPair(hashlib.sha256(f"{self.spec.seed}:wallet:{i}".encode()).digest())
            for i in range(self.spec.wallets)
        ]
        self.fleet = Fleet(plan, self.params, self.net, self.record, root)
        self.events = EventPlayer(self.fleet, self.record, self.keys, self.params)
        self.settler = Settler(self.fleet, self.record, self.spec, self.keys)
        self.final_tip = b""
        self.final_height = -1

    async def main(self, watchdog: Watchdog) -> None:
        with trio.CancelScope() as scope:
            watchdog.arm(scope)
            try:
                async with trio.open_nursery() as nursery:
                    self.fleet.nursery = nursery
                    await self._play()
                    await self._stop_all()
            finally:
                watchdog.disarm()
        if watchdog.fired:
            self.record.violation(
                f"wall-clock budget of {WALL_BUDGET:.0f}s exceeded at {trio.current_time():.1f}s"
            )
            return
        self._check_disk()

    async def _play(self) -> None:
        record = self.record
        for sn in self.fleet.nodes:
            await self.fleet.start_node(sn)
        for ev in self.plan.events:
            await trio.sleep_until(ev.at)
            await self.events.apply(ev)
        if not await self.settler.settle("end of schedule"):
            return
        self._check_tasks("end of schedule")
        nodes = self.fleet.live()
        for sn in self.fleet.nodes:
            # A transaction can enter a mempool unlogged at info level (readmitted after a tip
            # change made it valid again): what a mempool holds was accepted there too, or a
            # double spend of it would look like one node missing the other.
            assert sn.node is not None
            for txid in sorted(sn.node.chain.mempool.txs):
                record.accept(sn.name, txid)
        lost = invariants.unexplained_reuses(record.reuses, record.dropped_at)
        masked = {old for _, old, _ in lost}
        for text in invariants.check_reuses(lost, record.created):
            record.violation(text)
        problems, excused = invariants.check_mempools(
            nodes,
            record.created,
            record.accepted,
            record.timeline.names,
            None if self.spec.strict_mempools else record.turned_away,
            masked,
        )
        record.stats["excused_absences"] = len(excused)
        for text in excused:
            record.timeline.add("CHECK", text, major=False)
        for text in problems:
            record.violation(text)
        if await self.settler.drain():
            self._check_tasks("after the drain")
        for text in invariants.check_chains(nodes, self.params, wall(), record.timeline.names):
            record.violation(text)
        for text in invariants.check_transactions(nodes[0], record.created, record.accepted, masked):
            record.violation(text)
        hosts = {sn.host: sn.name for sn in self.fleet.nodes}
        for text in invariants.check_penalties(nodes, record.timeline.names, hosts):
            record.violation(text)
        snap = nodes[0].owner.snapshot
        self.final_tip = bytes.fromhex(snap.tip)
        self.final_height = snap.height

    def _check_tasks(self, when: str) -> None:
        """No task leaked, on a quiet network (``tasks.check_node``)."""
        for sn in self.fleet.nodes:
            if sn.node is not None and sn.running:
                for text, times in Counter(check_node(sn.node, sn.loops, quiet=True)).items():
                    self.record.violation(f"{sn.name}: task leaked ({when}): {text}{_times(times)}")

    async def _stop_all(self) -> None:
        nodes = self.fleet.nodes
        stopping = [sn for sn in nodes if sn.node is not None and sn.running and sn.task is not None]
        watch = ShutdownWatch(
            {sn.task: (sn.name, sn.node, sn.loops) for sn in stopping if sn.node and sn.task}
        )
        trio.lowlevel.add_instrument(watch)
        try:
            for sn in stopping:
                assert sn.node is not None
                sn.node.stop()
            with trio.move_on_after(STOP_LIMIT) as scope:
                for sn in nodes:
                    await sn.done.wait()
        finally:
            trio.lowlevel.remove_instrument(watch)
        for sn in stopping:
            for text, times in Counter(watch.last.get(sn.name, [])).items():
                self.record.violation(
                    f"{sn.name}: task left at the root cancel of its stop: {text}{_times(times)}"
                )
        for text in watch.errors:
            self.record.violation(text)
        if scope.cancelled_caught:
            stuck = [sn.name for sn in nodes if sn.running]
            self.record.violation(f"nodes still running {STOP_LIMIT:.0f}s after stop: {stuck}")
            assert self.fleet.nursery is not None
            self.fleet.nursery.cancel_scope.cancel()

    def _check_disk(self) -> None:
        for sn in self.fleet.nodes:
            problem = invariants.check_data_dir(sn.data_dir, self.params, self.final_tip, wall())
            if problem:
                self.record.violation(f"{sn.name} data dir: {problem}")


def _times(n: int) -> str:
    return f" ({n} of them)" if n > 1 else ""


def run_scenario(spec: Spec, root: Path | None = None, wall_budget: float = WALL_BUDGET) -> Result:
    """Run one scenario to the end; never raises for what the nodes do (it is a violation)."""
    plan = make_plan(spec)
    base = root if root is not None else _default_root()
    with tempfile.TemporaryDirectory(prefix=f"trionode-sim-{spec.seed}-", dir=base) as tmp:
        sim = Simulation(plan, Path(tmp))
        watchdog = Watchdog(wall_budget)
        clock = trio.testing.MockClock(autojump_threshold=0)
        started = time.perf_counter()
        cpu_started = time.process_time()
        try:
            with deterministic_scheduling(spec.seed):
                trio.run(sim.main, watchdog, clock=clock)
        except Exception as exc:
            sim.record.violations.append(f"the simulation raised: {describe_exception(exc)}")
        wall_time = time.perf_counter() - started
        cpu_time = time.process_time() - cpu_started
    return Result(
        spec=spec,
        plan=plan,
        timeline=sim.record.timeline,
        violations=sim.record.violations,
        stats=sim.record.stats,
        final_tip=sim.final_tip.hex(),
        final_height=sim.final_height,
        sim_time=clock.current_time(),
        wall_time=wall_time,
        cpu_time=cpu_time,
    )


def _default_root() -> Path | None:
    """Data dirs on tmpfs when there is one: real files, without a disk's latency."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() else None
