"""Whole nodes in one trio run, over memory streams, under MockClock: the runtime's test bed."""

import hashlib
import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import trio

from trionode.chain.amounts import COIN
from trionode.chain.keys import KeyPair
from trionode.chain.params import ChainParams
from trionode.chain.transaction import sign_transaction
from trionode.node.app import Environment, Node
from trionode.node.config import NodeConfig
from trionode.node.logging import make_capturing_logger
from trionode.node.workers import InlineSignatureChecker, InlineSolver
from trionode.sim.network import SimNetwork
from trionode.wire import messages as m
from trionode.wire.framing import FrameDecoder
from trionode.wire.handshake import Handshake
from trionode.wire.identity import NodeIdentity

BASE_TIME = 1_800_000_000.0  # simulated wall clock starts here (2027-01-15)
PARAMS = ChainParams(difficulty=1)


class EventSink(list[dict[str, Any]]):
    """Captured log events; ``wait_for`` returns when a matching one has been logged."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = trio.Event()

    def append(self, item: dict[str, Any]) -> None:
        super().append(item)
        self._changed.set()
        self._changed = trio.Event()

    def matching(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        return [e for e in self if e["event"] == event and all(e.get(k) == v for k, v in fields.items())]

    async def wait_for(self, event: str, within: float = 60.0, **fields: Any) -> dict[str, Any]:
        with trio.fail_after(within):
            while True:
                found = self.matching(event, **fields)
                if found:
                    return found[0]
                await self._changed.wait()


async def wait_until(predicate: Callable[[], bool], within: float = 60.0, step: float = 0.05) -> None:
    """For state without a log line: check after each simulated ``step`` (no real time)."""
    with trio.fail_after(within):
        while not predicate():  # noqa: ASYNC110 - polls simulated time; costs no real time
            await trio.sleep(step)


def wall() -> float:
    return BASE_TIME + trio.current_time()


def scripted_identity(n: int) -> NodeIdentity:
    """A fixed node identity for a scripted peer (its node id is its key's, protocol.md 5.1)."""
    return NodeIdentity(KeyPair(hashlib.sha256(f"runtime test peer {n}".encode()).digest()))


async def dial_handshake(
    stream: trio.abc.Stream,
    node: Node,
    identity: NodeIdentity,
    *,
    listen_port: int = 0,
    agent: str = "scripted",
) -> list[m.Envelope]:
    """Complete a handshake with ``node`` as the dialler over a raw ``stream``, with the node's
    own state machine on our side; returns what the node sent after it (read along)."""
    hello = m.Hello(
        m.PROTOCOL_VERSION,
        node.network,
        identity.node_id,
        listen_port,
        0,
        node.network,
        node.chain.work,
        agent,
        identity.key.public_key,
        bytes(16),
    )
    handshake = Handshake(hello, outbound=True, identity=identity)
    for message in handshake.start():
        await stream.send_all(m.encode_message(message, identity.node_id, wall()))
    decoder = FrameDecoder()
    after: list[m.Envelope] = []
    while not handshake.complete:
        data = await stream.receive_some(65536)
        if not data:
            raise AssertionError("the node closed the connection during the handshake")
        for body in decoder.feed(data):
            envelope = m.decode_message(body)
            if handshake.complete:
                after.append(envelope)
                continue
            result = handshake.receive(envelope)
            if result.close:
                raise AssertionError(f"handshake refused: {result.reject or result.peer_error}")
            for message in result.send:
                await stream.send_all(m.encode_message(message, identity.node_id, wall()))
    return after


def make_node(
    net: SimNetwork,
    host: str,
    root: Path,
    *,
    peers: tuple[str, ...] = (),
    seed: int = 0,
    sink: EventSink | None = None,
    **overrides: Any,
) -> Node:
    config = NodeConfig(
        data_dir=root / host,
        listen_host=host,
        listen_port=5001,
        peers=tuple((p.rsplit(":", 1)[0], int(p.rsplit(":", 1)[1])) for p in peers),
        chain=PARAMS,
        heartbeat_interval=5.0,
        sync_interval=20.0,
        outbound_target=4,
    )
    config = replace(config, **overrides)
    rng = random.Random(f"{seed}:{host}")
    env = Environment(
        transport=net.transport(host),
        wall=wall,
        rng=rng,
        entropy=rng.randbytes,
        solver=InlineSolver(),
        signatures=InlineSignatureChecker(),
        control=False,
        signals=False,
    )
    events = sink if sink is not None else EventSink()
    node = Node(config, env, make_capturing_logger(events, clock=wall))
    node.events = events  # type: ignore[attr-defined]
    return node


async def connected_pair(nursery: trio.Nursery, net: SimNetwork, root: Path) -> tuple[Node, Node]:
    """Nodes a (10.0.0.1, configured to dial b) and b (10.0.0.2), running and connected."""
    a = make_node(net, "10.0.0.1", root, peers=("10.0.0.2:5001",))
    b = make_node(net, "10.0.0.2", root)
    await nursery.start(b.run)
    await nursery.start(a.run)
    await events(a).wait_for("peer_connected", peer=b.node_id)
    return a, b


async def run_until_down(node: Node, down: trio.Event, *, task_status: trio.TaskStatus[str]) -> None:
    """``node.run`` for ``nursery.start``, setting ``down`` once it has ended (a crash too)."""
    try:
        await node.run(task_status=task_status)
    finally:
        down.set()


def events(node: Node) -> EventSink:
    sink: EventSink = node.events  # type: ignore[attr-defined]
    return sink


# ----------------------------------------------------------------------------- lines of nodes

ALICE = KeyPair(bytes(31) + b"\x01")
BOB = KeyPair(bytes(31) + b"\x02")


async def mine(node: Node, key: KeyPair = ALICE, count: int = 1) -> None:
    for _ in range(count):
        await node.miner.mine_one(key.address)


async def send(node: Node, key: KeyPair, to: bytes, coins: int) -> bytes:
    nonce = await node.owner.call(lambda c: c.mempool.next_nonce(key.address, c.ledger))
    tx = sign_transaction(key, PARAMS.network, to, coins * COIN, nonce, int(wall() * 1000))
    await node.intake.submit_transaction(tx, None)
    return tx.txid


def tips(*nodes: Node) -> set[str]:
    return {n.owner.snapshot.tip for n in nodes}


async def start_line(
    nursery: trio.Nursery, tmp_path: Path, count: int, **overrides: Any
) -> tuple[SimNetwork, list[Node]]:
    net = SimNetwork()
    nodes = []
    for i in range(count):
        peers = (f"10.0.0.{i}:5001",) if i else ()
        node = make_node(net, f"10.0.0.{i + 1}", tmp_path, peers=peers, discover=False, **overrides)
        await nursery.start(node.run)
        nodes.append(node)
    for i in range(1, count):
        await events(nodes[i]).wait_for("peer_connected", peer=nodes[i - 1].node_id)
    return net, nodes
