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

A crash (``Node.crash``) cancels the node at a random checkpoint (the event's time plus a
seeded number of scheduler passes) without the shutdown flush, with every connection reset;
the node restarts later on the same data dir, and must come back with exactly the tip and
mempool it had committed.
"""

import contextlib
import hashlib
import math
import random
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import trio
import trio.testing

from trionode.chain.amounts import format_coins
from trionode.chain.errors import ValidationError
from trionode.chain.keys import KeyPair
from trionode.chain.params import ChainParams
from trionode.chain.transaction import Transaction, sign_transaction
from trionode.node.app import Environment, Node, StartupError
from trionode.node.config import NodeConfig
from trionode.node.logging import make_capturing_logger
from trionode.node.workers import InlineSignatureChecker, InlineSolver
from trionode.sim import invariants
from trionode.sim.determinism import TaskCounter, deterministic_scheduling
from trionode.sim.network import SimNetwork
from trionode.sim.plan import Event, Plan, Spec, host_of, make_plan, name_of
from trionode.sim.timeline import TIMELINE_EVENTS, Timeline, short

# The simulated wall clock starts here (2027-01-15), whatever the real date.
BASE_TIME: Final = 1_800_000_000.0
# Settling: check every SETTLE_STEP seconds; quiescent once everything agreed for
# QUIET_HEARTBEATS heartbeat intervals in a row (every node has heard every peer's tip, and
# what waits on that, such as a mempool offer, has happened); not converged within
# SETTLE_LIMIT is a failure (configured peers redial within 60 s and a sync round runs every
# sync_interval, so a healthy network needs far less).
SETTLE_STEP: Final = 2.0
QUIET_HEARTBEATS: Final = 2.0
# Equal-work tips on a connected, idle network for this many checks: a tie to break.
TIE_CHECKS: Final = 3
SETTLE_LIMIT: Final = 600.0
# Blocks mined at most to drain the mempools at the end.
MAX_DRAIN: Final = 6
# A stopping node has SHUTDOWN_DRAIN (2 s) plus its close: everything must be over by then.
STOP_LIMIT: Final = 30.0
# Real seconds a scenario may take before the watchdog cancels it (a busy loop never lets
# MockClock advance, so no simulated timeout could catch it).
WALL_BUDGET: Final = 600.0


@dataclass
class SimNode:
    index: int
    name: str
    host: str
    data_dir: Path
    config: NodeConfig
    node: Node | None = None
    incarnation: int = 0
    running: bool = False
    done: trio.Event = field(default_factory=trio.Event)
    crash_state: tuple[bytes, frozenset[bytes]] | None = None  # tip and mempool at the crash


@dataclass
class Result:
    spec: Spec
    plan: Plan
    timeline: Timeline
    violations: list[str]
    stats: dict[str, Any]
    final_tip: str = ""
    final_height: int = -1
    sim_time: float = 0.0
    wall_time: float = 0.0
    cpu_time: float = 0.0  # this process's CPU seconds: fairer than wall time on a busy machine

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def ratio(self) -> float:
        return self.sim_time / self.wall_time if self.wall_time > 0 else 0.0

    def summary(self) -> str:
        """One line, deterministic (no wall time): the same seed prints the same."""
        verdict = "OK" if self.ok else f"FAILED ({len(self.violations)} violations)"
        s = self.stats
        return (
            f"seed {self.spec.seed}: {verdict}; tip {self.final_height} {self.final_tip[:16]} after "
            f"{self.sim_time:.1f} simulated s; {s.get('blocks_mined', 0)} blocks mined, "
            f"{s.get('reorgs', 0)} reorgs (deepest {s.get('max_reorg', 0)}), "
            f"{s.get('txs_accepted', 0)} txs accepted, {s.get('crashes', 0)} crashes, "
            f"{s.get('partitions', 0)} partitions; timeline {self.timeline.digest()[:16]}"
        )


class _Sink(list[dict[str, Any]]):
    """The capturing logger's sink for one node: each event goes straight to the simulation."""

    def __init__(self, sim: "Simulation", sn: SimNode) -> None:
        super().__init__()
        self._sim = sim
        self._sn = sn

    def append(self, event: dict[str, Any]) -> None:
        self._sim.on_log(self._sn, event)


