"""A scenario, generated from its seed: the nodes, who dials whom, the links, the events.

Everything here is a pure function of the ``Spec``: the same spec gives the same plan, before
anything runs. Events that depend on state (how much a wallet can spend) carry a seeded
fraction and are resolved against the node's view when they happen, which is deterministic
too.
"""

import random
from dataclasses import dataclass, field
from typing import Final

from trionode.sim.link import LinkProfile

# Quiet time after start, for the first connections.
WARMUP: Final = 15.0
# Blocks mined at the start to wallets, so transactions have coins to move.
FUNDING_BLOCKS: Final = 4
# A crashed node comes back after this long (uniform), unless the schedule ends first.
DOWNTIME: Final = (5.0, 90.0)
# A slowed host stays slow this long (uniform), with this much extra one-way latency.
SLOW_FOR: Final = (10.0, 60.0)
SLOW_BY: Final = (0.5, 4.0)
TOPOLOGIES: Final = ("random", "line", "ring", "star", "clusters")
# A heal ends one fault in place (a partition or a cut) with this probability, else all.
PARTIAL_HEAL: Final = 0.6
# Half the crashes ride on a block: the plan mines one somewhere, and the crash lands a few of
# the node's task steps after its next block event (accepting, relaying, syncing, reorganising
# it); the others land a few steps into whatever the node does next after the event's time.
CRASH_ON_BLOCK: Final = 0.5
# Upper bounds of the seeded step counts: a busy node of 10 takes about 10 work steps a
# second, tens for one block (so a crash lands within seconds of its trigger).
CRASH_STEPS_BLOCK: Final = 40
CRASH_STEPS: Final = 60


@dataclass(frozen=True)
class Spec:
    seed: int
    nodes: int = 10
    events: int = 40
    wallets: int = 6
    partitions: bool = True
    crashes: bool = True
    delays: bool = True
    mean_gap: float = 6.0  # seconds between events, on average
    heartbeat_interval: float = 10.0
    sync_interval: float = 30.0
    # 0: room for every node at every node. A limit (plus room for the nodes configured to
    # dial each node) exercises full nodes: a refused node must find room elsewhere from the
    # addresses its refusal carries (protocol.md 8.4).
    max_peers: int = 0
    outbound_target: int = 3
    difficulty: int = 1
    # Count a transaction missing from a mempool as a violation even when that node refused
    # it in a documented race (nonce_gap, insufficient_balance: see invariants.RACES). Strict
    # by default because it costs no false alarm: the relaxed check (``--relaxed-mempools``)
    # excused no absence in sweeps of hundreds of seeds, so any absence now is news.
    strict_mempools: bool = True


@dataclass(frozen=True)
class Event:
    at: float
    kind: str  # mine | send | partition | cut | heal | crash | restart | slow
    node: int = -1
    other: int = -1
    wallet: int = -1
    to_wallet: int = -1
    fraction: float = 0.0  # send: the share of the spendable balance (above 1: an overspend)
    groups: tuple[tuple[int, ...], ...] = ()
    steps: int = 0  # crash: the node's task steps to let go by after the trigger
    trigger: str = ""  # crash: "" counts steps from the event's time, "block" from the next block event
    fault: int = -1  # partition, cut: its number; heal: the one to end (-1: all)
    extra: float = 0.0  # slow: added one-way latency (0 ends it); crash: the downtime


@dataclass
class Plan:
    spec: Spec
    topology: str
    discover: bool
    peers: list[list[int]]  # configured peers of each node
    events: list[Event] = field(default_factory=list)

    def profile_for(self, a: str, b: str) -> LinkProfile:
        """A link's character from the seed and the two hosts (independent of dial order)."""
        if not self.spec.delays:
            return LinkProfile()
        rng = random.Random(f"{self.spec.seed}:profile:{a}:{b}")
        latency = rng.choice((0.002, 0.01, 0.03, 0.08, 0.15)) * rng.uniform(0.8, 1.2)
        return LinkProfile(
            latency=latency,
            jitter=latency * rng.uniform(0.0, 0.3),
            bandwidth=rng.choice((1e6, 10e6, 100e6)) / 8,
            loss=rng.choice((0.0, 0.0, 0.001, 0.01, 0.03)),
            rto=max(0.2, 3 * latency),
        )


def host_of(index: int) -> str:
    return f"10.0.{index // 250}.{index % 250 + 1}"


def name_of(index: int) -> str:
    return f"n{index + 1:02d}"


def make_plan(spec: Spec) -> Plan:
    rng = random.Random(f"{spec.seed}:plan")
    n = spec.nodes
    topology = rng.choice(TOPOLOGIES) if n > 2 else "line"
    peers = _topology(topology, n, rng)
    discover = rng.random() < 0.75
    plan = Plan(spec, topology, discover, peers)
    plan.events = _events(spec, rng)
    return plan


