"""Addresses we may dial, and when: configured seeds, the saved peer table, discovered ones.

Configured seeds are redialled forever with exponential backoff and jitter while
disconnected. Discovered addresses stay candidates until a connection to one succeeds (then
the peer table holds it) and are dropped after ``MAX_DISCOVERED_FAILURES`` failed dials.
An address that turned out to be ourselves is never dialled again.

What peers tell us is bounded (protocol.md 8.4): a discovered address counts against the
peer that told us (its ban key) and against its host, so a flood of one host's ports, or of
one peer's inventions, can neither fill the list nor turn the node into a port scanner.
"""

import random
from collections import Counter
from dataclasses import dataclass
from typing import Final

from trionode.wire.addresses import host_of

# Backoff between dials of one address: 1 s doubling to at most 60 s, each +-25% jitter
# so a restarted network does not redial in lockstep.
BACKOFF_BASE: Final = 1.0
BACKOFF_MAX: Final = 60.0
JITTER: Final = 0.25
MAX_DISCOVERED_FAILURES: Final = 3
# Bounded candidate list; the oldest discovered addresses go first.
MAX_CANDIDATES: Final = 5_000
# Discovered candidates held at once from one source (a fifth of the list): one full
# PeerDiscovery answer, so an honest peer is never cut short, while a peer trickling
# addresses in for hours cannot push everyone else's out.
MAX_DISCOVERED_PER_SOURCE: Final = 1_000
# Discovered candidates held at once on one host: a few nodes may share a machine (a devnet,
# a small operator), but 1,000 ports of one host are a port scan we would run for someone.
MAX_DISCOVERED_PER_HOST: Final = 8

PERSISTENT_SOURCES: Final = frozenset({"config", "table", "cli"})
# Sources the operator chose: dialled beyond the outbound target and without the dial rate
# limit of what others told us.
OPERATOR_SOURCES: Final = frozenset({"config", "cli"})


@dataclass
class Candidate:
    address: str
    source: str  # "config" | "table" | "cli" | "discovered"
    node_id: str | None = None
    failures: int = 0
    next_try: float = 0.0  # trio time
    connected: bool = False
    dialling: bool = False
    held: bool = False  # the operator disconnected it: not dialled until `connect` or a restart
    learnt_from: str | None = None  # a discovered address: who told us (its ban key)

    @property
    def host(self) -> str:
        return host_of(self.address)


class Candidates:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.by_address: dict[str, Candidate] = {}
        self.never: set[str] = set()
        # Discovered candidates per host and per source, kept in step with by_address.
        self.per_host: Counter[str] = Counter()
        self.per_source: Counter[str] = Counter()

    def add(
        self,
        address: str,
        source: str,
        node_id: str | None = None,
        now: float = 0.0,
        learnt_from: str | None = None,
    ) -> bool:
        """Add or upgrade a candidate; returns True if it is new."""
        if address in self.never:
            return False
        existing = self.by_address.get(address)
        if existing is not None:
            if source in PERSISTENT_SOURCES and existing.source not in PERSISTENT_SOURCES:
                self._uncount(existing)
                existing.source = source
            elif source in OPERATOR_SOURCES and existing.source == "table":
                # peers.json loads before the config: a configured peer stays one, redialled
                # for good, not a table entry that a full outbound quota leaves undialled.
                existing.source = source
            existing.node_id = existing.node_id or node_id
            return False
        if source == "discovered" and (
            self.per_host[host_of(address)] >= MAX_DISCOVERED_PER_HOST
            or (learnt_from is not None and self.per_source[learnt_from] >= MAX_DISCOVERED_PER_SOURCE)
        ):
            return False
        if len(self.by_address) >= MAX_CANDIDATES:
            for cand in self.by_address.values():
                if cand.source == "discovered" and not cand.connected and not cand.dialling:
                    self._delete(cand.address)
                    break
            else:
                return False
        cand = Candidate(address, source, node_id, next_try=now)
        if source == "discovered":
            cand.learnt_from = learnt_from
            self.per_host[cand.host] += 1
            if learnt_from is not None:
                self.per_source[learnt_from] += 1
        self.by_address[address] = cand
        return True

    def _uncount(self, cand: Candidate) -> None:
        if cand.source != "discovered":
            return
        for counter, key in ((self.per_host, cand.host), (self.per_source, cand.learnt_from)):
            if key is not None:
                counter[key] -= 1
                if counter[key] <= 0:
                    del counter[key]

    def _delete(self, address: str) -> None:
        cand = self.by_address.pop(address, None)
        if cand is not None:
            self._uncount(cand)

    def due(self, now: float) -> list[Candidate]:
        """Candidates to dial now, persistent ones first, then by fewest failures."""
        ready = [
            c
            for c in self.by_address.values()
            if not c.connected and not c.dialling and not c.held and c.next_try <= now
        ]
        ready.sort(key=lambda c: (c.source not in PERSISTENT_SOURCES, c.failures, c.address))
        return ready

    def next_due(self) -> float | None:
        times = [
            c.next_try for c in self.by_address.values() if not c.connected and not c.dialling and not c.held
        ]
        return min(times) if times else None

    def failed(self, address: str, now: float) -> None:
        cand = self.by_address.get(address)
        if cand is None:
            return
        cand.dialling = False
        cand.failures += 1
        if cand.source == "discovered" and cand.failures >= MAX_DISCOVERED_FAILURES:
            self._delete(address)
            return
        # The exponent is capped: a seed down for days fails thousands of times, and a float
        # times 2**1024 raises OverflowError (which would end the dialer, and the node).
        delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** min(cand.failures - 1, 32))
        cand.next_try = now + delay * self._rng.uniform(1 - JITTER, 1 + JITTER)

    def connected(self, address: str, node_id: str) -> None:
        cand = self.by_address.get(address)
        if cand is not None:
            cand.dialling = False
            cand.connected = True
            cand.failures = 0
            cand.node_id = node_id

    def disconnected(self, address: str, now: float) -> None:
        cand = self.by_address.get(address)
        if cand is not None:
            cand.connected = False
            cand.dialling = False
            cand.next_try = now + BACKOFF_BASE * self._rng.uniform(1 - JITTER, 1 + JITTER)

    def drop_unless_configured(self, address: str, now: float) -> None:
        """A peer that can never be ours (another network, a protocol breaker, a ban): forget
        it unless it is configured, which is only backed off (its failures are logged)."""
        cand = self.by_address.get(address)
        if cand is not None and cand.source == "config":
            self.failed(address, now)
        elif cand is not None:
            self._delete(address)

    def hold(self, address: str) -> None:
        """The operator dropped this peer: do not redial it until told to (``connect``)."""
        cand = self.by_address.get(address)
        if cand is not None:
            cand.held = True

    def forget_table_entry(self, address: str) -> None:
        """A peer left the peer table (stale): stop dialling it, unless it is configured."""
        cand = self.by_address.get(address)
        if cand is not None and cand.source == "table" and not cand.connected and not cand.dialling:
            self._delete(address)

    def forbid(self, address: str) -> None:
        """Ourselves: never dial this address again."""
        self.never.add(address)
        self._delete(address)
