"""Scale: one node with 1,000 connected light peers heartbeating at 1 s.

    python benchmarks/bench_scale.py [--quick] [--peers N] [--seconds S] [--runs R] [--bare]

A daemon (heartbeat_interval 1, max_peers above N, logging at warning to a file) and, in this
process, a load generator of N light peers on loopback: each completes the handshake, answers
the node's heartbeats, and sends its own every second, timing the node's echo. Reported after
all peers are connected, over S seconds: the node's RSS (VmRSS), its CPU use (utime+stime from
/proc), and the p50/p99 heartbeat round trip seen by the peers; with R runs, the median of each.

``--bare`` serves the same load with ``bare_heartbeat_server.py`` instead of a node: the
handshake and the heartbeat exchange and nothing else, the limit the node's figures are set
beside.

The node logs at warning (``--node-log-level`` to change it): at debug it would write a
``heartbeat`` line for each of the ~2,000 heartbeats a second, which is logging cost, not the
cost of serving peers.
"""

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

from trionode.wire import messages as m

from common import FileLoggedDaemon, cpu_seconds, emit, medians, percentile, rss_mb
from peerkit import BenchPeer


async def load(port: int, network: bytes, peers: int, seconds: float, pid: int) -> dict[str, float]:
    rtts: list[float] = []
    measuring = False
    connected = 0
    all_up = trio.Event()

    async def light_peer(i: int) -> None:
        nonlocal connected
        for _attempt in range(20):
            try:
                peer = await BenchPeer.connect("127.0.0.1", port, network)
                break
            except (OSError, EOFError, trio.BrokenResourceError):
                await trio.sleep(0.2 + random.random())
        else:
            raise RuntimeError(f"peer {i} could not connect")
        connected += 1
        if connected == peers:
            all_up.set()
        sent: dict[int, float] = {}

        def on_message(env: m.Envelope) -> None:
            msg = env.message
            if isinstance(msg, m.Heartbeat) and msg.echo and msg.nonce in sent:
                rtt = time.perf_counter() - sent.pop(msg.nonce)
                if measuring:
                    rtts.append(rtt)

        peer.on_message = on_message
        async with trio.open_nursery() as nursery:

            async def reader() -> None:
                while True:
                    await peer.receive()

            nursery.start_soon(reader)
            await trio.sleep(random.random())
            nonce = i << 32
            while True:
                nonce += 1
                sent[nonce] = time.perf_counter()
                await peer.send(peer.frame(m.Heartbeat(peer.node_id, 0, network, 0, nonce, False)))
                await trio.sleep(1.0)

    async with trio.open_nursery() as nursery:
        for i in range(peers):
            nursery.start_soon(light_peer, i)
            if i % 40 == 39:
                await trio.sleep(0.05)  # the node admits at most 64 handshakes at once
        with trio.fail_after(120):
            await all_up.wait()
        await trio.sleep(3)  # let the ramp-up settle
        measuring = True
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        await trio.sleep(seconds)
        cpu1, t1 = cpu_seconds(pid), time.monotonic()
        measuring = False
        figures = {
            "rss_mb": rss_mb(pid),
            "cpu_percent": 100 * (cpu1 - cpu0) / (t1 - t0),
            "rtt_p50_ms": percentile(rtts, 50) * 1000,
            "rtt_p99_ms": percentile(rtts, 99) * 1000,
            "echoes": len(rtts),
        }
        nursery.cancel_scope.cancel()
    return figures


def describe(figures: dict[str, float]) -> str:
    return (
        f"RSS {figures['rss_mb']:.0f} MB, CPU {figures['cpu_percent']:.1f}%, "
        f"heartbeat RTT p50 {figures['rtt_p50_ms']:.1f} ms, p99 {figures['rtt_p99_ms']:.1f} ms"
    )


def run(peers: int, seconds: float, log_level: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        node = FileLoggedDaemon(
            "node",
            Path(tmp),
            extra=f"max_peers = {peers + 50}\noutbound_target = 1\ndiscover = false",
            log_level=log_level,
        )
        node.start()
        try:
            network = bytes.fromhex(node.status()["network"])
            assert node.proc is not None
            figures = trio.run(load, node.port, network, peers, seconds, node.proc.pid)
        finally:
            node.stop()
    print(
        f"{peers} peers heartbeating at 1 s, over {seconds:.0f} s: node {describe(figures)}"
        f" ({figures['echoes']:.0f} echoes)",
        flush=True,
    )
    return figures


def run_bare(peers: int, seconds: float) -> dict[str, float]:
    """The same load against ``bare_heartbeat_server.py`` (the limit)."""
    network = os.urandom(32)
    server = Path(__file__).with_name("bare_heartbeat_server.py")
    proc = subprocess.Popen([sys.executable, str(server), network.hex()], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()  # its first line, once it listens
        if not port.isdigit():
            raise RuntimeError("the bare server did not start")
        figures = trio.run(load, int(port), network, peers, seconds, proc.pid)
    finally:
        proc.kill()
        proc.wait()
    print(
        f"bare server, {peers} peers at 1 s, over {seconds:.0f} s: {describe(figures)}"
        f" ({figures['echoes']:.0f} echoes)",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200 peers for 5 s")
    parser.add_argument("--peers", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--runs", type=int, default=1, help="repeat, report the median of each figure")
    parser.add_argument("--node-log-level", default="warning", help="the node's log level (default warning)")
    parser.add_argument("--bare", action="store_true", help="measure the bare heartbeat server instead")
    args = parser.parse_args()
    peers = args.peers or (200 if args.quick else 1_000)
    seconds = args.seconds or (5.0 if args.quick else 30.0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * peers)), hard))
    if args.bare:
        runs = [run_bare(peers, seconds) for _ in range(args.runs)]
    else:
        runs = [run(peers, seconds, args.node_log_level) for _ in range(args.runs)]
    figures = medians(runs)
    if len(runs) > 1:
        print(f"median of {len(runs)}: {'bare server' if args.bare else 'node'} {describe(figures)}")
    emit(
        "scale",
        {
            "peers": peers,
            "seconds": seconds,
            "runs": len(runs),
            "server": "bare" if args.bare else "node",
            "log_level": args.node_log_level,
            **{k: round(v, 2) for k, v in figures.items()},
            "each": [{k: round(v, 2) for k, v in r.items()} for r in runs],
        },
    )


if __name__ == "__main__":
    main()
