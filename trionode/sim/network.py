"""A simulated network of hosts: listen and dial by "host:port" over ``Link``s, no sockets.

Each node gets a ``SimTransport`` (the node's ``Transport``). The network draws every link's
latency, bandwidth and loss from the seed and the pair of hosts (so a link's character does
not depend on the order things happened in), and can partition any set of hosts, cut the link
between two hosts, heal one such fault or all of them, and take a host down (``crash``: its
connections reset, its listener disappears, dials to it are refused) and back up.

Faults compose: each partition or cut is a named set of blocked host pairs, a pair is blocked
while any fault names it, and healing one fault unblocks only the pairs no other fault holds.

A blocked pair is a blackhole, not a refusal: bytes wait (see ``link``), and a dial across it
hangs until the heal or until the dialler gives up (the node's own dial timeout).
"""

import errno
import random
from collections.abc import Callable, Iterable
from typing import Final

import trio

from trionode.net.transport import Handler, format_address
from trionode.sim.link import Link, LinkProfile, SimStream

# Ephemeral ports of dialled connections start here (Linux's default range).
FIRST_EPHEMERAL_PORT: Final = 32768

ProfileFor = Callable[[str, str], LinkProfile]


def ideal_profile(a: str, b: str) -> LinkProfile:
    return LinkProfile()


class SimNetwork:
    def __init__(self, seed: int = 0, profile: ProfileFor = ideal_profile) -> None:
        self.seed = seed
        self._profile_for = profile
        self._profiles: dict[frozenset[str], LinkProfile] = {}
        self.listeners: dict[str, tuple[Handler, trio.Nursery]] = {}
        self.links: list[Link] = []
        self.faults: dict[str, set[frozenset[str]]] = {}  # name -> the host pairs it blocks
        self.blocked: set[frozenset[str]] = set()  # the union of the faults' pairs
        self._faults_made = 0
        self.down: set[str] = set()
        self.slow: dict[str, float] = {}  # host -> extra one-way latency of all its links
        self._next_port: dict[str, int] = {}
        self._unblocked = trio.Event()
        self.dials = 0

    # ------------------------------------------------------------- links

    def profile(self, a: str, b: str) -> LinkProfile:
        key = frozenset((a, b))
        found = self._profiles.get(key)
        if found is None:
            low, high = sorted((a, b))
            found = self._profiles[key] = self._profile_for(low, high)
        return found

    def transport(self, host: str) -> "SimTransport":
        return SimTransport(self, host)

    def _prune(self) -> None:
        self.links = [link for link in self.links if link.alive]

    # ------------------------------------------------------------- faults

    def is_blocked(self, a: str, b: str) -> bool:
        return frozenset((a, b)) in self.blocked

    def partition(self, *groups: Iterable[str], fault: str | None = None) -> str:
        """Blackhole every pair of hosts in different groups (hosts in no group keep theirs),
        on top of the faults already in place; returns the fault's name, for ``heal``."""
        sets = [sorted(set(g)) for g in groups]
        pairs = set()
        for i, left in enumerate(sets):
            for right in sets[i + 1 :]:
                for x in left:
                    for y in right:
                        if x != y:
                            pairs.add(frozenset((x, y)))
        return self._add_fault(pairs, fault)

    def cut(self, a: str, b: str, fault: str | None = None) -> str:
        """Blackhole the pair ``a``-``b`` only, until this fault or every fault is healed."""
        return self._add_fault({frozenset((a, b))}, fault)

    def heal(self, fault: str | None = None) -> None:
        """End one fault (``fault``), or all of them (None): the pairs no other fault blocks
        work again, and their held bytes arrive after a retransmission timeout."""
        if fault is None:
            self.faults.clear()
        else:
            self.faults.pop(fault, None)
        self.blocked = set().union(*self.faults.values())
        now = trio.current_time()
        for link in self.links:
            if link.hosts not in self.blocked:
                link.unblock(now)
        self._unblocked.set()
        self._unblocked = trio.Event()

    def _add_fault(self, pairs: set[frozenset[str]], fault: str | None) -> str:
        if fault is None:
            self._faults_made += 1
            fault = f"fault-{self._faults_made}"
        self.faults[fault] = self.faults.get(fault, set()) | pairs
        self.blocked |= pairs
        now = trio.current_time()
        self._prune()
        for link in self.links:
            if link.hosts in self.blocked:
                link.block(now)
        return fault

    def crash(self, host: str) -> None:
        """The host is gone: its connections reset now, dials to it are refused."""
        self.down.add(host)
        for link in self.links:
            if host in link.hosts:
                link.break_()
        self._prune()

    def set_slow(self, host: str, extra: float) -> None:
        """Add ``extra`` seconds of one-way latency to every link of ``host`` (0 ends it)."""
        if extra > 0:
            self.slow[host] = extra
        else:
            self.slow.pop(host, None)

    def restart(self, host: str) -> None:
        self.down.discard(host)

    # ------------------------------------------------------------- dialling

    def ephemeral(self, host: str) -> int:
        port = self._next_port.get(host, FIRST_EPHEMERAL_PORT)
        self._next_port[host] = port + 1
        return port

    async def connect(self, src: str, host: str, port: int) -> SimStream:
        address = format_address(host, port)
        while self.is_blocked(src, host):
            await self._unblocked.wait()  # SYNs are lost; the dialler's timeout decides
        profile = self.profile(src, host)
        await trio.sleep(profile.latency)  # SYN
        entry = self.listeners.get(address)
        if entry is None or src in self.down or host in self.down:
            await trio.sleep(profile.latency)  # RST back
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"connection refused: {address}")
        handler, nursery = entry
        self.dials += 1
        rng = random.Random(f"{self.seed}:link:{self.dials}")
        client = format_address(src, self.ephemeral(src))
        slow = self.slow
        link = Link(
            self.dials, client, address, profile, rng, extra=lambda: slow.get(src, 0.0) + slow.get(host, 0.0)
        )
        if self.is_blocked(src, host):
            link.block(trio.current_time())
        self._prune()
        self.links.append(link)
        nursery.start_soon(handler, link.server_end, client)
        await trio.sleep(profile.latency)  # SYN-ACK
        return link.client_end


class SimTransport:
    """The node's ``Transport`` on a ``SimNetwork``."""

    def __init__(self, network: SimNetwork, host: str) -> None:
        self.network = network
        self.host = host

    async def listen(
        self,
        host: str,
        port: int,
        handler: Handler,
        handler_nursery: trio.Nursery,
        *,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        address = format_address(self.host, port or 5001)
        if address in self.network.listeners:
            raise OSError(errno.EADDRINUSE, f"{address} is in use")
        self.network.listeners[address] = (handler, handler_nursery)
        try:
            task_status.started(address)
            await trio.sleep_forever()
        finally:
            if self.network.listeners.get(address, (None,))[0] is handler:
                del self.network.listeners[address]

    async def dial(self, host: str, port: int) -> trio.abc.Stream:
        return await self.network.connect(self.host, host, port)
