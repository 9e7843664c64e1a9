"""Loopback link: messages/s and MB/s between two nodes' connection tasks over 127.0.0.1,
beside a bare trio socket sending the same frames one ``send_all`` each (the limit).

    python benchmarks/bench_link.py [--quick]

"trionode" runs two real ``Connection`` objects (handshake, writer task with batched sends,
reader with framing and full message decoding) over a TCP socket pair; the sender queues N
pre-encoded frames, the receiver counts decoded messages. "bare" writes the same frames with
``send_all`` and the receiver only counts bytes. Two frame kinds: a Heartbeat (~250 B) and a
NewBlock of 100 signed transactions (~14 KB).
"""

import argparse
import os
import time

import structlog
import trio
import trio.lowlevel

from trionode.chain.block import Block, BlockHeader
from trionode.chain.keys import KeyPair
from trionode.chain.merkle import merkle_root
from trionode.chain.transaction import coinbase, sign_transaction
from trionode.net.connection import SEND_QUEUE, Connection
from trionode.wire import messages as m
from trionode.wire.identity import NodeIdentity

from common import emit, median

NETWORK = bytes(range(32))


def frames(kind: str, count: int, sender: bytes) -> list[bytes]:
    if kind == "heartbeat":
        return [
            m.encode_message(m.Heartbeat(sender, 10, NETWORK, 2**40, i, False), sender, time.time())
            for i in range(count)
        ]
    key = KeyPair(bytes(32))
    txs = [coinbase(key.address, 50, 1, 0)] + [
        sign_transaction(key, NETWORK, key.address, 1, i, i) for i in range(99)
    ]
    header = BlockHeader(1, 1, NETWORK, 0, merkle_root([t.txid for t in txs]), 2**255, 0)
    frame = m.encode_message(m.NewBlock(Block(header, txs)), sender, time.time())
    return [frame] * count


async def socket_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        accepted: list[trio.SocketStream] = []

        async def accept() -> None:
            accepted.append(await listeners[0].accept())

        nursery.start_soon(accept)
        client = await trio.open_tcp_stream("127.0.0.1", port)
    await listeners[0].aclose()
    return client, accepted[0]


async def bare(kind: str, count: int) -> tuple[float, float]:
    data = frames(kind, count, os.urandom(16))
    total = sum(map(len, data))
    a, b = await socket_pair()
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:

        async def send() -> None:
            for frame in data:
                await a.send_all(frame)

        nursery.start_soon(send)
        got = 0
        while got < total:
            got += len(await b.receive_some(1 << 18))
    elapsed = time.perf_counter() - start
    await a.aclose()
    await b.aclose()
    return count / elapsed, total / elapsed / 1e6


async def ours(kind: str, count: int) -> tuple[float, float]:
    identities = [NodeIdentity(KeyPair.generate()), NodeIdentity(KeyPair.generate())]
    ids = [i.node_id for i in identities]
    data = frames(kind, count, ids[0])
    total = sum(map(len, data))
    a_stream, b_stream = await socket_pair()
    log = structlog.wrap_logger(None, wrapper_class=structlog.make_filtering_bound_logger(50))

    def hello(i: int) -> m.Hello:
        key = identities[i].key.public_key
        return m.Hello(1, NETWORK, ids[i], 0, 0, NETWORK, 0, "bench", key, os.urandom(16))

    a = Connection(
        a_stream, "127.0.0.1:1", True, lambda: hello(0), identities[0], time.time, log, dialed="127.0.0.1:2"
    )
    b = Connection(b_stream, "127.0.0.1:2", False, lambda: hello(1), identities[1], time.time, log)
    received = 0
    done = trio.Event()
    ready = trio.Event()

    async def established(conn: Connection) -> bool:
        if conn is a:
            ready.set()
        return True

    async def on_messages(conn: Connection, envs: list[m.Envelope]) -> None:
        nonlocal received
        received += len(envs)
        if received >= count:
            done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.run, established, on_messages, lambda c, e: None)
        nursery.start_soon(b.run, established, on_messages, lambda c, e: None)
        await ready.wait()
        start = time.perf_counter()
        for i in range(0, count, SEND_QUEUE // 2):
            for frame in data[i : i + SEND_QUEUE // 2]:
                a.send(frame)
            await trio.lowlevel.checkpoint()
            while a._send_q.statistics().current_buffer_used > SEND_QUEUE // 2:
                await trio.lowlevel.checkpoint()
        await done.wait()
        elapsed = time.perf_counter() - start
        a.close("done")
        b.close("done")
    return count / elapsed, total / elapsed / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    runs = 3 if args.quick else 5
    figures: dict[str, float] = {}
    for kind, count in (
        ("heartbeat", 20_000 if args.quick else 100_000),
        ("block100", 500 if args.quick else 3_000),
    ):
        base = [trio.run(bare, kind, count) for _ in range(runs)]
        mine = [trio.run(ours, kind, count) for _ in range(runs)]
        b_msgs, b_mb = median([x[0] for x in base]), median([x[1] for x in base])
        o_msgs, o_mb = median([x[0] for x in mine]), median([x[1] for x in mine])
        print(
            f"{kind:9}: trionode {o_msgs:>10,.0f} msg/s {o_mb:7.1f} MB/s | bare trio {b_msgs:>10,.0f} msg/s "
            f"{b_mb:7.1f} MB/s | {o_msgs / b_msgs:.0%} of bare"
        )
        figures.update(
            {
                f"{kind}_msgs": round(o_msgs),
                f"{kind}_mbps": round(o_mb, 1),
                f"{kind}_bare_msgs": round(b_msgs),
                f"{kind}_ratio": round(o_msgs / b_msgs, 3),
            }
        )
    emit("link", figures)


if __name__ == "__main__":
    main()
