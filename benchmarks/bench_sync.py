"""Sync: a fresh node catching up a 10,000-block chain of 10 transactions per block, and the
bytes moved to catch up one block on that chain.

    python benchmarks/bench_sync.py [--quick] [--blocks N] [--txs K]

Two real daemons on 127.0.0.1: the source holds the chain, the fresh node dials it. The time
is read from the fresh node's own log timestamps: from its ``peer_connected`` to the
``sync_progress`` line that reaches the source's height. Then one block of ``K`` transactions is mined on the
source and the bytes the fresh node receives and sends for it are read from ``peers --json``.
"""

import argparse
import tempfile
import time
from datetime import datetime
from pathlib import Path

from trionode.chain.transaction import sign_transaction
from trionode.control.client import ControlClient

import chaingen
from common import Daemon, cli, cli_json, emit


def stamp(event: dict[str, object]) -> float:
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def fill_mempool(source: Daemon, txs: int) -> None:
    """Queue ``txs`` signed transfers on the source, so the catch-up block is a full one."""
    with ControlClient(source.data_dir) as client:
        network = bytes.fromhex(client.call("status")["network"])
        for i in range(txs):
            key = chaingen.key(i)
            nonce = client.call("balance", address=key.address.hex())["next_nonce"]
            to = chaingen.key((i + 1) % txs).address
            tx = sign_transaction(key, network, to, 1_000, nonce, int(time.time() * 1000))
            client.call("submit", tx=tx.to_wire())


def run(blocks: int, txs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = Daemon("source", root)
        chaingen.copy_to(blocks, txs, source.data_dir)
        source.start()
        fresh = Daemon("fresh", root, peers=(source.address,)).start()
        try:
            connected = fresh.wait_for("peer_connected", timeout=30)
            done = fresh.wait_until(
                lambda: [e for e in fresh.matching("sync_progress") if e["height"] >= blocks],
                timeout=600,
                what=f"sync to {blocks}",
            )[0]
            seconds = stamp(done) - stamp(connected)
            peer = cli_json("peers", data_dir=fresh.data_dir)[0]
            before = peer["bytes_in"] + peer["bytes_out"]
            fill_mempool(source, txs)
            cli("mine", data_dir=source.data_dir)
            fresh.wait_for("block_accepted", height=blocks + 1, timeout=30)
            time.sleep(0.2)  # let the last frames (the echo of our inventory) settle
            peer = cli_json("peers", data_dir=fresh.data_dir)[0]
            catch_up = peer["bytes_in"] + peer["bytes_out"] - before
            valid = cli_json("validate", data_dir=fresh.data_dir)["valid"]
        finally:
            fresh.stop()
            source.stop()
    return {"seconds": seconds, "blocks_per_s": blocks / seconds, "catch_up_bytes": catch_up, "valid": valid}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 blocks instead of 10,000")
    parser.add_argument("--blocks", type=int)
    parser.add_argument("--txs", type=int, default=10)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    blocks = args.blocks or (1_000 if args.quick else 10_000)
    chaingen.cached(blocks, args.txs)
    results = [run(blocks, args.txs) for _ in range(args.runs)]
    results.sort(key=lambda r: r["seconds"])
    mid = results[len(results) // 2]
    print(
        f"sync of {blocks} blocks x {args.txs} txs: {mid['seconds']:.2f} s ({mid['blocks_per_s']:,.0f} blocks/s)"
    )
    print(f"catch-up of one block: {mid['catch_up_bytes']:,} bytes; chain valid after sync: {mid['valid']}")
    emit("sync", {"blocks": blocks, "txs_per_block": args.txs, "runs": len(results), **mid})


if __name__ == "__main__":
    main()
