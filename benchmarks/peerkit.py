"""A minimal trio peer for benchmarks: dial a node, shake hands, send and count frames.

Uses trionode's own wire classes (benchmarks measure the node, not the encoder).
"""

import os
import time
from collections.abc import Callable

import trio

from trionode.chain.keys import KeyPair
from trionode.wire import messages as m
from trionode.wire.framing import FrameDecoder
from trionode.wire.handshake import Handshake
from trionode.wire.identity import NodeIdentity


class BenchPeer:
    def __init__(self, stream: trio.abc.Stream, network: bytes) -> None:
        self.stream = stream
        self.network = network
        self.identity = NodeIdentity(KeyPair.generate())
        self.node_id = self.identity.node_id
        self.decoder = FrameDecoder()
        self.peer_hello: m.Hello | None = None
        self.counts: dict[str, int] = {}
        self.on_message: Callable[[m.Envelope], None] | None = None
        self._send_lock = trio.Lock()  # the reader answers heartbeats while others send

    @classmethod
    async def connect(cls, host: str, port: int, network: bytes, listen_port: int = 0) -> "BenchPeer":
        peer = cls(await trio.open_tcp_stream(host, port), network)
        await peer.hello(listen_port)
        return peer

    async def send(self, data: bytes) -> None:
        async with self._send_lock:
            await self.stream.send_all(data)

    def frame(self, message: m.Message) -> bytes:
        return m.encode_message(message, self.node_id, time.time())

    async def hello(self, listen_port: int = 0) -> None:
        """The dialler's handshake: Hello, then the node's Hello and HelloProof, then ours."""
        key = self.identity.key.public_key
        hello = m.Hello(
            1, self.network, self.node_id, listen_port, 0, self.network, 0, "bench", key, os.urandom(16)
        )
        handshake = Handshake(hello, outbound=True, identity=self.identity)
        for message in handshake.start():
            await self.send(self.frame(message))
        while not handshake.complete:
            for env in await self.receive():
                result = handshake.receive(env)
                if result.close:
                    raise EOFError(f"handshake refused: {result.reject or result.peer_error}")
                for message in result.send:
                    await self.send(self.frame(message))
        self.peer_hello = handshake.peer_hello

    async def receive(self) -> list[m.Envelope]:
        data = await self.stream.receive_some(1 << 20)
        if not data:
            raise EOFError("node closed the connection")
        envs = [m.decode_message(body) for body in self.decoder.feed(data)]
        for env in envs:
            self.counts[env.type] = self.counts.get(env.type, 0) + 1
            if isinstance(env.message, m.Heartbeat) and not env.message.echo:
                await self.send(
                    self.frame(m.Heartbeat(self.node_id, 0, self.network, 0, env.message.nonce, True))
                )
            if self.on_message is not None:
                self.on_message(env)
        return envs
