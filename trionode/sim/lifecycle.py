"""The simulated nodes and their lives: each one a real ``Node`` on its own data dir, started,
crashed in the middle of its work, and restarted on the same data dir.

Everything a node gets from its environment is made here, deterministic from the seed: its
config from the plan, its transport on the simulated network, its random source (per host
and incarnation), and its wall clock (``wall``, a function of the mock clock).

A crash (``Node.crash``) cancels the node without the shutdown flush, with every connection
reset. It lands a seeded number of the node's own task steps after its trigger: the crash
event's time, or the node's next block event (mined, accepted, reorganised) when the plan
puts the crash on a block's way through the network. A trio instrument counts the steps (of
the node's connections, its chain owner and the tasks it spawned, not the wake-ups of its
timer loops) and crashes the node just before one, so the node is cut off in the middle of
what it was doing (relaying, syncing, reorganising, answering), never while idle: each task
stops at its next checkpoint, as under ``kill -9``. The node restarts later on the same data
dir, and must come back with exactly the tip and mempool it had when it died (all it had was
committed: the chain owner commits each batch before any other task runs).
"""

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import trio
from trio.lowlevel import Task

from trionode.chain.params import ChainParams
from trionode.node.app import Environment, Node, StartupError
from trionode.node.config import NodeConfig
from trionode.node.logging import make_capturing_logger
from trionode.node.workers import InlineSignatureChecker, InlineSolver
from trionode.sim.network import SimNetwork
from trionode.sim.plan import Plan, host_of, name_of
from trionode.sim.record import Record, describe_exception
from trionode.sim.tasks import baseline, short_name
from trionode.sim.timeline import short

# The simulated wall clock starts here (2027-01-15), whatever the real date.
BASE_TIME: Final = 1_800_000_000.0
# A crash waiting for a block event that has not come by then counts its steps from then on
# (the block may never reach the node: a partition); one still pending this long after it
# was armed counts the timer loops' steps too (an isolated node does little else).
TRIGGER_WAIT: Final = 5.0
PATIENCE: Final = 20.0
# Log events that start the count of a crash triggered by a block.
BLOCK_EVENTS: Final = frozenset({"block_mined", "block_accepted", "chain_reorganized"})


def wall() -> float:
    return BASE_TIME + trio.current_time()


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
    task: Task | None = None  # the task running the node (its tree is the node's)
    loops: frozenset[str] = frozenset()  # its root nursery's tasks when it started
    timers: frozenset[str] = frozenset()  # those of them that wake on a timer, not on work


@dataclass
class PendingCrash:
    sn: SimNode
    steps: int  # the node's task steps still to let go by
    waiting: bool  # for its trigger (a block event): no step counts yet
    any_step: bool = False  # out of patience: a timer loop's step counts too


class _Sink(list[dict[str, Any]]):
    """The capturing logger's sink for one node: each event goes straight to the record (and
    may set off a crash waiting for it)."""

    def __init__(self, fleet: "Fleet", sn: SimNode) -> None:
        super().__init__()
        self._fleet = fleet
        self._sn = sn

    def append(self, event: dict[str, Any]) -> None:
        self._fleet.record.on_log(self._sn.name, event)
        if event["event"] in BLOCK_EVENTS:
            self._fleet.triggered(self._sn)


class _StepCounter(trio.abc.Instrument):
    """Counts the steps of nodes that have a crash pending, and crashes them (installed only
    while a crash is pending: the hook runs at every task step of the run)."""

    def __init__(self, fleet: "Fleet") -> None:
        self.fleet = fleet

    def before_task_step(self, task: Task) -> None:
        try:
            self.fleet.step(task)
        except Exception as exc:  # an instrument that raises is silently disabled by trio
            self.fleet.record.violation(f"the crash instrument raised: {describe_exception(exc)}")