def _topology(kind: str, n: int, rng: random.Random) -> list[list[int]]:
    """Configured peers per node; the graph of them is always connected."""
    peers: list[list[int]] = [[] for _ in range(n)]
    if kind == "line":
        for i in range(1, n):
            peers[i].append(i - 1)
    elif kind == "ring":
        for i in range(n):
            peers[i].append((i + 1) % n)
    elif kind == "star":
        for i in range(1, n):
            peers[i].append(0)
    elif kind == "clusters":
        half = n // 2
        for i in range(1, n):
            base = 0 if i < half else half
            if i != base:
                peers[i].append(rng.randrange(base, i))
        if half > 0:
            peers[half].append(rng.randrange(half))  # the one bridge
    else:
        for i in range(1, n):
            for j in rng.sample(range(i), min(i, rng.choice((1, 1, 2, 3)))):
                peers[i].append(j)
    return [sorted(set(p)) for p in peers]


def _events(spec: Spec, rng: random.Random) -> list[Event]:
    n = spec.nodes
    events: list[Event] = []
    at = WARMUP
    down_until = [0.0] * n
    faults: list[int] = []  # partitions and cuts in place
    made = 0
    weights = {"mine": 30, "send": 40}
    if spec.partitions:
        weights |= {"partition": 6, "cut": 5, "heal": 8}
    if spec.crashes:
        weights |= {"crash": 6}
    if spec.delays:
        weights |= {"slow": 5}
    kinds = list(weights)
    for i in range(spec.events):
        at += rng.expovariate(1.0 / spec.mean_gap)
        up = [j for j in range(n) if down_until[j] <= at]
        kind = "mine" if i < FUNDING_BLOCKS else rng.choices(kinds, [weights[k] for k in kinds])[0]
        if kind == "crash" and len(up) <= max(1, n // 2):
            kind = "mine"
        node = rng.choice(up) if up else 0
        if kind == "mine":
            wallet = i % spec.wallets if i < FUNDING_BLOCKS else rng.randrange(spec.wallets)
            events.append(Event(at, "mine", node=node, wallet=wallet))
        elif kind == "send":
            src = rng.randrange(spec.wallets)
            dst = rng.choice([w for w in range(spec.wallets) if w != src] or [src])
            # Mostly affordable amounts; about one in ten asks for more than it has.
            events.append(
                Event(at, "send", node=node, wallet=src, to_wallet=dst, fraction=rng.uniform(0.05, 1.1))
            )
        elif kind == "partition":
            # On top of the faults in place: partitions and cuts compose until healed.
            order = list(range(n))
            rng.shuffle(order)
            parts = rng.choice((2, 2, 3)) if n >= 3 else 2
            cuts = sorted(rng.sample(range(1, n), min(parts - 1, n - 1)))
            groups = [order[a:b] for a, b in zip([0, *cuts], [*cuts, n], strict=True)]
            made += 1
            faults.append(made)
            events.append(Event(at, "partition", groups=tuple(tuple(sorted(g)) for g in groups), fault=made))
        elif kind == "cut":
            a, b = rng.sample(range(n), 2) if n >= 2 else (0, 0)
            made += 1
            faults.append(made)
            events.append(Event(at, "cut", node=a, other=b, fault=made))
        elif kind == "heal":
            if faults and rng.random() < PARTIAL_HEAL:
                events.append(Event(at, "heal", fault=faults.pop(rng.randrange(len(faults)))))
            else:
                faults.clear()
                events.append(Event(at, "heal"))
        elif kind == "crash":
            downtime = rng.uniform(*DOWNTIME)
            down_until[node] = at + downtime
            if rng.random() < CRASH_ON_BLOCK:
                miner = rng.choice(up)  # the crashing node itself, or one whose block reaches it
                events.append(Event(at, "mine", node=miner, wallet=rng.randrange(spec.wallets)))
                trigger, steps = "block", rng.randrange(CRASH_STEPS_BLOCK)
            else:
                trigger, steps = "", rng.randrange(CRASH_STEPS)
            events.append(Event(at, "crash", node=node, steps=steps, trigger=trigger, extra=downtime))
            events.append(Event(at + downtime, "restart", node=node))
        elif kind == "slow":
            slow_by, slow_for = rng.uniform(*SLOW_BY), rng.uniform(*SLOW_FOR)
            events.append(Event(at, "slow", node=node, extra=slow_by))
            events.append(Event(at + slow_for, "slow", node=node, extra=0.0))
    events.sort(key=lambda e: e.at)  # stable: equal times keep their generation order
    return events


def describe_spec(plan: Plan) -> str:
    s = plan.spec
    faults = [
        f for f, on in (("partitions", s.partitions), ("crashes", s.crashes), ("delays", s.delays)) if on
    ]
    return (
        f"seed {s.seed}: {s.nodes} nodes, {s.events} events, topology {plan.topology}"
        f"{' + discovery' if plan.discover else ''}, faults: {', '.join(faults) or 'none'}"
    )
