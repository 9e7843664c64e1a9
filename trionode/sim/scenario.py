"""Run one scenario: real nodes on a simulated network, the plan's events, then the checks.

``run_scenario(spec)`` builds the plan from the seed, starts every node (the same ``Node``
as ``trionode run``, on its own data dir of real files) inside one ``trio.run`` under
``MockClock(autojump_threshold=0)``, plays the events, and then:

1. *settles*: heals every link, restarts crashed nodes, and lets simulated time pass until
   all nodes are connected (one component), agree on the tip and have no sync in flight;
2. checks the mempools (``invariants.check_mempools``);
3. *drains*: mines the pending transactions, on the first node that has any, until no
   mempool holds one, and settles again;
4. checks the chains and transactions (``invariants``), stops every node gracefully, checks
   no task is left, and reopens every data dir to check what is on disk.

This module wires the parts together and holds the order of the run; the parts live in
``lifecycle`` (the nodes: start, crash at a random checkpoint, restart on the same data dir),
``events`` (one planned event against the live network), ``settling`` (steps 1 and 3),
``record`` (timeline, violations, counters, what the nodes log), ``watchdog`` (the real-time
budget) and ``result`` (what a run returns).
"""

import hashlib
import tempfile
import time
from pathlib import Path
from typing import Final

import trio
import trio.testing

from trionode.chain.keys import KeyPair
from trionode.chain.params import ChainParams
from trionode.sim import invariants
from trionode.sim.determinism import TaskCounter, deterministic_scheduling
from trionode.sim.events import EventPlayer
from trionode.sim.lifecycle import BASE_TIME, Fleet, SimNode, wall
from trionode.sim.network import SimNetwork
from trionode.sim.plan import Plan, Spec, make_plan
from trionode.sim.record import Record, describe_exception
from trionode.sim.result import Result
from trionode.sim.settling import MAX_DRAIN, QUIET_HEARTBEATS, SETTLE_LIMIT, SETTLE_STEP, TIE_CHECKS, Settler
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

    async def main(self, watchdog: Watchdog, tasks: TaskCounter) -> None:
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
        leftovers = tasks.leftovers("trionode.", exclude="trionode.sim.")
        if leftovers:
            self.record.violation(f"tasks left after every node stopped: {leftovers[:5]}")
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
        nodes = self.fleet.live()
        problems, excused = invariants.check_mempools(
            nodes,
            record.created,
            record.accepted,
            record.timeline.names,
            None if self.spec.strict_mempools else record.turned_away,
        )
        record.stats["excused_absences"] = len(excused)
        for text in excused:
            record.timeline.add("CHECK", text, major=False)
        for text in problems:
            record.violation(text)
        await self.settler.drain()
        for text in invariants.check_chains(nodes, self.params, wall(), record.timeline.names):
            record.violation(text)
        for text in invariants.check_transactions(nodes[0], record.created, record.accepted):
            record.violation(text)
        snap = nodes[0].owner.snapshot
        self.final_tip = bytes.fromhex(snap.tip)
        self.final_height = snap.height

    async def _stop_all(self) -> None:
        nodes = self.fleet.nodes
        for sn in nodes:
            if sn.node is not None and sn.running:
                sn.node.stop()
        with trio.move_on_after(STOP_LIMIT) as scope:
            for sn in nodes:
                await sn.done.wait()
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


def run_scenario(spec: Spec, root: Path | None = None, wall_budget: float = WALL_BUDGET) -> Result:
    """Run one scenario to the end; never raises for what the nodes do (it is a violation)."""
    plan = make_plan(spec)
    base = root if root is not None else _default_root()
    with tempfile.TemporaryDirectory(prefix=f"trionode-sim-{spec.seed}-", dir=base) as tmp:
        sim = Simulation(plan, Path(tmp))
        watchdog = Watchdog(wall_budget)
        tasks = TaskCounter()
        clock = trio.testing.MockClock(autojump_threshold=0)
        started = time.perf_counter()
        cpu_started = time.process_time()
        try:
            with deterministic_scheduling(spec.seed):
                trio.run(sim.main, watchdog, tasks, clock=clock, instruments=[tasks])
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
