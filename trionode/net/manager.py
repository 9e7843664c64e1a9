"""The peer manager: who we are connected to, who we may connect to, and who we refuse.

It owns the connection registry, the peer table (peers.json), bans (bans.json), the dial
candidates, and the loops that keep them right: the dialer, the heartbeat and the saver.
Connections run in the manager's nursery (one task each); everything here runs in the trio
thread, so the registry needs no locks.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, NoReturn

import trio

from trionode.net.bans import BanList, ban_key
from trionode.net.candidates import PERSISTENT_SOURCES, Candidates
from trionode.net.connection import Connection
from trionode.net.peers import SAVE_DEBOUNCE, PeerTable
from trionode.net.transport import Transport
from trionode.net.wakeup import Wakeup
from trionode.wire import messages as m
from trionode.wire.addresses import parse_address
from trionode.wire.errors import ProtocolError
from trionode.wire.handshake import HANDSHAKE_TIMEOUT

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

# A dial that has not connected by then counts as failed.
DIAL_TIMEOUT: Final = 10.0
# Connections still in their handshake: bounds what a flood of half-open sockets costs.
MAX_HANDSHAKING: Final = 64
# Rewrite peers.json at least this often while connected, so last_seen stays roughly current.
SAVE_EVERY: Final = 60.0
# Dialer re-checks candidates at least this often, and asks peers for addresses this often
# while short of its outbound target.
DIAL_TICK: Final = 5.0
DISCOVERY_INTERVAL: Final = 300.0
# Address rate limit per peer (Bitcoin's addr token bucket): a burst of one full answer,
# then one address per 10 s; addresses beyond the budget are ignored.
ADDR_BURST: Final = 1_000.0
ADDR_RATE: Final = 0.1
# We answer at most one PeerDiscovery request per peer per this many seconds.
DISCOVERY_ANSWER_EVERY: Final = 60.0
MAX_DISCOVERY_ANSWER: Final = 1_000
# Addresses sent with a too_many_peers refusal: enough to find room elsewhere.
REFUSAL_ADDRESSES: Final = 100

# The heartbeat loop wakes this many times per interval, pinging the peers that are due.
HEARTBEAT_TICKS: Final = 10

# Misbehaviour points (protocol.md, "Misbehaviour"); 100 bans.
POINTS_PROTOCOL: Final = 34  # malformed or oversized frame, message out of order
POINTS_INVALID_BLOCK: Final = 100
POINTS_FUTURE_BLOCK: Final = 20  # a block over 2 h ahead of our clock: maybe just a fast clock
POINTS_INVALID_TX: Final = 20  # forged signature, malformed transaction
POINTS_UNDELIVERED: Final = 20  # claimed more work than it delivered


@dataclass
class Limits:
    max_peers: int
    outbound_target: int
    discover: bool
    heartbeat_interval: float
    peer_timeout: float

    @property
    def max_inbound(self) -> int:
        """Keep room for outbound connections, so an inbound flood cannot eclipse us."""
        reserved = min(self.outbound_target, self.max_peers // 2)
        return max(1, self.max_peers - reserved)


class ConnectError(Exception):
    """``connect`` failed; the message is one line for the user."""


class PeerManager:
    def __init__(
        self,
        *,
        node_id: str,
        transport: Transport,
        limits: Limits,
        data_dir: Path | None,
        ban_time: float,
        wall: Callable[[], float],
        rng_bits: Callable[[int], int],
        candidates: Candidates,
        hello: Callable[[], m.Hello],
        heartbeat: Callable[[int, bool], m.Heartbeat],
        log: "FilteringBoundLogger",
    ) -> None:
        self.node_id = node_id
        self.node_id_bytes = bytes.fromhex(node_id)
        self.transport = transport
        self.limits = limits
        self.wall = wall
        self._bits = rng_bits
        self.candidates = candidates
        self._hello = hello
        self._heartbeat = heartbeat
        self.log = log
        self.table = PeerTable(data_dir / "peers.json" if data_dir else None)
        self.bans = BanList(data_dir / "bans.json" if data_dir else None, ban_time)
        self.connections: dict[str, Connection] = {}
        self.handshaking: set[Connection] = set()
        self.dial_wakeup = Wakeup()
        self.our_addresses: set[str] = set()
        self.nursery: trio.Nursery | None = None
        self.on_messages: Callable[[Connection, list[m.Envelope]], Awaitable[None]] | None = None
        self.on_new_peer: Callable[[Connection], None] | None = None
        self._last_save = 0.0
        self._all_closed = trio.Event()
        self.stopping = False

    # ------------------------------------------------------------- setup

    def load(self) -> None:
        now = self.wall()
        for warning in self.table.load() + self.bans.load(now):
            self.log.warning("state_file_unreadable", detail=warning)
        for record in self.table.records.values():
            if record.address:
                self.candidates.add(record.address, "table", record.node_id)

    def add_seed(self, address: str, source: str = "config") -> None:
        self.candidates.add(address, source)
        self.dial_wakeup.poke()

    # ------------------------------------------------------------- accounting

    @property
    def outbound_count(self) -> int:
        return sum(1 for c in self.connections.values() if c.outbound)

    @property
    def inbound_count(self) -> int:
        return sum(1 for c in self.connections.values() if not c.outbound)

    def established(self) -> list[Connection]:
        return [c for c in self.connections.values() if not c.closing]

    async def wait_all_closed(self) -> None:
        """Return once no connection (established or handshaking) is left."""
        while self.connections or self.handshaking:
            self._all_closed = trio.Event()
            await self._all_closed.wait()

    def _maybe_all_closed(self) -> None:
        if not self.connections and not self.handshaking:
            self._all_closed.set()

    # ------------------------------------------------------------- connections

    async def handle_inbound(self, stream: trio.abc.Stream, remote: str) -> None:
        conn = self._connection(stream, remote, outbound=False, dialed=None)
        host = conn.remote_host
        until = self.bans.banned_until(ban_key(host, None), self.wall())
        if self.stopping:
            conn.close("shutdown", m.Error(code="shutdown", reason="node is stopping"))
        elif until is not None:
            conn.close("banned", m.Error(code="banned", reason=f"banned until {until:.0f}"))
        elif (
            len(self.handshaking) >= MAX_HANDSHAKING
            or self.inbound_count >= self.limits.max_inbound
            or len(self.connections) >= self.limits.max_peers
        ):
            # Refused before the handshake, not after: the dialler then counts a failed dial
            # and backs off, instead of a completed connection it redials within a second.
            # The refusal names other nodes to try: a node whose seeds are all full is not
            # left alone.
            others = tuple(self.known_addresses(exclude=None)[:REFUSAL_ADDRESSES])
            conn.close(
                "too_many_peers",
                m.Error(code="too_many_peers", reason="no inbound slots free", peers=others),
            )
        await self._run(conn)

    def _connection(
        self, stream: trio.abc.Stream, remote: str, outbound: bool, dialed: str | None
    ) -> Connection:
        return Connection(
            stream,
            remote,
            outbound,
            self._hello,
            self.node_id_bytes,
            self.wall,
            self.log.bind(address=remote),
            dialed=dialed,
        )

    async def dial(self, address: str) -> Connection:
        """Dial and start a connection in the manager's nursery; return once it is running."""
        host, port = parse_address(address)
        with trio.move_on_after(DIAL_TIMEOUT) as scope:
            stream = await self.transport.dial(host, port)
        if scope.cancelled_caught:
            raise OSError(f"no answer from {address} within {DIAL_TIMEOUT:.0f} s")
        conn = self._connection(stream, address, outbound=True, dialed=address)
        assert self.nursery is not None
        self.nursery.start_soon(self._run, conn)
        return conn

    async def connect(self, address: str) -> str:
        """The control verb: dial now, wait for the handshake, return the peer's node id."""
        try:
            parse_address(address)
        except ProtocolError as exc:
            raise ConnectError(f"bad address {address!r}: {exc}") from None
        self.candidates.add(address, "cli")
        cand = self.candidates.by_address.get(address)
        if cand is not None:
            cand.dialling = True
        try:
            conn = await self.dial(address)
        except OSError as exc:
            self.candidates.failed(address, trio.current_time())
            raise ConnectError(f"cannot reach {address}: {exc.strerror or exc}") from None
        with trio.move_on_after(DIAL_TIMEOUT + 1):
            await conn.ready.wait()
        if conn.peer_id is not None and conn.established:
            return conn.peer_id
        reason = conn.close_reason or "handshake_timeout"
        if reason == "duplicate_connection" and conn.peer_id in self.connections:
            return conn.peer_id
        raise ConnectError(f"{address}: {describe_reason(reason)}")

    async def _run(self, conn: Connection) -> None:
        self.handshaking.add(conn)
        registered = False

        async def established(c: Connection) -> bool:
            nonlocal registered
            self.handshaking.discard(c)
            registered = self._register(c)
            c.ready.set()
            return registered

        async def deliver(c: Connection, envs: list[m.Envelope]) -> None:
            if self.on_messages is not None:
                await self.on_messages(c, envs)

        try:
            await conn.run(established, deliver, self._protocol_error)
        finally:
            self.handshaking.discard(conn)
            conn.ready.set()
            reason = conn.close_reason or "closed"
            if registered:
                self._unregister(conn, reason)
            else:
                self.log.info("handshake_failed", address=conn.remote, reason=reason)
                if conn.refusal is not None and conn.refusal.peers:
                    self._learn(conn, list(conn.refusal.peers))
                if conn.dialed is not None:
                    if reason == "self_connection":
                        self.our_addresses.add(conn.dialed)
                        self.candidates.forbid(conn.dialed)
                    elif reason != "duplicate_connection":
                        self.candidates.failed(conn.dialed, trio.current_time())
                        self.dial_wakeup.poke()
                    else:
                        self.candidates.disconnected(conn.dialed, trio.current_time())
            self._maybe_all_closed()

    def _register(self, conn: Connection) -> bool:
        peer = conn.peer_id
        assert peer is not None
        now = self.wall()
        until = self.bans.banned_until(ban_key(conn.remote_host, peer), now)
        if until is not None:
            conn.close("banned", m.Error(code="banned", reason=f"banned until {until:.0f}"))
            return False
        existing = self.connections.get(peer)
        if existing is not None and not existing.closing:
            if self._keep_new(existing, conn):
                existing.close(
                    "duplicate_connection", m.Error(code="duplicate_connection", reason="keeping the other")
                )
                self._unregister(existing, "duplicate_connection")
            else:
                conn.close(
                    "duplicate_connection", m.Error(code="duplicate_connection", reason="already connected")
                )
                return False
        total = len(self.connections)
        if total >= self.limits.max_peers or (
            not conn.outbound and self.inbound_count >= self.limits.max_inbound
        ):
            conn.close("too_many_peers", m.Error(code="too_many_peers", reason="peer limit reached"))
            return False
        self.connections[peer] = conn
        record = self.table.seen(peer, conn.listen_address, now)
        record.connected = True
        record.direction = conn.direction
        record.height = conn.height
        record.work = conn.work
        record.tip = conn.tip
        record.agent = conn.hello.agent if conn.hello is not None else ""
        if conn.listen_address is not None:
            self.candidates.connected(conn.listen_address, peer)
        self.log.info(
            "peer_connected", peer=peer, address=conn.listen_address or conn.remote, direction=conn.direction
        )
        if self.on_new_peer is not None:
            self.on_new_peer(conn)
        return True

    def _keep_new(self, existing: Connection, new: Connection) -> bool:
        """Of two connections to one node, which one stays.

        Two nodes that dial each other at once each end up with both connections; both keep
        the one dialled by the smaller node id, so they close the same one. That rule applies
        only while the existing connection is younger than a handshake: later, the existing
        one always stays, so a stranger claiming a connected peer's (unauthenticated) node id
        cannot evict it (docs/adversarial.md).
        """
        if existing.outbound == new.outbound:
            return False
        if trio.current_time() - existing.connected_at > HANDSHAKE_TIMEOUT:
            return False
        ours_dialled_by_smaller = self.node_id < (new.peer_id or "")  # hex order = byte order
        return new.outbound == ours_dialled_by_smaller

    def _unregister(self, conn: Connection, reason: str) -> None:
        peer = conn.peer_id
        if peer is None or self.connections.get(peer) is not conn:
            return
        del self.connections[peer]
        record = self.table.records.get(peer)
        if record is not None:
            record.connected = False
            record.last_seen = self.wall()
            record.rtt = conn.rtt
            self.table.dirty = True
        if conn.listen_address is not None:
            self.candidates.disconnected(conn.listen_address, trio.current_time())
        self.log.info("peer_disconnected", peer=peer, reason=reason)
        self.dial_wakeup.poke()

    def _protocol_error(self, conn: Connection, exc: ProtocolError) -> None:
        # conn.log names the peer (address, and node id once known): the line says who did it.
        conn.log.info("protocol_violation", code=exc.code, field=exc.field, detail=str(exc)[:200])
        self.penalize(conn, POINTS_PROTOCOL, f"protocol_error:{exc.code}")

    def disconnect(self, peer: str, reason: str) -> bool:
        conn = self.connections.get(peer)
        if conn is None:
            return False
        conn.close(reason, m.Error(code="shutdown" if reason == "shutdown" else "disconnect", reason=reason))
        return True

    # ------------------------------------------------------------- misbehaviour

    def penalize(self, conn: Connection, points: int, reason: str) -> None:
        key = ban_key(conn.remote_host, conn.peer_id)
        if conn.peer_id is not None and conn.peer_id in self.table.records:
            self.table.records[conn.peer_id].misbehaviour += points
            self.table.dirty = True
        until = self.bans.penalize(key, points, reason, self.wall())
        if until is not None:
            self.log.warning(
                "peer_banned",
                address=conn.listen_address or conn.remote,
                peer=conn.peer_id,
                reason=reason,
                until=until,
            )
            conn.close("banned", m.Error(code="misbehaviour", reason=reason))

    # ------------------------------------------------------------- relay

    def broadcast(self, frame: bytes, item: bytes | None, exclude: Connection | None = None) -> int:
        """Send an encoded frame to every peer not known to have ``item``; never blocks."""
        sent = 0
        for conn in list(self.connections.values()):
            if conn is exclude or conn.closing:
                continue
            if item is not None and not conn.known.add(item):
                continue
            if conn.send(frame):
                sent += 1
        return sent

    # ------------------------------------------------------------- discovery

    def on_discovery(self, conn: Connection, msg: m.PeerDiscovery) -> None:
        now = trio.current_time()
        if msg.request:
            last = conn.extra.get("answered_discovery")
            if last is None or now - last >= DISCOVERY_ANSWER_EVERY:
                conn.extra["answered_discovery"] = now
                conn.send_message(
                    m.PeerDiscovery(request=False, peers=self.known_addresses(exclude=conn.peer_id))
                )
        if not msg.peers:
            return
        tokens, stamp = conn.extra.get("addr_tokens", (ADDR_BURST, now))
        tokens = min(ADDR_BURST, tokens + (now - stamp) * ADDR_RATE)
        usable = int(tokens)
        conn.extra["addr_tokens"] = (tokens - min(usable, len(msg.peers)), now)
        if len(msg.peers) > usable:
            self.log.debug("addresses_rate_limited", peer=conn.peer_id, ignored=len(msg.peers) - usable)
        self._learn(conn, msg.peers[:usable])

    def _learn(self, conn: Connection, entries: list[m.PeerInfo]) -> None:
        """New dial candidates from a peer's addresses (when discovery is on)."""
        if not self.limits.discover:
            return
        now = trio.current_time()
        added = 0
        for entry in entries:
            peer_id = entry.node_id.hex()
            if peer_id == self.node_id or entry.address in self.our_addresses:
                continue
            if peer_id in self.connections:
                continue
            if self.candidates.add(entry.address, "discovered", peer_id, now):
                added += 1
        if added:
            self.log.debug("addresses_learned", peer=conn.peer_id, count=added)
            self.dial_wakeup.poke()

    def known_addresses(self, exclude: str | None) -> list[m.PeerInfo]:
        entries: list[m.PeerInfo] = []
        records = sorted(self.table.records.values(), key=lambda r: (not r.connected, -r.last_seen))
        for record in records:
            if record.address is None or record.node_id == exclude:
                continue
            entries.append(
                m.PeerInfo(
                    address=record.address, node_id=bytes.fromhex(record.node_id), last_seen=record.last_seen
                )
            )
            if len(entries) >= MAX_DISCOVERY_ANSWER:
                break
        return entries

    def announce(self, conn: Connection) -> None:
        """Tell the other peers about a newly connected peer that accepts connections."""
        if conn.listen_address is None or conn.peer_id is None:
            return
        entry = m.PeerInfo(
            address=conn.listen_address, node_id=bytes.fromhex(conn.peer_id), last_seen=self.wall()
        )
        frame = m.encode_message(
            m.PeerDiscovery(request=False, peers=[entry]), self.node_id_bytes, self.wall()
        )
        self.broadcast(frame, None, exclude=conn)

    # ------------------------------------------------------------- loops

    async def dialer(self) -> NoReturn:
        """Keep configured peers connected and fill outbound slots from the candidates."""
        assert self.nursery is not None
        last_ask = trio.current_time()
        while True:
            now = trio.current_time()
            connected_addresses = {c.listen_address for c in self.connections.values()}
            outbound = self.outbound_count
            for cand in self.candidates.due(now):
                if self.stopping or len(self.connections) + len(self.handshaking) >= self.limits.max_peers:
                    break
                if cand.address in connected_addresses or cand.address in self.our_addresses:
                    cand.connected = cand.address in connected_addresses
                    continue
                if cand.node_id is not None and cand.node_id in self.connections:
                    continue
                persistent = cand.source in {"config", "cli"}
                if not persistent and outbound >= self.limits.outbound_target:
                    continue
                if cand.source not in PERSISTENT_SOURCES and not self.limits.discover:
                    continue
                cand.dialling = True
                outbound += 1
                self.nursery.start_soon(self._dial_candidate, cand.address)
            if self.outbound_count < self.limits.outbound_target and now - last_ask >= DISCOVERY_INTERVAL:
                last_ask = now
                if self.limits.discover:
                    frame = m.encode_message(
                        m.PeerDiscovery(request=True, peers=[]), self.node_id_bytes, self.wall()
                    )
                    self.broadcast(frame, None)
            next_due = self.candidates.next_due()
            # A candidate still due now was skipped on purpose (enough outbound peers, no room,
            # already connected); what changes that pokes the wakeup. Waiting a full tick then,
            # not 50 ms, keeps an idle node from waking 20 times a second.
            timeout = DIAL_TICK if next_due is None or next_due <= now else min(DIAL_TICK, next_due - now)
            await self.dial_wakeup.wait(timeout)

    async def _dial_candidate(self, address: str) -> None:
        try:
            await self.dial(address)
        except OSError as exc:
            self.log.debug("dial_failed", address=address, detail=str(exc.strerror or exc))
            self.candidates.failed(address, trio.current_time())
            self.dial_wakeup.poke()  # a slot is free again: another candidate may be dialled
        except ProtocolError:
            self.candidates.forbid(address)

    async def heartbeats(self) -> NoReturn:
        """Ping every peer once per interval; drop peers silent for 3 intervals; clean the table.

        Each peer is pinged at its own phase (one interval after it connected, then every
        interval), and the loop wakes ``HEARTBEAT_TICKS`` times per interval: a thousand peers
        are not all pinged, and do not all answer, in the same instant.
        """
        interval = self.limits.heartbeat_interval
        tick = interval / HEARTBEAT_TICKS
        last_clean = trio.current_time()
        while True:
            await trio.sleep(tick)
            now = trio.current_time()
            for conn in list(self.connections.values()):
                if conn.closing:
                    continue
                if now - conn.last_message > 3 * interval and not conn.busy:
                    conn.close(
                        "timeout", m.Error(code="timeout", reason="no message for 3 heartbeat intervals")
                    )
                    continue
                due = conn.extra.setdefault("next_ping", conn.connected_at + interval)
                if now < due:
                    continue
                conn.extra["next_ping"] = max(due + interval, now)
                nonce = self._bits(63)
                conn.ping(nonce, now)
                conn.send_message(self._heartbeat(nonce, False))
            if now - last_clean >= interval:
                last_clean = now
                for node_id in self.table.remove_stale(self.wall(), self.limits.peer_timeout):
                    self.log.info("peer_forgotten", peer=node_id, reason="stale")

    async def saver(self) -> NoReturn:
        """Write peers.json when it changed, at most every few seconds (debounced)."""
        while True:
            await trio.sleep(SAVE_DEBOUNCE)
            self.save_if_needed()

    def save_if_needed(self, force: bool = False) -> None:
        now = trio.current_time()
        if force or self.table.dirty or (self.connections and now - self._last_save >= SAVE_EVERY):
            for conn in self.connections.values():
                record = self.table.records.get(conn.peer_id or "")
                if record is not None:
                    record.rtt = conn.rtt
                    record.height = conn.height
                    record.work = conn.work
                    record.tip = conn.tip
            try:
                self.table.save()
            except OSError as exc:
                self.log.error("state_file_write_failed", file="peers.json", detail=str(exc))
            self._last_save = now


def describe_reason(reason: str) -> str:
    """A close reason as a phrase for the CLI."""
    return {
        "wrong_network": "peer is on a different network (its genesis differs from ours)",
        "unsupported_version": "peer speaks an unsupported protocol version",
        "self_connection": "that address is this node itself",
        "handshake_timeout": "no handshake within 10 s",
        "too_many_peers": "peer limit reached",
        "banned": "peer is banned",
        "connection_lost": "connection lost during the handshake",
        "eof_in_handshake": "peer closed the connection during the handshake",
    }.get(reason, reason)
