"""Running the network to quiescence, and draining the mempools into blocks.

The invariants only mean something once the network is quiet, and the nodes cannot say when
that is: ``Settler.settle`` heals every link, restarts crashed nodes, and lets simulated time
pass until all nodes are connected (one component), agree on the tip and have no sync in
flight, breaking ties of equal work by mining; ``Settler.drain`` mines the pending
transactions until no mempool holds one, settling after each block.
"""

import math
from collections.abc import Sequence
from typing import Final

import trio

from trionode.chain.keys import KeyPair
from trionode.sim.lifecycle import Fleet
from trionode.sim.plan import Spec
from trionode.sim.record import Record
from trionode.sim.timeline import short

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


class Settler:
    def __init__(self, fleet: Fleet, record: Record, spec: Spec, keys: Sequence[KeyPair]) -> None:
        self.fleet = fleet
        self.net = fleet.net
        self.record = record
        self.timeline = record.timeline
        self.stats = record.stats
        self.spec = spec
        self.keys = keys  # the first wallet gets the tie-breaking and draining blocks

    def converged(self) -> bool:
        nodes = self.fleet.live()
        if len(nodes) != len(self.fleet.nodes):
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
        for sn in self.fleet.nodes:
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
                    other = self.fleet.by_id.get(peer_id)
                    if other is not None and other.index not in seen:
                        seen.add(other.index)
                        stack.append(other)
            groups.append(sorted(group))
        return groups

    def tied(self) -> bool:
        """Connected and idle, on different tips of equal work: only a new block decides."""
        nodes = self.fleet.live()
        if len(nodes) != len(self.fleet.nodes) or len(self.components()) != 1:
            return False
        if any(c.sync is not None for n in nodes for c in n.manager.connections.values()):
            return False
        snaps = [n.owner.snapshot for n in nodes]
        return len({s.tip for s in snaps}) > 1 and len({s.work for s in snaps}) == 1

    async def settle(self, what: str) -> bool:
        self.net.heal()
        for host in list(self.net.slow):
            self.net.set_slow(host, 0.0)
        for sn in self.fleet.nodes:
            self.fleet.disarm(sn)  # the schedule is over: so are its crashes
            if self.fleet.down(sn):
                await self.fleet.restart(sn)
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
                tip = self.fleet.live()[0].owner.snapshot
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
                first = self.fleet.nodes[0]
                assert first.node is not None
                self.timeline.add(first.name, "tie: equal work on different tips; mine to break it")
                await first.node.miner.mine_one(self.keys[0].address)
        tips = sorted({f"{n.owner.snapshot.height}:{short(n.owner.snapshot.tip)}" for n in self.fleet.live()})
        self.record.violation(
            f"{what}: no convergence within {SETTLE_LIMIT:.0f}s: tips {tips}, "
            f"components {self.components()}, down {[sn.name for sn in self.fleet.nodes if not sn.running]}"
        )
        return False

    async def drain(self) -> bool:
        """Mine until no mempool holds a transaction; True if that took blocks and the network
        settled on them (False: nothing to drain, or a violation)."""
        nodes = self.fleet.nodes
        for mined in range(MAX_DRAIN):
            busy = [sn for sn in nodes if sn.node is not None and sn.node.owner.snapshot.pending]
            if not busy:
                return mined > 0
            sn = busy[0]
            assert sn.node is not None
            self.timeline.add(sn.name, f"drain: mine {sn.node.owner.snapshot.pending} pending")
            self.stats["drain_blocks"] += 1
            await sn.node.miner.mine_one(self.keys[0].address)
            if not await self.settle("drain"):
                return False
        left = {sn.name: sn.node.owner.snapshot.pending for sn in nodes if sn.node is not None}
        self.record.violation(f"mempools not empty after {MAX_DRAIN} drain blocks: {left}")
        return False
