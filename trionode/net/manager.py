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

from trionode import data_files
from trionode.net.bans import POINTS_PROTOCOL, BanList, ban_key
from trionode.net.candidates import Candidates
from trionode.net.connection import Connection
from trionode.net.discovery import REFUSAL_ADDRESSES, known_addresses, receive_addresses
from trionode.net.inventory import RollingSet
from trionode.net.peers import SAVE_DEBOUNCE, PeerTable
from trionode.net.ratelimit import TokenBucket
from trionode.net.transport import Transport
from trionode.net.wakeup import Wakeup
from trionode.wire import messages as m
from trionode.wire.addresses import host_of, parse_address
from trionode.wire.errors import (
    BAD_PROOF,
    BANNED,
    DISCONNECT,
    DUPLICATE_CONNECTION,
    MISBEHAVIOUR,
    PROTOCOL_ERROR,
    SHUTDOWN,
    TOO_MANY_PEERS,
    UNSUPPORTED_VERSION,
    WRONG_NETWORK,
    ProtocolError,
)
from trionode.wire.handshake import HANDSHAKE_TIMEOUT
from trionode.wire.identity import NodeIdentity

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

# A dial that has not connected by then counts as failed.
DIAL_TIMEOUT: Final = 10.0
# Inbound connections still in their handshake: bounds what a flood of half-open sockets
# costs. Outbound ones are bounded by the dial limit instead, so such a flood never stops
# the node from dialling (an eclipse attack).
MAX_INBOUND_HANDSHAKING: Final = 64
# Rewrite peers.json at least this often while connected, so last_seen stays roughly current.
SAVE_EVERY: Final = 60.0
# Handshake failures after which redialling that address is pointless (another network, a
# peer breaking the protocol or failing its proof, a ban either way): the address is
# forgotten, unless configured (then only backed off). Our own ProtocolErrors add
# ":<code>" to the reason.
NEVER_REDIAL: Final = frozenset({WRONG_NETWORK, UNSUPPORTED_VERSION, BAD_PROOF, BANNED, PROTOCOL_ERROR})


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
        identity: NodeIdentity,
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
        self.identity = identity
        self.node_id = identity.node_id.hex()
        self.node_id_bytes = identity.node_id
        self.transport = transport
        self.limits = limits
        self.wall = wall
        self.rng_bits = rng_bits
        self.candidates = candidates
        self._hello = hello
        self.heartbeat_message = heartbeat
        self.log = log
        self.table = PeerTable(data_dir / data_files.PEERS if data_dir else None)
        self.bans = BanList(data_dir / data_files.BANS if data_dir else None, ban_time, log)
        self.connections: dict[str, Connection] = {}
        self.handshaking: set[Connection] = set()
        # TCP connects in progress, address -> host; then they are outbound handshakes.
        self.dialling: dict[str, str] = {}
        # Address budgets of the peers that tell us addresses, by source key (discovery).
        self.address_budgets: dict[str, TokenBucket] = {}
        self.dial_wakeup = Wakeup()
        self.our_addresses: set[str] = set()
        # Challenges of our own Hellos that came back to our listener: a peer's Error
        # self_connection is believed only for a dial whose challenge is here, so a stranger
        # cannot make the node give up an address by saying "you are me".
        self._reflected = RollingSet(1024)
        self.nursery: trio.Nursery | None = None
        self.on_messages: Callable[[Connection, list[m.Envelope]], Awaitable[None]] | None = None
        self.on_new_peer: Callable[[Connection], None] | None = None
        self._last_save = 0.0
        self._all_closed = trio.Event()
        self.stopping = False

    # ------------------------------------------------------------- setup

    def load(self) -> None:
        now = self.wall()
        for warning in self.table.load(now) + self.bans.load(now):
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

    @property
    def outbound_pending(self) -> int:
        """Outbound connections on their way: TCP connects and handshakes in progress."""
        return len(self.dialling) + sum(1 for c in self.handshaking if c.outbound)

    def hosts_in_flight(self) -> set[str]:
        """Hosts we are dialling or shaking hands with (outbound) right now."""
        hosts = set(self.dialling.values())
        hosts.update(c.remote_host for c in self.handshaking if c.outbound)
        return hosts

    def banned_until(self, address: str, node_id: str | None) -> float | None:
        """The end of a ban on ``address``'s peer: its IP, or on loopback its node id if known."""
        return self.bans.banned_until(ban_key(host_of(address), node_id), self.wall())

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
            conn.close("shutdown", m.Error(code=SHUTDOWN, reason="node is stopping"))
        elif until is not None:
            conn.close("banned", m.Error(code=BANNED, reason=f"banned until {until:.0f}"))
        elif (
            sum(1 for c in self.handshaking if not c.outbound) >= MAX_INBOUND_HANDSHAKING
            or self.inbound_count >= self.limits.max_inbound
            or len(self.connections) >= self.limits.max_peers
        ):
            # Refused before the handshake, not after: the dialler then counts a failed dial
            # and backs off, instead of a completed connection it redials within a second.
            # The refusal names other nodes to try: a node whose seeds are all full is not
            # left alone.
            others = tuple(known_addresses(self, exclude=None)[:REFUSAL_ADDRESSES])
            conn.close(
                "too_many_peers",
                m.Error(code=TOO_MANY_PEERS, reason="no inbound slots free", peers=others),
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
            self.identity,
            self.wall,
            self.log.bind(address=remote),
            dialed=dialed,
            on_reflected=self._reflected.add,
        )

    async def dial(self, address: str) -> Connection:
        """Dial and start a connection in the manager's nursery; return once it is running.

        ``ValueError`` if ``address`` is not ``host:port`` (a local IPv6 zone id is fine).
        """
        host, port = parse_address(address, allow_zone=True)
        with trio.move_on_after(DIAL_TIMEOUT) as scope:
            stream = await self.transport.dial(host, port)
        if scope.cancelled_caught:
            raise OSError(f"no answer from {address} within {DIAL_TIMEOUT:.0f} s")
        conn = self._connection(stream, address, outbound=True, dialed=address)
        assert self.nursery is not None
        # Counted as handshaking from now on, before its task runs: the dialer's limits
        # never lose sight of it between the connect and the handshake.
        self.handshaking.add(conn)
        self.nursery.start_soon(self._run, conn)
        return conn

    async def connect(self, address: str) -> str:
        """The control verb: dial now, wait for the handshake, return the peer's node id.

        Only an address whose handshake succeeds is kept, as a ``cli`` candidate redialled
        while disconnected (until a restart); a failed ``connect`` leaves nothing to redial.
        """
        try:
            host, _ = parse_address(address, allow_zone=True)
        except ValueError as exc:
            raise ConnectError(f"bad address {address!r}: {exc}") from None
        cand = self.candidates.by_address.get(address)
        if cand is not None:
            cand.held = False  # `connect` lifts a `disconnect`
            cand.dialling = True
        self.dialling[address] = host
        try:
            conn = await self.dial(address)
        except OSError as exc:
            self.candidates.failed(address, trio.current_time())
            raise ConnectError(f"cannot reach {address}: {exc.strerror or exc}") from None
        finally:
            self.dialling.pop(address, None)
        with trio.move_on_after(DIAL_TIMEOUT + 1):
            await conn.ready.wait()
        peer = conn.peer_id
        if peer is not None and conn.established:
            self._keep_cli(address, peer, conn)
            return peer
        reason = conn.close_reason or "handshake_timeout"
        if reason == "duplicate_connection" and peer is not None and peer in self.connections:
            self._keep_cli(address, peer, conn)
            return peer
        raise ConnectError(f"{address}: {describe_reason(reason)}")

    def _keep_cli(self, address: str, peer: str, conn: Connection) -> None:
        """A ``connect`` reached ``peer``: keep its address for redialling."""
        self.candidates.add(address, "cli", peer, trio.current_time())
        if self.connections.get(peer) is conn:
            self.candidates.connected(address, peer)

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
                    receive_addresses(self, conn, list(conn.refusal.peers))
                if conn.dialed is not None:
                    now = trio.current_time()
                    if reason == "self_connection" and conn.our_challenge in self._reflected:
                        # Our own Hello reached our own listener: this address is us.
                        self.our_addresses.add(conn.dialed)
                        self.candidates.forbid(conn.dialed)
                    elif reason in NEVER_REDIAL or reason.startswith(f"{PROTOCOL_ERROR}:"):
                        # Redialling will not change that; only a configured peer is kept
                        # (its handshake_failed lines say why).
                        self.candidates.drop_unless_configured(conn.dialed, now)
                    elif reason != "duplicate_connection":
                        self.candidates.failed(conn.dialed, now)
                    else:
                        self.candidates.disconnected(conn.dialed, now)
                    self.dial_wakeup.poke()  # an outbound slot is free again
            self._maybe_all_closed()

    def _register(self, conn: Connection) -> bool:
        peer = conn.peer_id
        assert peer is not None
        now = self.wall()
        until = self.bans.banned_until(ban_key(conn.remote_host, peer), now)
        if until is not None:
            conn.close("banned", m.Error(code=BANNED, reason=f"banned until {until:.0f}"))
            return False
        existing = self.connections.get(peer)
        if existing is not None and not existing.closing:
            if self._keep_new(existing, conn):
                existing.close(
                    "duplicate_connection", m.Error(code=DUPLICATE_CONNECTION, reason="keeping the other")
                )
                self._unregister(existing, "duplicate_connection")
            else:
                conn.close(
                    "duplicate_connection", m.Error(code=DUPLICATE_CONNECTION, reason="already connected")
                )
                return False
        total = len(self.connections)
        if total >= self.limits.max_peers or (
            not conn.outbound and self.inbound_count >= self.limits.max_inbound
        ):
            conn.close("too_many_peers", m.Error(code=TOO_MANY_PEERS, reason="peer limit reached"))
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
        one always stays. Both have proven the node id (protocol.md 5.1), so this only ever
        chooses between two connections of the same node.
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
        """Drop a connected peer; dropped by the operator, it is not redialled (``hold``)."""
        conn = self.connections.get(peer)
        if conn is None:
            return False
        if reason != "shutdown":
            for address in (conn.listen_address, conn.dialed):
                if address is not None:
                    self.candidates.hold(address)
        conn.close(reason, m.Error(code=SHUTDOWN if reason == "shutdown" else DISCONNECT, reason=reason))
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
            conn.close("banned", m.Error(code=MISBEHAVIOUR, reason=reason))

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

    # ------------------------------------------------------------- loops

    async def saver(self) -> NoReturn:
        """Write peers.json when it changed, at most every few seconds (debounced); retry bans.json."""
        while True:
            await trio.sleep(SAVE_DEBOUNCE)
            self.save_if_needed()
            self.bans.retry_save()  # a bans.json write that failed (disk full) is tried again

    def save_if_needed(self, force: bool = False) -> None:
        now = trio.current_time()
        if force or self.table.dirty or (self.connections and now - self._last_save >= SAVE_EVERY):
            wall = self.wall()
            for conn in self.connections.values():
                record = self.table.records.get(conn.peer_id or "")
                if record is not None:
                    # Heartbeats are signs of life too: the file says when we last heard it.
                    record.last_seen = max(record.last_seen, wall - (now - conn.last_message))
                    record.rtt = conn.rtt
                    record.height = conn.height
                    record.work = conn.work
                    record.tip = conn.tip
            try:
                self.table.save()
            except OSError as exc:
                self.log.error("state_file_write_failed", file=data_files.PEERS, detail=str(exc))
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
