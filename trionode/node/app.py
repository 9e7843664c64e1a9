"""The node: one root nursery supervising every task, and the shutdown that ends them.

Tasks under the root nursery: the chain owner (the only code touching chain state), the
P2P listener (started with ``nursery.start`` so the bound address is known), the dialer,
one task per peer connection (in their own nursery, drained on shutdown), the heartbeat
loop, the consensus loop, the peers.json saver, the miner, the control server and the
signal watcher. Transport, clocks, randomness and CPU workers come from ``Environment``,
so the simulator can run many nodes in one process, deterministically.
"""

import os
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import trio

from trionode import AGENT, data_files
from trionode.atomic_file import write_atomic
from trionode.chain.keys import KeyPair
from trionode.chain.store import Store
from trionode.chain.tree import Chain
from trionode.control.protocol import LOCK_NAME, SOCKET_NAME
from trionode.lock_file import try_lock
from trionode.net.candidates import Candidates
from trionode.net.connection import Connection
from trionode.net.dialer import dial_loop
from trionode.net.discovery import announce
from trionode.net.heartbeat import heartbeat_loop
from trionode.net.manager import Limits, PeerManager
from trionode.net.transport import TcpTransport, Transport
from trionode.node.chain_owner import ChainOwner
from trionode.node.config import NodeConfig, format_hostport
from trionode.node.dispatch import Dispatcher
from trionode.node.intake import Intake
from trionode.node.miner import Miner
from trionode.node.sync import Consensus
from trionode.node.workers import PowSolver, ProcessSolver, SignatureChecker, ThreadSignatureChecker
from trionode.wallet import WalletError, Wallets
from trionode.wire import messages as m
from trionode.wire.errors import SHUTDOWN
from trionode.wire.identity import CHALLENGE_BYTES, NodeIdentity
from trionode.wire.payloads import PROTOCOL_VERSION

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

# Connections get this long to say goodbye and drain at shutdown (INTERFACE: exit within 5 s).
SHUTDOWN_DRAIN: Final = 2.0
# The wallet that receives rewards when no address is given ("the node's own wallet").
NODE_WALLET: Final = "node"


class StartupError(Exception):
    """The node cannot start (data dir locked, store unreadable); one line for the user.

    ``usage``: the configuration is at fault (the CLI exits 2, as for any bad config).
    """

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


@dataclass
class Environment:
    """Everything a node takes from the outside world."""

    transport: Transport
    wall: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=lambda: random.Random(os.urandom(32)))
    # Secret randomness (the node key, handshake challenges): the OS's CSPRNG, never ``rng``,
    # whose state its other outputs could give away. A simulation passes a seeded source.
    entropy: Callable[[int], bytes] = os.urandom
    solver: PowSolver = field(default_factory=ProcessSolver)
    signatures: SignatureChecker = field(default_factory=ThreadSignatureChecker)
    control: bool = True  # serve <data_dir>/control.sock
    signals: bool = True  # SIGINT/SIGTERM stop the node
    lock: bool = True  # hold <data_dir>/LOCK so two nodes never share a store

    @classmethod
    def real(cls, workers: int | None = None) -> "Environment":
        return cls(transport=TcpTransport(), solver=ProcessSolver(workers))


def load_identity(data_dir: Path, entropy: Callable[[int], bytes]) -> tuple[NodeIdentity, str | None]:
    """The node's key, created once and kept in ``node_key`` (mode 0600), and the node id it
    proves, kept in ``node_id`` for people and scripts (the seed made a new id per start).

    Returns the identity and, if ``node_id`` held another id (a data dir from before node ids
    were derived from keys), that old id.
    """
    key_path, id_path = data_dir / data_files.NODE_KEY, data_dir / data_files.NODE_ID
    try:
        seed = bytes.fromhex(key_path.read_text().strip())
        if len(seed) != 32:
            raise ValueError("not 32 bytes")
    except FileNotFoundError:
        seed = entropy(32)
        write_atomic(key_path, (seed.hex() + "\n").encode(), mode=0o600)
    except ValueError as exc:
        raise StartupError(f"{key_path}: not a node key ({exc}); move it away to make a new one") from None
    except OSError as exc:
        raise StartupError(f"{key_path}: cannot read the node key: {exc.strerror}") from None
    identity = NodeIdentity(KeyPair(seed))
    node_id = identity.node_id.hex()
    try:
        previous: str | None = id_path.read_text().strip()
    except FileNotFoundError:
        previous = None
    except OSError as exc:
        raise StartupError(f"{id_path}: cannot read the node id: {exc.strerror}") from None
    if previous != node_id:
        write_atomic(id_path, (node_id + "\n").encode(), mode=0o644)
    return identity, previous if previous and previous != node_id else None


