"""A scripted peer for runtime tests, and chains made for it to serve.

``FakePeer`` is one connection to a node speaking the wire protocol from ``trionode.wire``
(the node's own handshake state machine), so a test controls exactly what the node is told
and when; ``open_peer`` dials a node with one. ``build_chain`` and ``bad_pow_block`` mine
blocks for such a peer to send.
"""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from tests.runtime.harness import PARAMS, scripted_identity, wall
from trionode.chain.block import Block
from trionode.chain.params import ChainParams
from trionode.chain.pow import meets_target, search
from trionode.chain.store import Store
from trionode.chain.tree import Chain
from trionode.node.app import Node
from trionode.sim.network import SimNetwork
from trionode.wire import messages as m
from trionode.wire.framing import FrameDecoder
from trionode.wire.handshake import Handshake
from trionode.wire.identity import NodeIdentity

REWARD_TO = bytes(20)


class FakePeer:
    """One scripted connection to a node: sends what the test says, records what it gets.

    ``run`` reads frames until the node closes the connection; a ``Heartbeat`` request is
    echoed (as an honest peer would) unless ``echo`` is False.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        identity: NodeIdentity,
        clock: Callable[[], float] = wall,
        echo: bool = True,
    ) -> None:
        self.stream = stream
        self.identity = identity
        self.node_id = identity.node_id
        self.clock = clock
        self.echo = echo
        self.received: list[tuple[float, m.Envelope]] = []
        self.closed = trio.Event()
        self._changed = trio.Event()
        self._sending = trio.Lock()
        self.work = 0
        self.height = 0
        self.tip = b""

    async def send(self, message: m.Message) -> None:
        async with self._sending:  # the test and the echoing reader may both send
            await self.stream.send_all(m.encode_message(message, self.node_id, self.clock()))

    async def hello(
        self, network: bytes, *, work: int, height: int, tip: bytes, listen_port: int = 0
    ) -> None:
        """The dialler's handshake, by the node's own state machine: our Hello, then (once
        the node's Hello and proof are in, and checked) our proof."""
        self.work, self.height, self.tip = work, height, tip
        handshake = Handshake(
            m.Hello(
                version=m.PROTOCOL_VERSION,
                network=network,
                node_id=self.node_id,
                listen_port=listen_port,
                height=height,
                tip=tip,
                work=work,
                agent="fake-peer/1",
                key=self.identity.key.public_key,
                challenge=bytes(16),
            ),
            outbound=True,
            identity=self.identity,
        )
        for message in handshake.start():
            await self.send(message)
        for kind in ("Hello", "HelloProof"):
            await self.wait_for(kind)
            envelope = next(env for _, env in self.received if env.type == kind)
            result = handshake.receive(envelope)
            assert not result.close, result
            for message in result.send:
                await self.send(message)

    async def heartbeat(self, nonce: int, *, work: int | None = None, height: int | None = None) -> None:
        if work is not None:
            self.work = work
        if height is not None:
            self.height = height
        await self.send(
            m.Heartbeat(
                node_id=self.node_id,
                height=self.height,
                tip=self.tip,
                work=self.work,
                nonce=nonce,
                echo=False,
            )
        )

    async def _echo(self, nonce: int) -> None:
        echo = m.Heartbeat(
            node_id=self.node_id, height=self.height, tip=self.tip, work=self.work, nonce=nonce, echo=True
        )
        try:
            await self.send(echo)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the node is closing: keep reading what it sent before

    async def run(self) -> None:
        decoder = FrameDecoder()
        try:
            while True:
                data = await self.stream.receive_some(1 << 20)
                if not data:
                    break
                for body in decoder.feed(data):
                    envelope = m.decode_message(body)
                    self.received.append((trio.current_time(), envelope))
                    self._changed.set()
                    self._changed = trio.Event()
                    msg = envelope.message
                    if isinstance(msg, m.Heartbeat) and not msg.echo and self.echo:
                        await self._echo(msg.nonce)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self.closed.set()
            self._changed.set()
            await self.stream.aclose()

    def of_type(self, type_name: str) -> list[tuple[float, Any]]:
        return [(t, env.message) for t, env in self.received if env.type == type_name]

    async def wait_for(self, type_name: str, count: int = 1, within: float = 60.0) -> tuple[float, Any]:
        """The ``count``-th message of this type: (trio time it arrived, message)."""
        with trio.fail_after(within):
            while len(self.of_type(type_name)) < count:
                if self.closed.is_set():
                    raise AssertionError(f"closed before {count} {type_name}: {self.received}")
                await self._changed.wait()
        return self.of_type(type_name)[count - 1]


async def open_peer(
    nursery: trio.Nursery,
    net: SimNetwork,
    host: str,
    node: Node,
    peer_id: int,
    *,
    work: int | None = None,
    height: int = 0,
    tip: bytes | None = None,
    hello: bool = True,
    echo: bool = True,
) -> FakePeer:
    """Dial ``node`` from ``host``; with ``hello`` complete the handshake (wait for its Hello)."""
    stream = await net.transport(host).dial(node.config.listen_host, node.config.listen_port)
    peer = FakePeer(stream, scripted_identity(peer_id), echo=echo)
    nursery.start_soon(peer.run)
    if hello:
        await peer.hello(
            node.network,
            work=node.chain.work if work is None else work,
            height=height,
            tip=node.network if tip is None else tip,
        )
    return peer


def build_chain(
    path: Path,
    count: int,
    params: ChainParams = PARAMS,
    *,
    on: Sequence[Block] = (),
    reward_to: bytes = REWARD_TO,
) -> tuple[list[Block], int]:
    """``count`` valid blocks (mined here, stamped with the simulated wall clock, rewards to
    ``reward_to``) on the genesis of ``params``, or on top of the blocks ``on`` (a chain from
    height 1): a branch leaving another chain after ``on[-1]``. Returns the new blocks and the
    chain's cumulative work."""
    chain = Chain(params, Store(path))
    now_ms = int(wall() * 1000)
    for block in on:
        assert chain.add_block(block, now_ms).status == "connected"
    blocks = []
    for i in range(count):
        template = chain.template(reward_to, now_ms + i)
        nonce = search(template.header.prefix(), template.header.target, 0, 1 << 20)
        assert nonce is not None
        block = Block(template.header.with_nonce(nonce), template.txs)
        assert chain.add_block(block, now_ms + i).status == "connected"
        blocks.append(block)
    work = chain.work
    chain.store.close()
    return blocks, work


def bad_pow_block(path: Path) -> Block:
    """A child of genesis, right in every way except that its hash misses the target."""
    chain = Chain(PARAMS, Store(path))
    template = chain.template(REWARD_TO, int(wall() * 1000))
    chain.store.close()
    nonce = 0
    while meets_target(template.header.with_nonce(nonce).block_hash, template.header.target):
        nonce += 1
    return Block(template.header.with_nonce(nonce), template.txs)