class Fleet:
    """Every node of the scenario, and the nursery they run in (set by the scenario's run)."""

    def __init__(self, plan: Plan, params: ChainParams, net: SimNetwork, record: Record, root: Path) -> None:
        self.plan = plan
        self.spec = plan.spec
        self.params = params
        self.net = net
        self.record = record
        self.nodes = [self._sim_node(i, root) for i in range(self.spec.nodes)]
        self.by_id: dict[str, SimNode] = {}
        self.nursery: trio.Nursery | None = None
        self.pending: dict[Task, PendingCrash] = {}  # by the task running the node
        self._counter = _StepCounter(self)
        self._counting = False

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

    def live(self) -> list[Node]:
        return [sn.node for sn in self.nodes if sn.node is not None and sn.running]

    def _new_node(self, sn: SimNode) -> Node | None:
        sn.incarnation += 1
        rng = random.Random(f"{self.spec.seed}:{sn.host}:{sn.incarnation}")
        env = Environment(
            transport=self.net.transport(sn.host),
            wall=wall,
            rng=rng,
            entropy=rng.randbytes,  # deterministic from the seed, like everything else here
            solver=InlineSolver(),
            signatures=InlineSignatureChecker(),
            control=False,
            signals=False,
        )
        sink = _Sink(self, sn)
        try:
            node = Node(sn.config, env, make_capturing_logger(sink, "info", clock=wall))
        except StartupError as exc:
            self.record.violation(f"{sn.name} cannot start: {exc}")
            return None
        self.by_id[node.node_id] = sn
        self.record.timeline.names[node.node_id] = sn.name
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
        sn.loops = baseline(node)
        owner = node.owner.run  # a loop, but one that wakes only when asked to work
        sn.timers = sn.loops - {f"{owner.__module__}.{owner.__qualname__}"}

    async def _run_node(self, sn: SimNode, node: Node, *, task_status: trio.TaskStatus[Any]) -> None:
        sn.task = trio.lowlevel.current_task()
        try:
            await node.run(task_status=task_status)
        except Exception as exc:
            self.record.violation(f"{sn.name} died: {describe_exception(exc)}")
            try:
                task_status.started(None)
            except RuntimeError:
                pass  # it had started
        finally:
            if node.crashed:  # what it had when it died is all it had committed
                chain = node.chain
                sn.crash_state = (chain.main[-1], frozenset(chain.mempool.txs))
            sn.running = False
            sn.done.set()

    # ------------------------------------------------------------- crashes

    def arm_crash(self, sn: SimNode, steps: int, trigger: str) -> None:
        """Crash ``sn`` after ``steps`` steps of its tasks, counted from now or (``trigger``
        "block") from its next block event."""
        if sn.node is None or not sn.running or sn.task is None or sn.task in self.pending:
            self.record.timeline.add(sn.name, "down or crashing already: no crash", major=False)
            return
        pending = PendingCrash(sn, steps, waiting=trigger == "block")
        self.pending[sn.task] = pending
        after = "its next block event" if pending.waiting else "now"
        self.record.timeline.add(sn.name, f"crash due {steps} task steps after {after}", major=False)
        if not self._counting:
            trio.lowlevel.add_instrument(self._counter)
            self._counting = True
        assert self.nursery is not None
        self.nursery.start_soon(self._lose_patience, pending)

    async def _lose_patience(self, pending: PendingCrash) -> None:
        await trio.sleep(TRIGGER_WAIT)
        pending.waiting = False
        await trio.sleep(PATIENCE - TRIGGER_WAIT)
        pending.any_step = True

    def triggered(self, sn: SimNode) -> None:
        """A block event of ``sn``: a crash waiting for one starts counting."""
        pending = self.pending.get(sn.task) if sn.task is not None else None
        if pending is not None:
            pending.waiting = False

    def down(self, sn: SimNode) -> bool:
        """Crashed, or on its way down (a crashed node's tasks may take a few steps to end)."""
        return not sn.running or (sn.node is not None and sn.node.crashed)

    def disarm(self, sn: SimNode) -> bool:
        """Call off ``sn``'s pending crash; False if none was pending."""
        if sn.task is None or self.pending.pop(sn.task, None) is None:
            return False
        self.record.timeline.add(sn.name, "the crash never came due: called off")
        self.record.stats["crashes_called_off"] += 1
        return True

    def step(self, task: Task) -> None:
        """Before each task step while a crash is pending: is it work of that node's?"""
        if not self.pending:
            trio.lowlevel.remove_instrument(self._counter)  # (safe: trio calls a copy of the list)
            self._counting = False
            return
        owner: Task | None = task
        while owner is not None and owner not in self.pending:
            nursery = owner.parent_nursery
            owner = nursery.parent_task if nursery is not None else None
        if owner is None:
            return
        pending = self.pending[owner]
        if pending.waiting or (task.name in pending.sn.timers and not pending.any_step):
            return  # a timer loop waking up is the end of idleness, not work under way
        if pending.steps > 0:
            pending.steps -= 1
            return
        del self.pending[owner]
        self._crash_now(pending.sn, task)

    def _crash_now(self, sn: SimNode, task: Task) -> None:
        """Kill the node now, before ``task`` (one of its own) takes its next step."""
        node = sn.node
        if node is None or not sn.running or node.crashed or node.stopping:
            return
        chain = node.chain
        self.record.timeline.add(
            sn.name,
            f"CRASH (height {chain.height}, {len(chain.mempool)} pending) before a step of "
            f"{short_name(task)}",
        )
        self.record.stats["crashes"] += 1
        self.record.held.pop(sn.name, None)
        self.net.crash(sn.host)
        node.crash()

    async def restart(self, sn: SimNode) -> None:
        """Start a crashed node again on its data dir; it must hold what it had committed. A
        crash still pending is called off instead (the node never went down)."""
        if self.disarm(sn):
            return
        if sn.running and (sn.node is None or not sn.node.crashed):
            return
        await sn.done.wait()
        self.net.restart(sn.host)
        self.record.timeline.add(sn.name, "restart")
        await self.start_node(sn)
        node = sn.node
        if node is None or sn.crash_state is None or not sn.running:
            return
        tip, pending = sn.crash_state
        sn.crash_state = None
        chain = node.chain
        self.record.held[sn.name] = set(chain.mempool.txs)  # what it holds again
        if chain.main[-1] != tip:
            self.record.violation(
                f"{sn.name} restarted at tip {short(chain.main[-1])}, crashed at {short(tip)}"
            )
        if frozenset(chain.mempool.txs) != pending:
            self.record.violation(
                f"{sn.name} restarted with {len(chain.mempool)} pending transactions, crashed with {len(pending)}"
            )