class Node:
    def __init__(self, config: NodeConfig, env: Environment, log: "FilteringBoundLogger") -> None:
        self.config = config
        self.env = env
        self.wall = env.wall
        self.data_dir = config.data_dir
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"{self.data_dir}: cannot create the data dir: {exc.strerror}") from None
        self._lock_file: IO[bytes] | None = None
        if env.control:
            from trionode.control.server import socket_path_problem

            problem = socket_path_problem(self.data_dir)
            if problem is not None:
                raise StartupError(problem)
        if env.lock:
            self._lock()
        self.identity, old_id = load_identity(self.data_dir, env.entropy)
        self.node_id = self.identity.node_id.hex()
        self.node_id_bytes = self.identity.node_id
        self.log = log.bind(node_id=self.node_id)
        if old_id is not None:
            self.log.warning("node_id_changed", old=old_id, reason="node ids are now derived from node_key")
        from trionode.chain.store import StoreError

        try:
            self.chain = Chain(config.chain, Store(self.data_dir / data_files.CHAIN_DB))
        except StoreError as exc:
            self._unlock()
            raise StartupError(str(exc)) from None
        if self.chain.store.damaged_mempool_rows:
            self.log.warning("mempool_rows_dropped", count=self.chain.store.damaged_mempool_rows)
        self.network = config.chain.network
        self.owner = ChainOwner(self.chain)
        self.listen_address: str | None = None
        self.listen_port = 0
        self.started_at = self.wall()
        limits = Limits(
            max_peers=config.max_peers,
            outbound_target=config.outbound_target,
            discover=config.discover,
            heartbeat_interval=config.heartbeat_interval,
            peer_timeout=config.peer_timeout,
        )
        self.manager = PeerManager(
            identity=self.identity,
            transport=env.transport,
            limits=limits,
            data_dir=self.data_dir,
            ban_time=config.ban_time,
            wall=env.wall,
            rng_bits=env.rng.getrandbits,
            candidates=Candidates(env.rng),
            hello=self.hello,
            heartbeat=self.heartbeat,
            log=self.log,
        )
        self.intake = Intake(
            self.owner, self.manager, env.signatures, config.chain, self.node_id_bytes, env.wall, self.log
        )
        self.consensus = Consensus(
            self.owner,
            self.manager,
            self.intake,
            env.signatures,
            self.network,
            config.sync_interval,
            self.log,
        )
        self.miner = Miner(self.owner, self.intake, env.solver, env.wall, self.log)
        self.dispatcher = Dispatcher(self)
        self.manager.on_messages = self.dispatcher.on_batch
        self.manager.on_new_peer = self._on_new_peer
        self.wallets = Wallets(self.data_dir)
        self.mining_address: bytes | None = None
        if config.mining_enabled:
            try:
                self.mining_address = self.reward_address(config.mining_address)
            except WalletError as exc:
                self._unlock()
                where = config.config_path or "defaults"
                raise StartupError(f"{where}: mining.address: {exc}", usage=True) from None
        self._stop = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._listener_scope = trio.CancelScope()
        self.stopping = False
        self.crashed = False
        self.started = False  # node_started was logged

    # ------------------------------------------------------------- data dir lock

    def _lock(self) -> None:
        handle = try_lock(self.data_dir / LOCK_NAME)
        if handle is None:
            raise StartupError(f"{self.data_dir}: another trionode is running on this data dir")
        self._lock_file = handle

    def _unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    # ------------------------------------------------------------- messages we send

    def hello(self) -> m.Hello:
        snap = self.owner.snapshot
        return m.Hello(
            version=PROTOCOL_VERSION,
            network=self.network,
            node_id=self.node_id_bytes,
            listen_port=self.listen_port,
            height=snap.height,
            tip=bytes.fromhex(snap.tip),
            work=snap.work,
            agent=AGENT,
            key=self.identity.key.public_key,
            challenge=self.env.entropy(CHALLENGE_BYTES),
        )

    def heartbeat(self, nonce: int, echo: bool) -> m.Heartbeat:
        snap = self.owner.snapshot
        return m.Heartbeat(
            node_id=self.node_id_bytes,
            height=snap.height,
            tip=bytes.fromhex(snap.tip),
            work=snap.work,
            nonce=nonce,
            echo=echo,
        )

    def _on_new_peer(self, conn: Connection) -> None:
        if self.config.discover:
            conn.send_message(m.PeerDiscovery(request=True, peers=[]))
        announce(self.manager, conn)
        self.consensus.on_peer_work(conn)
        self.spawn(self.intake.offer_mempool, conn)

    # ------------------------------------------------------------- tasks

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start a background task under the root nursery (e.g. fetching an orphan's parents)."""
        if self._nursery is not None and not self.stopping:
            self._nursery.start_soon(fn, *args)

    def stop(self) -> None:
        self._stop.set()

    def crash(self) -> None:
        """Die as under ``kill -9`` (the simulator's crash): every task is cancelled at its next
        checkpoint and the shutdown flush is skipped, so only what was committed survives."""
        self.crashed = True
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def reward_address(self, name_or_address: str | None) -> bytes:
        """An address, a wallet name, or (None/"") the node's own wallet, created on first use."""
        if name_or_address:
            return self.wallets.resolve(name_or_address)
        try:
            return self.wallets.load(NODE_WALLET).address
        except WalletError:
            return self.wallets.new(NODE_WALLET).address

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until ``stop()`` (or a signal); returns after a clean shutdown."""
        config = self.config
        try:  # from here on, _close() releases the data dir lock whatever fails
            self.manager.load()
            for host, port in config.peers:
                self.manager.add_seed(format_hostport(host, port))
            mining_address = self.mining_address
            async with trio.open_nursery() as root:
                self._nursery = root
                await root.start(self.owner.run)
                self.manager.nursery = await root.start(_nursery_host)
                self.listen_address = await root.start(self._listen)
                self.listen_port = int(self.listen_address.rsplit(":", 1)[1])
                if self.env.control:  # before "listening": a script may run a verb right after it
                    from trionode.control.server import serve_control

                    await root.start(serve_control, self)
                self.log.info(
                    "node_started",
                    network=self.network.hex(),
                    height=self.chain.height,
                    tip=self.chain.main[-1].hex(),
                    data_dir=str(self.data_dir),
                    agent=AGENT,
                )
                self.log.info("listening", address=self.listen_address)
                self.started = True
                root.start_soon(dial_loop, self.manager)
                root.start_soon(heartbeat_loop, self.manager)
                root.start_soon(self.manager.saver)
                root.start_soon(self.consensus.loop)
                if mining_address is not None:
                    root.start_soon(self.miner.run, mining_address)
                if self.env.signals:
                    root.start_soon(self._watch_signals)
                task_status.started(self.listen_address)
                await self._stop.wait()
                await self._shutdown()
                root.cancel_scope.cancel()
        finally:
            self._close()

    async def _listen(self, *, task_status: trio.TaskStatus[str]) -> None:
        assert self.manager.nursery is not None
        with self._listener_scope:
            await self.env.transport.listen(
                self.config.listen_host,
                self.config.listen_port,
                self.manager.handle_inbound,
                self.manager.nursery,
                task_status=task_status,
            )

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                self.log.info("signal_received", signal=signal.Signals(signum).name)
                self.stop()
                return

    async def _shutdown(self) -> None:
        """Stop accepting, say goodbye, give connections a bounded drain."""
        self.stopping = True
        self.manager.stopping = True
        self._listener_scope.cancel()
        for conn in [*self.manager.connections.values(), *self.manager.handshaking]:
            conn.close("shutdown", m.Error(code=SHUTDOWN, reason="node is stopping"))
        with trio.move_on_after(SHUTDOWN_DRAIN):
            await self.manager.wait_all_closed()

    def _close(self) -> None:
        """Flush peers.json and the chain store; runs however the node ended."""
        if self.crashed:  # what the OS does for a killed process: close the files, flush nothing
            self.chain.store.rollback()
            self.chain.store.close()
            self._unlock()
            return
        try:
            self.manager.save_if_needed(force=True)
            self.manager.bans.save()
        except OSError as exc:
            self.log.error("state_file_write_failed", detail=str(exc))
        try:
            self.chain.commit()
            self.chain.store.close()
        finally:
            if self.started:  # a node that never started (port in use) did not stop either
                self.log.info("node_stopped", height=self.chain.height, tip=self.chain.main[-1].hex())
            if self.env.control:
                try:
                    (self.data_dir / SOCKET_NAME).unlink(missing_ok=True)
                except OSError:
                    pass
            self._unlock()


async def _nursery_host(*, task_status: trio.TaskStatus[trio.Nursery]) -> None:
    """Holds the connections' nursery open until the root nursery is cancelled."""
    async with trio.open_nursery() as nursery:
        task_status.started(nursery)
        await trio.sleep_forever()
