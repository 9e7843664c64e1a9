"""The simulated nodes and their lives: each one a real ``Node`` on its own data dir, started,
crashed at a random checkpoint, and restarted on the same data dir.

Everything a node gets from its environment is made here, deterministic from the seed: its
config from the plan, its transport on the simulated network, its random source (per host
and incarnation), and its wall clock (``wall``, a function of the mock clock).

A crash (``Node.crash``) cancels the node at a random checkpoint (the event's time plus a
seeded number of scheduler passes) without the shutdown flush, with every connection reset;
the node restarts later on the same data dir, and must come back with exactly the tip and
mempool it had committed.
"""

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import trio

from trionode.chain.params import ChainParams
from trionode.node.app import Environment, Node, StartupError
from trionode.node.config import NodeConfig
from trionode.node.logging import make_capturing_logger
from trionode.node.workers import InlineSignatureChecker, InlineSolver
from trionode.sim.network import SimNetwork
from trionode.sim.plan import Plan, host_of, name_of
from trionode.sim.record import Record, describe_exception
from trionode.sim.timeline import short

# The simulated wall clock starts here (2027-01-15), whatever the real date.
BASE_TIME: Final = 1_800_000_000.0


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


class _Sink(list[dict[str, Any]]):
    """The capturing logger's sink for one node: each event goes straight to the record."""

    def __init__(self, record: Record, name: str) -> None:
        super().__init__()
        self._record = record
        self._name = name

    def append(self, event: dict[str, Any]) -> None:
        self._record.on_log(self._name, event)


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
        sink = _Sink(self.record, sn.name)
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

    async def _run_node(self, sn: SimNode, node: Node, *, task_status: trio.TaskStatus[Any]) -> None:
        try:
            await node.run(task_status=task_status)
        except Exception as exc:
            self.record.violation(f"{sn.name} died: {describe_exception(exc)}")
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
        self.record.timeline.add(sn.name, f"CRASH (height {chain.height}, {len(chain.mempool)} pending)")
        self.record.stats["crashes"] += 1
        self.net.crash(sn.host)
        node.crash()
        await sn.done.wait()

    async def restart(self, sn: SimNode) -> None:
        """Start a crashed node again on its data dir; it must hold what it had committed."""
        if sn.running:
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
        if chain.main[-1] != tip:
            self.record.violation(
                f"{sn.name} restarted at tip {short(chain.main[-1])}, crashed at {short(tip)}"
            )
        if frozenset(chain.mempool.txs) != pending:
            self.record.violation(
                f"{sn.name} restarted with {len(chain.mempool)} pending transactions, crashed with {len(pending)}"
            )
