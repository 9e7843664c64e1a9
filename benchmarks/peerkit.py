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
from trionode.wire.identity import DIALER, NodeIdentity, Side


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
        challenge = os.urandom(16)
        hello = m.Hello(
            1, self.network, self.node_id, listen_port, 0, self.network, 0, "bench", key, challenge
        )
        await self.send(self.frame(hello))
        proven = False
        while not proven:
            for env in await self.receive():
                if isinstance(env.message, m.Hello):
                    self.peer_hello = env.message
                elif isinstance(env.message, m.HelloProof) and self.peer_hello is not None:
                    theirs = self.peer_hello
                    ours = Side(self.node_id, key, challenge)
                    listener = Side(theirs.node_id, theirs.key, theirs.challenge)
                    proof = self.identity.prove(DIALER, self.network, ours, listener)
                    await self.send(self.frame(m.HelloProof(proof)))
                    proven = True

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
