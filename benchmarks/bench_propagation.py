"""Block propagation: from a block being mined to every node having accepted it.

    python benchmarks/bench_propagation.py [--quick] [--topology line|graph|both]

Real daemons on 127.0.0.1 (discovery off, so the topology stays as built): a 20-node line, and
a 50-node random graph where each node dials 2-4 random earlier nodes (seed 7). Node 0 mines
20 blocks one after another; each block's latency is the time from its ``block_mined`` line
on node 0 to the last ``block_accepted`` line for it on any node, all read from the nodes' own
log timestamps (one machine, one clock). Prints p50 and p95 over the blocks.
"""

import argparse
import random
import socket
import tempfile
import time
from datetime import datetime
from pathlib import Path

from common import Daemon, cli_json, emit, percentile


def free_ports(n: int) -> list[int]:
    sockets = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def stamp(event: dict[str, object]) -> float:
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def topology(kind: str, n: int, rng: random.Random) -> list[list[int]]:
    """For each node, the earlier nodes it dials."""
    if kind == "line":
        return [[i - 1] if i else [] for i in range(n)]
    return [sorted(rng.sample(range(i), min(i, rng.randint(2, 4)))) if i else [] for i in range(n)]


def run(kind: str, n: int, blocks: int) -> dict[str, float]:
    dials = topology(kind, n, random.Random(7))
    ports = free_ports(n)
    extra = "discover = false\nmax_peers = 20\noutbound_target = 4\nheartbeat_interval = 30"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        nodes = [
            Daemon(
                f"n{i}",
                root,
                peers=tuple(f"127.0.0.1:{ports[j]}" for j in dials[i]),
                port=ports[i],
                extra=extra,
            )
            for i in range(n)
        ]
        for node in nodes:
            node.config.write_text(
                node.config.read_text().replace("heartbeat_interval = 1\nsync_interval = 5\n", "")
            )
            node.start(wait=False)
        try:
            for node in nodes:
                node.address = node.wait_for("listening", timeout=60)["address"]
            expected = [len(d) for d in dials]
            for i, node in enumerate(nodes):  # wait until every dial of the topology is up
                node.wait_until(
                    lambda i=i: len(nodes[i].matching("peer_connected", direction="outbound")) >= expected[i],
                    timeout=60,
                    what="topology connections",
                )
            latencies = []
            for _ in range(blocks):
                mined = cli_json("mine", data_dir=nodes[0].data_dir)
                start = stamp(nodes[0].wait_for("block_mined", hash=mined["hash"]))
                last = max(
                    stamp(node.wait_for("block_accepted", hash=mined["hash"], timeout=30)) for node in nodes
                )
                latencies.append((last - start) * 1000)
                time.sleep(0.05)  # let the last relays drain before the next block
        finally:
            for node in nodes:
                node.kill()
    return {
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "max_ms": max(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 blocks, a 10-node line and a 15-node graph")
    parser.add_argument("--topology", choices=["line", "graph", "both"], default="both")
    args = parser.parse_args()
    blocks = 5 if args.quick else 20
    line_n, graph_n = (10, 15) if args.quick else (20, 50)
    figures: dict[str, float] = {}
    if args.topology in ("line", "both"):
        line = run("line", line_n, blocks)
        print(
            f"{line_n}-node line : p50 {line['p50_ms']:.1f} ms, p95 {line['p95_ms']:.1f} ms over {blocks} blocks"
        )
        figures.update({f"line{line_n}_{k}": round(v, 2) for k, v in line.items()})
    if args.topology in ("graph", "both"):
        graph = run("graph", graph_n, blocks)
        print(
            f"{graph_n}-node graph: p50 {graph['p50_ms']:.1f} ms, p95 {graph['p95_ms']:.1f} ms over {blocks} blocks"
        )
        figures.update({f"graph{graph_n}_{k}": round(v, 2) for k, v in graph.items()})
    emit("propagation", {"blocks": blocks, **figures})


if __name__ == "__main__":
    main()
