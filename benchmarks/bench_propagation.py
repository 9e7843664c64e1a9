"""Block propagation: from a block being mined to every node having accepted it.

    python benchmarks/bench_propagation.py [--quick] [--topology line|graph|both] [--runs R]
        [--blocks N] [--profile OUT]

Real daemons on 127.0.0.1 (discovery off, so the topology stays as built): a 20-node line, and
a 50-node random graph where each node dials 2-4 random earlier nodes (seed 7). Node 0 mines
20 blocks (N) one after another; each block's latency is the time from its ``block_mined`` line
on node 0 to the last ``block_accepted`` line for it on any node, all read from the nodes' own
log timestamps (one machine, one clock). Prints p50 and p95 over the blocks; with R runs
(fresh networks each), the median of each figure. ``--profile OUT`` samples the middle node of
the line with py-spy while the blocks propagate and writes its raw stacks to OUT (latencies
of such a run are not figures: py-spy pauses the node at each sample).
"""

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from trionode.control.client import ControlClient

from common import Profiler, emit, free_ports, medians, percentile, stamp


def topology(kind: str, n: int, rng: random.Random) -> list[list[int]]:
    """For each node, the earlier nodes it dials."""
    if kind == "line":
        return [[i - 1] if i else [] for i in range(n)]
    return [sorted(rng.sample(range(i), min(i, rng.randint(2, 4)))) if i else [] for i in range(n)]


class Node:
    """A daemon that logs to a file, not a pipe: nothing in this process parses its lines
    while a block propagates (that CPU would be charged to the network)."""

    def __init__(self, root: Path, i: int, port: int, peers: list[int]) -> None:
        self.data_dir = root / f"n{i}"
        self.log = root / f"n{i}.log"
        config = root / f"n{i}.toml"
        peer_list = ", ".join(f'"127.0.0.1:{p}"' for p in peers)
        config.write_text(
            f'[node]\ndata_dir = "{self.data_dir}"\n'
            f'[p2p]\nlisten = "127.0.0.1:{port}"\npeers = [{peer_list}]\n'
            "discover = false\nmax_peers = 20\noutbound_target = 4\n"
            f'[chain]\ndifficulty = 1\n[log]\nfile = "{self.log}"\n'
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trionode", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._offset = 0
        self.events: list[dict[str, object]] = []

    def poll(self) -> None:
        if not self.log.exists():
            return
        with self.log.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        self.events += [json.loads(line) for line in complete.splitlines()]

    def find(self, event: str, **fields: object) -> dict[str, object] | None:
        self.poll()
        for e in self.events:
            if e["event"] == event and all(e.get(k) == v for k, v in fields.items()):
                return e
        return None

    def count(self, event: str, **fields: object) -> int:
        self.poll()
        return sum(
            1 for e in self.events if e["event"] == event and all(e.get(k) == v for k, v in fields.items())
        )


def wait(probe: Callable[[], object], timeout: float, what: str) -> object:
    """Poll log files (a benchmark harness, not a test: a short sleep between looks is fine)."""
    deadline = time.monotonic() + timeout
    while (value := probe()) is None or value is False:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout} s")
        time.sleep(0.02)
    return value


def run(kind: str, n: int, blocks: int, profile: Path | None = None) -> dict[str, float]:
    dials = topology(kind, n, random.Random(7))
    ports = free_ports(n)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        nodes = [Node(root, i, ports[i], [ports[j] for j in dials[i]]) for i in range(n)]
        profiler = None
        try:
            for i, node in enumerate(nodes):  # every dial of the topology is up
                wait(
                    lambda node=node, i=i: (
                        node.count("peer_connected", direction="outbound") >= len(dials[i])
                    ),
                    60,
                    "topology connections",
                )
            profiler = Profiler(nodes[n // 2].proc.pid, profile) if profile else None
            latencies = []
            with ControlClient(nodes[0].data_dir) as control:
                for _ in range(blocks):
                    block_hash = control.call("mine")["hash"]
                    start = stamp(
                        wait(lambda h=block_hash: nodes[0].find("block_mined", hash=h), 30, "block_mined")
                    )
                    last = max(
                        stamp(
                            wait(
                                lambda node=node, h=block_hash: node.find("block_accepted", hash=h),
                                30,
                                "acceptance",
                            )
                        )
                        for node in nodes
                    )
                    latencies.append((last - start) * 1000)
        finally:
            for node in nodes:
                node.proc.kill()
                node.proc.wait()
            if profiler:
                profiler.wait()
    return {
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "max_ms": max(latencies),
    }


def measure(kind: str, n: int, blocks: int, runs: int, profile: Path | None) -> dict[str, float]:
    """The median of each figure over ``runs`` networks."""
    # Only the first run is profiled (one file).
    results = [run(kind, n, blocks, profile if kind == "line" and i == 0 else None) for i in range(runs)]
    for r in results:
        print(
            f"{n}-node {kind}: p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms over {blocks} blocks",
            flush=True,
        )
    mid = medians(results)
    if runs > 1:
        print(f"{n}-node {kind}, median of {runs}: p50 {mid['p50_ms']:.1f} ms, p95 {mid['p95_ms']:.1f} ms")
    return mid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 blocks, a 10-node line and a 15-node graph")
    parser.add_argument("--topology", choices=["line", "graph", "both"], default="both")
    parser.add_argument("--runs", type=int, default=1, help="repeat, report the median of each figure")
    parser.add_argument("--blocks", type=int, help="blocks per network (default 20, quick 5)")
    parser.add_argument("--profile", type=Path, help="py-spy raw output of the line's middle node")
    args = parser.parse_args()
    blocks = args.blocks or (5 if args.quick else 20)
    line_n, graph_n = (10, 15) if args.quick else (20, 50)
    figures: dict[str, float] = {}
    if args.topology in ("line", "both"):
        line = measure("line", line_n, blocks, args.runs, args.profile)
        figures.update({f"line{line_n}_{k}": round(v, 2) for k, v in line.items()})
    if args.topology in ("graph", "both"):
        graph = measure("graph", graph_n, blocks, args.runs, None)
        figures.update({f"graph{graph_n}_{k}": round(v, 2) for k, v in graph.items()})
    emit("propagation", {"blocks": blocks, "runs": args.runs, **figures})


if __name__ == "__main__":
    main()
