"""Sync: a fresh node catching up a 10,000-block chain of 10 transactions per block, and the
bytes moved to catch up one block on that chain.

    python benchmarks/bench_sync.py [--quick] [--blocks N] [--txs K] [--runs R]

Two real daemons on 127.0.0.1: the source holds the chain, the fresh node dials it. The time
is read from the fresh node's own log timestamps: from its ``peer_connected`` to the
``sync_progress`` line that reaches the source's height. Then one block of ``K`` transactions
is mined on the source and the bytes the fresh node receives and sends over that link, from
before the first transaction is submitted until its ``block_accepted`` (and 0.2 s more), are
read from ``peers --json``: the ``K`` relayed ``NewTransaction`` frames and the ``NewBlock``.
Heartbeats are set one hour apart on both nodes so that none falls in that window; the
expected size of those frames is computed from the block and printed beside the count.
With R runs, the run of median sync time is reported.
"""

import argparse
import tempfile
import time
from pathlib import Path

from trionode.chain.store import Store
from trionode.chain.transaction import sign_transaction
from trionode.control.client import ControlClient
from trionode.wire import messages as m

import chaingen
from common import Daemon, cli_json, emit, stamp

# Heartbeats one hour apart: none is sent while the catch-up bytes are counted (the Daemon
# helper's 1 s would add a round trip or two to them), and none is needed to stay connected.
QUIET = "heartbeat_interval = 3600\nsync_interval = 5"


# The nodes' default level: at debug the fresh node would log every synced block, and a thread
# of this process would parse those 10,000 lines while the sync is timed.
LOG_LEVEL = "info"


def frame_bytes(data_dir: Path, block_hash: str, sender: bytes) -> tuple[int, int]:
    """Sizes of the frames that carry the block and its transactions: (transactions, block)."""
    store = Store(data_dir / "chain.db", readonly=True)
    try:
        block = store.get_block(bytes.fromhex(block_hash))
    finally:
        store.close()
    assert block is not None
    txs = sum(len(m.encode_message(m.NewTransaction(tx), sender, 0.0)) for tx in block.txs[1:])
    return txs, len(m.encode_message(m.NewBlock(block), sender, 0.0))


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
        source = Daemon("source", root, timings=QUIET)
        chaingen.copy_to(blocks, txs, source.data_dir)
        source.start(log_level=LOG_LEVEL)
        fresh = Daemon("fresh", root, peers=(source.address,), timings=QUIET).start(log_level=LOG_LEVEL)
        try:
            connected = fresh.wait_for("peer_connected", timeout=30)
            done = fresh.wait_until(
                lambda: [e for e in fresh.matching("sync_progress") if e["height"] >= blocks],
                timeout=600,
                what=f"sync to {blocks}",
            )[0]
            seconds = stamp(done) - stamp(connected)
            peer = cli_json("peers", data_dir=fresh.data_dir)[0]
            bytes_in, bytes_out = peer["bytes_in"], peer["bytes_out"]
            fill_mempool(source, txs)
            block_hash = source.call("mine")["hash"]
            fresh.wait_for("block_accepted", height=blocks + 1, timeout=30)
            time.sleep(0.2)  # a frame sent in reply would be counted too
            peer = cli_json("peers", data_dir=fresh.data_dir)[0]
            bytes_in, bytes_out = peer["bytes_in"] - bytes_in, peer["bytes_out"] - bytes_out
            tx_frames, block_frame = frame_bytes(fresh.data_dir, block_hash, bytes.fromhex(peer["node_id"]))
            valid = cli_json("validate", data_dir=fresh.data_dir)["valid"]
        finally:
            fresh.stop()
            source.stop()
    return {
        "seconds": seconds,
        "blocks_per_s": blocks / seconds,
        "catch_up_bytes": bytes_in + bytes_out,
        "catch_up_in": bytes_in,
        "catch_up_out": bytes_out,
        "tx_frames_bytes": tx_frames,
        "block_frame_bytes": block_frame,
        "valid": valid,
    }


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
    if len(results) > 1:
        print("sync seconds of each run: " + ", ".join(f"{r['seconds']:.2f}" for r in results))
    print(
        f"sync of {blocks} blocks x {args.txs} txs: {mid['seconds']:.2f} s ({mid['blocks_per_s']:,.0f} blocks/s)"
    )
    print(
        f"catch-up of one block: {mid['catch_up_bytes']:,} bytes ({mid['catch_up_in']:,} in, "
        f"{mid['catch_up_out']:,} out); its {args.txs} NewTransaction frames {mid['tx_frames_bytes']:,} "
        f"+ NewBlock frame {mid['block_frame_bytes']:,} = {mid['tx_frames_bytes'] + mid['block_frame_bytes']:,}"
    )
    print(f"chain valid after sync: {mid['valid']}")
    emit("sync", {"blocks": blocks, "txs_per_block": args.txs, "runs": len(results), **mid})


if __name__ == "__main__":
    main()