class Watchdog:
    """Cancels the run if it takes more real time than its budget: a busy loop never lets
    MockClock advance, so no simulated timeout could catch it. A timer thread costs nothing
    per scheduler step, and touches the run only if it fires (a failed run anyway)."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.fired = False
        self._timer: threading.Timer | None = None

    def arm(self, scope: trio.CancelScope) -> None:
        token = trio.lowlevel.current_trio_token()

        def fire() -> None:
            self.fired = True
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(scope.cancel)

        self._timer = threading.Timer(self.budget, fire)
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


class Simulation:
    def __init__(self, plan: Plan, root: Path) -> None:
        self.plan = plan
        self.spec = plan.spec
        self.params = ChainParams(difficulty=self.spec.difficulty)
        self.net = SimNetwork(self.spec.seed, plan.profile_for)
        self.timeline = Timeline(trio.current_time)
        self.violations: list[str] = []
        self.created: dict[bytes, Transaction] = {}
        self.accepted: dict[bytes, float] = {}  # txid -> first acceptance (simulated time)
        self.stats: dict[str, Any] = {
            "blocks_mined": 0,
            "reorgs": 0,
            "max_reorg": 0,
            "txs_accepted": 0,
            "crashes": 0,
            "partitions": 0,
            "bans": 0,
            "settle_time": 0.0,
            "drain_blocks": 0,
            "tie_breaks": 0,
            "excused_absences": 0,
        }
        # txid -> nodes that refused or dropped it by documented policy (invariants.check_mempools)
        self.turned_away: dict[bytes, set[str]] = {}
        self.keys = [
            KeyPair(hashlib.sha256(f"{self.spec.seed}:wallet:{i}".encode()).digest())
            for i in range(self.spec.wallets)
        ]
        self.nodes = [self._sim_node(i, root) for i in range(self.spec.nodes)]
        self.by_id: dict[str, SimNode] = {}
        self.nursery: trio.Nursery | None = None
        self.final_tip = b""
        self.final_height = -1

    def _sim_node(self, i: int, root: Path) -> SimNode:
        spec = self.spec
        host = host_of(i)
        config = NodeConfig(
            data_dir=root / name_of(i),
            listen_host=host,
            listen_port=5001,
            peers=tuple((host_of(j), 5001) for j in self.plan.peers[i]),
            max_peers=(spec.max_peers + sum(i in p for p in self.plan.peers))
            if spec.max_peers
            else spec.nodes + 2,
            outbound_target=spec.outbound_target,
            discover=self.plan.discover,
            heartbeat_interval=spec.heartbeat_interval,
            sync_interval=spec.sync_interval,
            chain=self.params,
            mining_workers=1,
            log_level="info",
        )
        return SimNode(i, name_of(i), host, config.data_dir, config)

    @staticmethod
    def wall() -> float:
        return BASE_TIME + trio.current_time()

    def violation(self, text: str) -> None:
        self.violations.append(text)
        self.timeline.add("CHECK", f"VIOLATION: {text}")

    # ------------------------------------------------------------- node life

    def on_log(self, sn: SimNode, event: dict[str, Any]) -> None:
        kind = event["event"]
        if event.get("level") in ("error", "critical"):
            self.violation(f"{sn.name} logged an error: {kind} {_fields(event)}")
        if kind == "tx_accepted":
            self.accepted.setdefault(bytes.fromhex(event["txid"]), trio.current_time())
            self.stats["txs_accepted"] += 1
        elif (kind == "tx_rejected" and event.get("reason") in invariants.RACES) or kind == "tx_dropped":
            self.turned_away.setdefault(bytes.fromhex(event["txid"]), set()).add(sn.name)
        elif kind == "block_mined":
            self.stats["blocks_mined"] += 1
        elif kind == "chain_reorganized":
            self.stats["reorgs"] += 1
            self.stats["max_reorg"] = max(self.stats["max_reorg"], event["depth"])
        elif kind in ("peer_banned", "block_rejected"):
            # Honest nodes never send invalid blocks, so neither can be right here.
            self.stats["bans"] += kind == "peer_banned"
            self.violation(f"{sn.name}: {kind} {_fields(event)}")
        if kind in TIMELINE_EVENTS:
            self.timeline.log_event(sn.name, event)

    def _new_node(self, sn: SimNode) -> Node | None:
        sn.incarnation += 1
        rng = random.Random(f"{self.spec.seed}:{sn.host}:{sn.incarnation}")
        env = Environment(
            transport=self.net.transport(sn.host),
            wall=self.wall,
            rng=rng,
            entropy=rng.randbytes,  # deterministic from the seed, like everything else here
            solver=InlineSolver(),
            signatures=InlineSignatureChecker(),
            control=False,
            signals=False,
        )
        try:
            node = Node(sn.config, env, make_capturing_logger(_Sink(self, sn), "info", clock=self.wall))
        except StartupError as exc:
            self.violation(f"{sn.name} cannot start: {exc}")
            return None
        self.by_id[node.node_id] = sn
        self.timeline.names[node.node_id] = sn.name
        return node

    async def start_node(self, sn: SimNode) -> None:
        node = self._new_node(sn)
        if node is None:
            return
        assert self.nursery is not None
        sn.node = node
        sn.done = trio.Event()
        sn.running = True
        await self.nursery.start(self._run_node, sn, node)

    async def _run_node(self, sn: SimNode, node: Node, *, task_status: trio.TaskStatus[Any]) -> None:
        try:
            await node.run(task_status=task_status)
        except Exception as exc:
            self.violation(f"{sn.name} died: {_describe_exception(exc)}")
            try:
                task_status.started(None)
            except RuntimeError:
                pass  # it had started
        finally:
            sn.running = False
            sn.done.set()

    async def crash(self, sn: SimNode, steps: int) -> None:
        for _ in range(steps):  # land on a random checkpoint of whatever is going on
            await trio.lowlevel.checkpoint()
        node = sn.node
        if node is None or not sn.running:
            return
        chain = node.chain
        sn.crash_state = (chain.main[-1], frozenset(chain.mempool.txs))
        self.timeline.add(sn.name, f"CRASH (height {chain.height}, {len(chain.mempool)} pending)")
        self.stats["crashes"] += 1
        self.net.crash(sn.host)
        node.crash()
        await sn.done.wait()

    async def restart(self, sn: SimNode) -> None:
        if sn.running:
            return
        await sn.done.wait()
        self.net.restart(sn.host)
        self.timeline.add(sn.name, "restart")
        await self.start_node(sn)
        node = sn.node
        if node is None or sn.crash_state is None or not sn.running:
            return
        tip, pending = sn.crash_state
        sn.crash_state = None
        chain = node.chain
        if chain.main[-1] != tip:
            self.violation(f"{sn.name} restarted at tip {short(chain.main[-1])}, crashed at {short(tip)}")
        if frozenset(chain.mempool.txs) != pending:
            self.violation(
                f"{sn.name} restarted with {len(chain.mempool)} pending transactions, crashed with {len(pending)}"
            )

    # ------------------------------------------------------------- events

    async def apply(self, ev: Event) -> None:
        kind = ev.kind
        sn = self.nodes[ev.node] if ev.node >= 0 else None
        if kind == "mine":
            assert sn is not None
            if self._usable(sn, "mine"):
                assert sn.node is not None
                self.timeline.add(sn.name, f"mine (reward to w{ev.wallet})")
                sn.node.spawn(sn.node.miner.mine_one, self.keys[ev.wallet].address)
        elif kind == "send":
            assert sn is not None
            if self._usable(sn, f"send from w{ev.wallet}"):
                assert sn.node is not None
                sn.node.spawn(self._send, sn, sn.node, ev)
        elif kind == "partition":
            self.stats["partitions"] += 1
            groups = [[self.nodes[i].host for i in g] for g in ev.groups]
            text = " | ".join(" ".join(self.nodes[i].name for i in g) for g in ev.groups)
            self.timeline.add("net", f"partition {text}")
            self.net.heal()
            self.net.partition(*groups)
        elif kind == "cut":
            assert sn is not None
            other = self.nodes[ev.other]
            self.timeline.add("net", f"cut {sn.name}-{other.name}")
            self.net.cut(sn.host, other.host)
        elif kind == "heal":
            self.timeline.add("net", "heal")
            self.net.heal()
        elif kind == "crash":
            assert sn is not None
            await self.crash(sn, ev.steps)
        elif kind == "restart":
            assert sn is not None
            await self.restart(sn)
        elif kind == "slow":
            assert sn is not None
            self.net.set_slow(sn.host, ev.extra)
            self.timeline.add(
                "net", f"{sn.name} links +{ev.extra:.2f}s" if ev.extra else f"{sn.name} links normal"
            )

    def _usable(self, sn: SimNode, what: str) -> bool:
        if sn.node is None or not sn.running:
            self.timeline.add(sn.name, f"down: no {what}", major=False)
            return False
        return True

    async def _send(self, sn: SimNode, node: Node, ev: Event) -> None:
        key = self.keys[ev.wallet]
        address = key.address
        spendable, nonce = await node.owner.call(
            lambda c: (c.mempool.spendable(address, c.ledger), c.mempool.next_nonce(address, c.ledger))
        )
        if spendable <= 0:
            self.timeline.add(sn.name, f"w{ev.wallet} has nothing to send", major=False)
            return
        amount = max(1, int(spendable * ev.fraction))
        to = self.keys[ev.to_wallet].address
        tx = sign_transaction(key, self.params.network, to, amount, nonce, int(self.wall() * 1000))
        self.created[tx.txid] = tx
        self.timeline.add(
            sn.name,
            f"send w{ev.wallet} -> w{ev.to_wallet} {format_coins(amount)} (nonce {nonce}): tx {short(tx.txid)}",
        )
        try:
            await node.intake.submit_transaction(tx, None)
        except ValidationError as exc:
            self.timeline.add(sn.name, f"tx {short(tx.txid)} refused ({exc.reason})")

    # ------------------------------------------------------------- settling

    def live(self) -> list[Node]:
        return [sn.node for sn in self.nodes if sn.node is not None and sn.running]

    def converged(self) -> bool:
        nodes = self.live()
        if len(nodes) != len(self.nodes):
            return False
        if len({n.owner.snapshot.tip for n in nodes}) != 1:
            return False
        if any(c.sync is not None for n in nodes for c in n.manager.connections.values()):
            return False
        return len(self.components()) == 1

    def components(self) -> list[list[str]]:
        """Groups of node names connected by established connections."""
        seen: set[int] = set()
        groups: list[list[str]] = []
        for sn in self.nodes:
            if sn.index in seen:
                continue
            group, stack = [], [sn]
            seen.add(sn.index)
            while stack:
                cur = stack.pop()
                group.append(cur.name)
                if cur.node is None or not cur.running:
                    continue
                for peer_id in cur.node.manager.connections:
                    other = self.by_id.get(peer_id)
                    if other is not None and other.index not in seen:
                        seen.add(other.index)
                        stack.append(other)
            groups.append(sorted(group))
        return groups

    def tied(self) -> bool:
        """Connected and idle, on different tips of equal work: only a new block decides."""
        nodes = self.live()
        if len(nodes) != len(self.nodes) or len(self.components()) != 1:
            return False
        if any(c.sync is not None for n in nodes for c in n.manager.connections.values()):
            return False
        snaps = [n.owner.snapshot for n in nodes]
        return len({s.tip for s in snaps}) > 1 and len({s.work for s in snaps}) == 1

    async def settle(self, what: str) -> bool:
        self.net.heal()
        for host in list(self.net.slow):
            self.net.set_slow(host, 0.0)
        for sn in self.nodes:
            if not sn.running:
                await self.restart(sn)
        self.timeline.add("sim", f"{what}: links healed, waiting for convergence")
        start = trio.current_time()
        stable = ties = 0
        quiet = max(TIE_CHECKS, math.ceil(QUIET_HEARTBEATS * self.spec.heartbeat_interval / SETTLE_STEP))
        while trio.current_time() - start < SETTLE_LIMIT:
            await trio.sleep(SETTLE_STEP)
            stable = stable + 1 if self.converged() else 0
            if stable >= quiet:
                took = trio.current_time() - start
                self.stats["settle_time"] = max(self.stats["settle_time"], round(took, 3))
                tip = self.live()[0].owner.snapshot
                self.timeline.add(
                    "sim", f"converged after {took:.0f}s at height {tip.height} {short(tip.tip)}"
                )
                return True
            ties = ties + 1 if self.tied() else 0
            if ties >= TIE_CHECKS:
                # The rule keeps the first-seen of equal-work tips; a network stays split until
                # someone mines. Do that, as the next miner of a real network would.
                ties = 0
                self.stats["tie_breaks"] += 1
                first = self.nodes[0]
                assert first.node is not None
                self.timeline.add(first.name, "tie: equal work on different tips; mine to break it")
                await first.node.miner.mine_one(self.keys[0].address)
        tips = sorted({f"{n.owner.snapshot.height}:{short(n.owner.snapshot.tip)}" for n in self.live()})
        self.violation(
            f"{what}: no convergence within {SETTLE_LIMIT:.0f}s: tips {tips}, "
            f"components {self.components()}, down {[sn.name for sn in self.nodes if not sn.running]}"
        )
        return False

    async def drain(self) -> None:
        for _ in range(MAX_DRAIN):
            busy = [sn for sn in self.nodes if sn.node is not None and sn.node.owner.snapshot.pending]
            if not busy:
                return
            sn = busy[0]
            assert sn.node is not None
            self.timeline.add(sn.name, f"drain: mine {sn.node.owner.snapshot.pending} pending")
            self.stats["drain_blocks"] += 1
            await sn.node.miner.mine_one(self.keys[0].address)
            if not await self.settle("drain"):
                return
        left = {sn.name: sn.node.owner.snapshot.pending for sn in self.nodes if sn.node is not None}
        self.violation(f"mempools not empty after {MAX_DRAIN} drain blocks: {left}")

    # ------------------------------------------------------------- the run

    async def main(self, watchdog: Watchdog, tasks: TaskCounter) -> None:
        with trio.CancelScope() as scope:
            watchdog.arm(scope)
            try:
                async with trio.open_nursery() as nursery:
                    self.nursery = nursery
                    await self._play()
                    await self._stop_all()
            finally:
                watchdog.disarm()
        if watchdog.fired:
            self.violation(f"wall-clock budget of {WALL_BUDGET:.0f}s exceeded at {trio.current_time():.1f}s")
            return
        leftovers = tasks.leftovers("trionode.", exclude="trionode.sim.")
        if leftovers:
            self.violation(f"tasks left after every node stopped: {leftovers[:5]}")
        self._check_disk()

    async def _play(self) -> None:
        for sn in self.nodes:
            await self.start_node(sn)
        for ev in self.plan.events:
            await trio.sleep_until(ev.at)
            await self.apply(ev)
        if not await self.settle("end of schedule"):
            return
        nodes = self.live()
        problems, excused = invariants.check_mempools(
            nodes,
            self.created,
            self.accepted,
            self.timeline.names,
            None if self.spec.strict_mempools else self.turned_away,
        )
        self.stats["excused_absences"] = len(excused)
        for text in excused:
            self.timeline.add("CHECK", text, major=False)
        for text in problems:
            self.violation(text)
        await self.drain()
        for text in invariants.check_chains(nodes, self.params, self.wall(), self.timeline.names):
            self.violation(text)
        for text in invariants.check_transactions(nodes[0], self.created, self.accepted):
            self.violation(text)
        snap = nodes[0].owner.snapshot
        self.final_tip = bytes.fromhex(snap.tip)
        self.final_height = snap.height

    async def _stop_all(self) -> None:
        for sn in self.nodes:
            if sn.node is not None and sn.running:
                sn.node.stop()
        with trio.move_on_after(STOP_LIMIT) as scope:
            for sn in self.nodes:
                await sn.done.wait()
        if scope.cancelled_caught:
            stuck = [sn.name for sn in self.nodes if sn.running]
            self.violation(f"nodes still running {STOP_LIMIT:.0f}s after stop: {stuck}")
            assert self.nursery is not None
            self.nursery.cancel_scope.cancel()

    def _check_disk(self) -> None:
        for sn in self.nodes:
            problem = invariants.check_data_dir(sn.data_dir, self.params, self.final_tip, self.wall())
            if problem:
                self.violation(f"{sn.name} data dir: {problem}")


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
            sim.violations.append(f"the simulation raised: {_describe_exception(exc)}")
        wall_time = time.perf_counter() - started
        cpu_time = time.process_time() - cpu_started
    return Result(
        spec=spec,
        plan=plan,
        timeline=sim.timeline,
        violations=sim.violations,
        stats=sim.stats,
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


def _fields(event: dict[str, Any]) -> str:
    skip = {"event", "level", "timestamp", "node_id"}
    return " ".join(f"{k}={v}" for k, v in event.items() if k not in skip)


def _describe_exception(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe_exception(e) for e in exc.exceptions)
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
