"""Addresses we may dial, and when: configured seeds, the saved peer table, discovered ones.

Configured seeds are redialled forever with exponential backoff and jitter while
disconnected. Discovered addresses stay candidates until a connection to one succeeds (then
the peer table holds it) and are dropped after ``MAX_DISCOVERED_FAILURES`` failed dials.
An address that turned out to be ourselves is never dialled again.
"""

import random
from dataclasses import dataclass
from typing import Final

# Backoff between dials of one address: 1 s doubling to at most 60 s, each +-25% jitter
# so a restarted network does not redial in lockstep.
BACKOFF_BASE: Final = 1.0
BACKOFF_MAX: Final = 60.0
JITTER: Final = 0.25
MAX_DISCOVERED_FAILURES: Final = 3
# Bounded candidate list; the oldest discovered addresses go first.
MAX_CANDIDATES: Final = 5_000

PERSISTENT_SOURCES: Final = frozenset({"config", "table", "cli"})


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


class Candidates:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.by_address: dict[str, Candidate] = {}
        self.never: set[str] = set()

    def add(self, address: str, source: str, node_id: str | None = None, now: float = 0.0) -> bool:
        """Add or upgrade a candidate; returns True if it is new."""
        if address in self.never:
            return False
        existing = self.by_address.get(address)
        if existing is not None:
            if source == "cli":
                existing.held = False
            if source in PERSISTENT_SOURCES and existing.source not in PERSISTENT_SOURCES:
                existing.source = source
            elif source in ("config", "cli") and existing.source == "table":
                # peers.json loads before the config: a configured peer stays one, redialled
                # for good, not a table entry that a full outbound quota leaves undialled.
                existing.source = source
            existing.node_id = existing.node_id or node_id
            return False
        if len(self.by_address) >= MAX_CANDIDATES:
            for addr, cand in self.by_address.items():
                if cand.source == "discovered" and not cand.connected and not cand.dialling:
                    del self.by_address[addr]
                    break
            else:
                return False
        self.by_address[address] = Candidate(address, source, node_id, next_try=now)
        return True

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
            del self.by_address[address]
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
        """A peer that can never be ours (another network): forget it unless it is configured."""
        cand = self.by_address.get(address)
        if cand is not None and cand.source == "config":
            self.failed(address, now)
        elif cand is not None:
            del self.by_address[address]

    def hold(self, address: str) -> None:
        """The operator dropped this peer: do not redial it until told to (``connect``)."""
        cand = self.by_address.get(address)
        if cand is not None:
            cand.held = True

    def forget_table_entry(self, address: str) -> None:
        """A peer left the peer table (stale): stop dialling it, unless it is configured."""
        cand = self.by_address.get(address)
        if cand is not None and cand.source == "table" and not cand.connected and not cand.dialling:
            del self.by_address[address]

    def forbid(self, address: str) -> None:
        """Ourselves: never dial this address again."""
        self.never.add(address)
        self.by_address.pop(address, None)
