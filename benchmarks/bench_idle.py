"""Idle: CPU use of a node with 10 connected peers and nothing happening.

    python benchmarks/bench_idle.py [--quick] [--seconds S] [--runs R]

Eleven daemons with default timings (heartbeat 30 s, sync 60 s); ten of them dial the
measured one. Once all ten are connected, the measured node's utime+stime is read from /proc
over S seconds (default 120, quick 10). With R runs (fresh daemons each), the median of each.
"""

import argparse
import tempfile
import time
from pathlib import Path

from common import Daemon, cpu_seconds, emit, median, rss_mb


def run(seconds: float) -> tuple[float, float]:
    """One measurement: (CPU %, RSS MB) of the hub."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        hub = Daemon("hub", root, extra="max_peers = 20", timings="")  # the node's own timings
        hub.start()
        peers = [
            Daemon(f"p{i}", root, peers=(hub.address,), extra="discover = false", timings="")
            for i in range(10)
        ]
        try:
            for peer in peers:
                peer.start(wait=False)
            hub.wait_until(lambda: len(hub.matching("peer_connected")) >= 10, timeout=60, what="10 peers")
            time.sleep(2)
            assert hub.proc is not None
            pid = hub.proc.pid
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            time.sleep(seconds)
            cpu = 100 * (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
            rss = rss_mb(pid)
        finally:
            for node in [hub, *peers]:
                node.kill()
    print(f"idle node with 10 peers over {seconds:.0f} s: CPU {cpu:.2f}%, RSS {rss:.0f} MB", flush=True)
    return cpu, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--runs", type=int, default=1, help="repeat, report the median of each figure")
    args = parser.parse_args()
    seconds = args.seconds or (10.0 if args.quick else 120.0)
    runs = [run(seconds) for _ in range(args.runs)]
    cpu, rss = median([r[0] for r in runs]), median([r[1] for r in runs])
    if len(runs) > 1:
        print(f"median of {len(runs)}: CPU {cpu:.2f}%, RSS {rss:.0f} MB")
    emit(
        "idle",
        {
            "seconds": seconds,
            "runs": len(runs),
            "cpu_percent": round(cpu, 3),
            "rss_mb": round(rss, 1),
            "each": [{"cpu_percent": round(c, 3), "rss_mb": round(r, 1)} for c, r in runs],
        },
    )


if __name__ == "__main__":
    main()
