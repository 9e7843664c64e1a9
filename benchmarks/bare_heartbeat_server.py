"""The scale benchmark's limit: the least a trio server must do to keep 1,000 peers heartbeating.

    python benchmarks/bare_heartbeat_server.py NETWORK_HEX

One trio task per connection: the listener's side of the handshake (the same sans-IO state
machine the node uses, so the load generator cannot tell the difference), then a loop that
decodes frames, echoes each ping, and pings the peer every second. No peer table, chain,
logging, limits or relay: what is left of a node when everything but the heartbeat is taken
away. It prints its port once listening, and runs until killed.
"""

import os
import sys
import time

import trio

from trionode.chain.keys import KeyPair
from trionode.wire import messages as m
from trionode.wire.errors import ProtocolError
from trionode.wire.framing import FrameDecoder
from trionode.wire.handshake import Handshake
from trionode.wire.identity import NodeIdentity

IDENTITY = NodeIdentity(KeyPair.generate())


def frame(message: m.Message) -> bytes:
    return m.encode_message(message, IDENTITY.node_id, time.time())


async def serve(stream: trio.SocketStream, network: bytes) -> None:
    hello = m.Hello(
        m.PROTOCOL_VERSION,
        network,
        IDENTITY.node_id,
        0,
        0,
        network,
        0,
        "bare",
        IDENTITY.key.public_key,
        os.urandom(16),
    )
    handshake = Handshake(hello, outbound=False, identity=IDENTITY)
    decoder = FrameDecoder()
    sending = trio.StrictFIFOLock()  # the pinger and the echoes share the stream

    async def send(data: bytes) -> None:
        async with sending:
            await stream.send_all(data)

    try:
        opening = handshake.start()  # nothing, for the listener: it answers the dialler's Hello
        if opening:
            await send(b"".join(map(frame, opening)))
        while not handshake.complete:
            data = await stream.receive_some(1 << 16)
            if not data:
                return
            for body in decoder.feed(data):
                result = handshake.receive(m.decode_message(body))
                if result.send:
                    await send(b"".join(map(frame, result.send)))
                if result.close:
                    return

        async def pinger() -> None:
            nonce = 0
            while True:
                await trio.sleep(1.0)
                nonce += 1
                await send(frame(m.Heartbeat(IDENTITY.node_id, 0, network, 0, nonce, False)))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pinger)
            while True:
                data = await stream.receive_some(1 << 16)
                if not data:
                    nursery.cancel_scope.cancel()
                    return
                for body in decoder.feed(data):
                    msg = m.decode_message(body).message
                    if isinstance(msg, m.Heartbeat) and not msg.echo:
                        echo = m.Heartbeat(IDENTITY.node_id, 0, network, 0, msg.nonce, True)
                        await send(frame(echo))
    except (trio.BrokenResourceError, trio.ClosedResourceError, ProtocolError):
        return  # a peer that left or sent a bad frame: only its connection ends


async def main(network: bytes) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=1024)
    print(listeners[0].socket.getsockname()[1], flush=True)
    await trio.serve_listeners(lambda s: serve(s, network), listeners)


if __name__ == "__main__":
    trio.run(main, bytes.fromhex(sys.argv[1]))
