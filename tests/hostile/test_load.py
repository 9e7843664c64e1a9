"""Load attacks on a real daemon (p2p_invalid_messages' resource exhaustion, eclipse floods,
slow readers). Throughout, the daemon keeps an outbound link to a second daemon and an
honest inbound peer whose heartbeats must be answered within 2 s.
"""

import os
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.hostile.daemons import PARAMS, Node
from tests.hostile.encoder import (
    COIN,
    FrameReader,
    Key,
    heartbeat,
    hello,
    hello_proof,
    message,
    node_id_of,
    request_chain,
    transaction,
    txid,
)
from tests.hostile.expect import chain_of, established, mine_on, relayed, still_connected
from tests.hostile.peer import Peer, count

# The answer time an honest peer must keep getting while the node is under attack.
RESPONSIVE = 2.0


@dataclass
class Site:
    node: Node
    neighbour: Node  # dialled by ``node``: its outbound link
    honest: Peer  # an inbound peer


@pytest.fixture(scope="module")
def site(spawn: Callable[..., Node]) -> Site:
    neighbour = spawn("neighbour")
    node = spawn("load", peers=(neighbour.address,))
    node.wait_for("peer_connected", peer=neighbour.node_id())
    return Site(node, neighbour, established(node))


def vm(node: Node, key: str) -> int:
    """VmRSS / VmHWM of the daemon in kB."""
    assert node.proc is not None
    with open(f"/proc/{node.proc.pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(key)


def link_intact(site: Site) -> None:
    neighbour_id = site.neighbour.node_id()
    assert not site.node.matching("peer_disconnected", peer=neighbour_id)
    assert any(p["node_id"] == neighbour_id and p["connected"] for p in site.node.control("peers"))


class Pinger:
    """Pings ``peer`` in a loop until stopped; remembers the slowest answer."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.rtts: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):  # 20 pings a second
            self.rtts.append(self.peer.ping(timeout=30))

    def __enter__(self) -> "Pinger":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


def test_80_junk_frames_of_4_mib_leave_other_peers_answered_within_2_s(site: Site) -> None:
    node = site.node
    junk_peer = established(node)
    # An unknown type with a payload of 64 strings of 65,000 bytes: a valid frame of 4.16 MB,
    # to be read, decoded and ignored (the peer may stay: unknown types are not errors).
    junk = message("Junk", {"junk": ["b" * 65_000] * 64}, junk_peer.node_id)
    assert 4_100_000 < len(junk) <= 4 + 4 * 1024 * 1024
    hwm = vm(node, "VmHWM")

    def send_junk() -> None:
        for _ in range(80):
            junk_peer.send_raw(junk, bad="load: 4 MiB junk frame")

    sender = threading.Thread(target=send_junk)
    with Pinger(site.honest) as pinger:
        start = time.monotonic()
        sender.start()
        sender.join(300)
        junk_peer.ping(timeout=120)  # all read and ignored, and the peer is still there
        took = time.monotonic() - start
    assert not sender.is_alive()
    assert len(pinger.rtts) >= took / 0.1 and max(pinger.rtts) < RESPONSIVE, (took, pinger.rtts)
    unknown = node.wait_until(
        lambda: len(node.matching("unknown_message", peer=junk_peer.node_id)) == 80 or None,
        what="80 unknown_message lines",
    )
    assert unknown
    assert vm(node, "VmHWM") - hwm < 200_000, "junk frames are not kept"
    still_connected(node, junk_peer)
    link_intact(site)
    junk_peer.close()


# The node key of each flooding socket that said Hello: ``outcomes`` answers the node's
# HelloProof with it, so the ones the node admits complete their handshake.
FLOOD_KEYS: dict[socket.socket, Key] = {}
FLOOD_HELLOS: dict[socket.socket, dict[str, Any]] = {}


def open_many(address: str, n: int, say_hello: bool) -> list[socket.socket]:
    host, port = address.rsplit(":", 1)
    socks = []
    for _ in range(n):
        sock = socket.create_connection((host, int(port)), timeout=10)
        socks.append(sock)
    if say_hello:
        for sock in socks:
            key = FLOOD_KEYS[sock] = Key()
            node_id = node_id_of(key.public)
            ours = FLOOD_HELLOS[sock] = hello(PARAMS, node_id, key=key.public, challenge=bytes(16))
            sock.sendall(message("Hello", ours, node_id))
    return socks


@dataclass
class Outcome:
    closed: dict[str, int] = field(default_factory=dict)  # by the code of the node's Error
    greeted: int = 0  # of those, how many got the node's Hello first
    silent: list[socket.socket] = field(default_factory=list)  # still open, no answer


def outcomes(socks: list[socket.socket], within: float) -> Outcome:
    """How the node ended each connection within ``within`` s (these sockets never answer)."""
    result = Outcome()
    selector = selectors.DefaultSelector()
    readers: dict[socket.socket, tuple[FrameReader, list[dict[str, Any]]]] = {}
    for sock in socks:
        sock.setblocking(False)
        readers[sock] = (FrameReader(), [])
        selector.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + within
    while readers and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.2):
            assert isinstance(key.fileobj, socket.socket)
            sock = key.fileobj
            reader, got = readers[sock]
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            got.extend(reader.feed(data))
            key = FLOOD_KEYS.get(sock)
            theirs = [env["payload"] for env in got if env["type"] == "Hello"]
            if data and key is not None and theirs and any(env["type"] == "HelloProof" for env in got):
                ours = node_id_of(key.public)
                proof = hello_proof(key, PARAMS.network, "dialer", FLOOD_HELLOS[sock], theirs[0])
                sock.setblocking(True)
                sock.sendall(message("HelloProof", proof, ours))
                sock.setblocking(False)
                del FLOOD_KEYS[sock]  # answered once
            if data:
                continue
            codes = [env["payload"]["code"] for env in got if env["type"] == "Error"]
            code = codes[0] if codes else "no error"
            result.closed[code] = result.closed.get(code, 0) + 1
            result.greeted += any(env["type"] == "Hello" for env in got)
            selector.unregister(sock)
            del readers[sock]
    result.silent = list(readers)
    selector.close()
    return result


def test_500_connections_at_once_cannot_take_the_outbound_slots(site: Site) -> None:
    node = site.node
    count("load: connection flood (with Hello)", 500)
    with Pinger(site.honest) as pinger:
        socks = open_many(node.address, 500, say_hello=True)
        result = outcomes(socks, within=10)
    try:
        assert not result.silent, f"{len(result.silent)} connections were never closed"
        # max_peers 10 keeps 5 slots for outbound: at most 5 inbound, the honest peer is one.
        # Those let in never answer a heartbeat, so they are dropped after 3 s (``timeout``);
        # the rest are refused, some at once, some after their Hello (protocol.md 5).
        admitted = result.closed.get("timeout", 0)
        assert 1 <= admitted <= 4, result
        assert result.closed == {"too_many_peers": 500 - admitted, "timeout": admitted}, result
        assert max(pinger.rtts) < RESPONSIVE
        link_intact(site)
    finally:
        for sock in socks:
            sock.close()
    newcomer = established(node)  # the slots came back
    still_connected(node, newcomer)
    newcomer.close()


def test_500_silent_connections_hold_at_most_64_slots_for_10_s(site: Site) -> None:
    node = site.node
    count("load: connection flood (silent)", 500)
    with Pinger(site.honest) as pinger:
        start = time.monotonic()
        socks = open_many(node.address, 500, say_hello=False)
        refused_at_once = outcomes(socks, within=3)
        held = refused_at_once.silent
        timed_out = outcomes(held, within=15)
        took = time.monotonic() - start
    try:
        assert 1 <= len(held) <= 64
        assert refused_at_once.closed == {"too_many_peers": 500 - len(held)}
        assert timed_out.closed == {"handshake_timeout": len(held)} and not timed_out.silent
        assert 10 <= took < 20
        assert max(pinger.rtts) < RESPONSIVE
        link_intact(site)
    finally:
        for sock in socks:
            sock.close()
    newcomer = established(node)
    still_connected(node, newcomer)
    newcomer.close()


# Senders of the transactions relayed while a slow reader is being dropped, taken in turn: a
# node keeps at most 100 pending per sender (protocol.md 10, "The mempool"), and the loop may
# run for hundreds of transactions.
RELAY_SENDERS = 20


@dataclass
class Funded:
    big: Key  # sent the 15,000 transactions of the big chain: its next nonce is 15,000
    relay: list[Key]  # 50 coins each, nothing sent yet


@pytest.fixture(scope="module")
def big_chain(site: Site) -> Iterator[Funded]:
    """Three blocks of 5,000 transactions: a RequestChain from genesis costs ~2 MB to answer."""
    funder = established(site.node)
    view = chain_of(funder)
    key = Key()
    for _ in range(2):
        mine_on(site.node, funder, view, key.address)
    relay = [Key() for _ in range(RELAY_SENDERS)]
    for sender in relay:
        mine_on(site.node, funder, view, sender.address)
    for block in range(3):
        txs = [transaction(key, PARAMS.network, os.urandom(20), 1, block * 5_000 + i) for i in range(5_000)]
        mine_on(site.node, funder, view, os.urandom(20), txs)
    funder.close()
    yield Funded(key, relay)


def test_a_peer_that_never_reads_is_dropped_while_others_keep_relaying(site: Site, big_chain: Funded) -> None:
    node = site.node
    senders = [(big_chain.big, 15_000), *((sender, 0) for sender in big_chain.relay)]
    sent_by: dict[bytes, int] = {}  # sender address -> transactions relayed
    relayer = established(node)
    hwm = vm(node, "VmHWM")
    # A tiny receive window, and then it never reads again; it keeps asking for the chain
    # (each answer ~2 MB) and keeps talking, so the heartbeat timeout does not save the node.
    sloth = node.peer(read=False, rcvbuf=4096)
    sloth.handshake_unread()
    for _ in range(400):
        sloth.send("RequestChain", request_chain([]), bad="load: chain request never read")
    latencies: list[float] = []
    deadline = time.monotonic() + 60
    while not node.matching("peer_disconnected", peer=sloth.node_id):
        assert time.monotonic() < deadline, "the peer that never reads was not dropped"
        try:
            sloth.send("Heartbeat", heartbeat(PARAMS, sloth.node_id, len(latencies), False))
        except OSError:
            pass  # the node closed it: the loop ends on the log line
        key, first = senders[len(latencies) % len(senders)]
        nonce = first + sent_by.get(key.address, 0)
        sent_by[key.address] = sent_by.get(key.address, 0) + 1
        tx = transaction(key, PARAMS.network, os.urandom(20), COIN // 100, nonce)
        sent = time.monotonic()
        relayer.send("NewTransaction", {"tx": tx})
        relayed(site.honest, txid(tx))
        latencies.append(time.monotonic() - sent)
    # Dropped either way protocol.md allows: with 8 MiB queued for it the node stops reading
    # it (8.2, backpressure), so its own heartbeats go unread and it is silent for 3 intervals
    # (`timeout`), long before 32 MiB or 30 s of unread frames would make it a `slow_reader`.
    reason = node.matching("peer_disconnected", peer=sloth.node_id)[0]["reason"]
    assert reason in ("timeout", "slow_reader"), reason
    assert max(latencies) < RESPONSIVE, latencies
    # 400 answers of ~2 MB were asked for; the node held a bounded part of them.
    assert vm(node, "VmHWM") - hwm < 150_000, f"peak memory grew by {vm(node, 'VmHWM') - hwm} kB"
    still_connected(node, relayer)
    still_connected(node, site.honest)
    link_intact(site)
    sloth.close()
    relayer.close()


def test_the_node_survived(site: Site) -> None:
    assert site.node.alive and not site.node.matching("peer_task_failed")
    assert site.node.control("validate")["valid"] is True


def test_sigterm_exits_within_5_s_while_a_peer_does_not_read(site: Site, big_chain: Funded) -> None:
    """INTERFACE: a clean shutdown exits 0 within 5 s, even with a writer stuck on a full socket."""
    node = site.node
    sloth = node.peer(read=False, rcvbuf=4096)
    sloth.handshake_unread()
    for _ in range(8):  # ~16 MB of answers: the node's writer to it blocks on a full socket
        sloth.send("RequestChain", request_chain([]), bad="load: chain request never read")
    node.wait_for("peer_connected", peer=sloth.node_id)
    started = time.monotonic()
    assert node.stop(timeout=10) == 0  # SIGTERM, then its exit
    assert time.monotonic() - started < 5.0
    assert node.matching("node_stopped")
    sloth.close()
