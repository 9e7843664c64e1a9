"""Transaction intake: signed transactions per second accepted and relayed by one node fed by
a peer, beside the single-core Ed25519 verification rate of this machine (the limit).

    python benchmarks/bench_intake.py [--quick] [--txs N] [--runs R] [--profile OUT]

A daemon holds a chain where 50 keys are funded. A feeder peer sends N signed transactions
(round-robin over the keys, consecutive nonces per key: the mempool takes at most 100 pending
from one sender) as fast as the socket takes them; a second peer (the sink) counts the
``NewTransaction`` frames the node relays to it. The rate is N over the time from the first
frame sent to the last one relayed; with R runs (a fresh daemon each), the median.

The daemon logs at info (its default: a ``tx_accepted`` line per transaction) to a file, so
nothing in this process parses its lines while it works. ``--profile OUT`` samples each run's
daemon with py-spy from before the first frame until it stops (``OUT.1``, ``OUT.2``, ...).
"""

import argparse
import tempfile
import time
from pathlib import Path

import trio

from trionode.chain import keys
from trionode.chain.transaction import sign_transaction
from trionode.wire import messages as m

import chaingen
from common import FileLoggedDaemon, Profiler, emit, median
from peerkit import BenchPeer


def verify_rate(n: int = 5_000) -> float:
    key = chaingen.key(0)
    tx = sign_transaction(key, bytes(32), key.address, 1, 0, 0)
    message = tx.signing_bytes(bytes(32))
    start = time.perf_counter()
    for _ in range(n):
        keys.verify(tx.sender, tx.signature, message)
    return n / (time.perf_counter() - start)


# Funded keys of the generated chain (chaingen: one per transaction of a block). The pool
# holds at most 100 pending transactions per sender, so N transactions need N / 100 senders.
SENDERS = 50


async def feed(port: int, network: bytes, count: int, nonces: list[int]) -> float:
    keys_ = [chaingen.key(i) for i in range(SENDERS)]
    sender = await BenchPeer.connect("127.0.0.1", port, network)
    sink = await BenchPeer.connect("127.0.0.1", port, network)
    now = int(time.time() * 1000)
    frames = []
    for i in range(count):
        k = i % SENDERS
        tx = sign_transaction(keys_[k], network, keys_[(k + 1) % SENDERS].address, 1_000, nonces[k], now)
        nonces[k] += 1
        frames.append(sender.frame(m.NewTransaction(tx)))
    done = trio.Event()
    received = 0

    def seen(env: m.Envelope) -> None:
        nonlocal received
        if isinstance(env.message, m.NewTransaction):
            received += 1
            if received >= count:
                done.set()

    sink.on_message = seen
    async with trio.open_nursery() as nursery:

        async def drain(peer: BenchPeer) -> None:
            while True:
                await peer.receive()

        nursery.start_soon(drain, sink)
        nursery.start_soon(drain, sender)
        start = time.perf_counter()
        for i in range(0, count, 256):
            await sender.send(b"".join(frames[i : i + 256]))
        with trio.fail_after(120):
            await done.wait()
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return count / elapsed


def run(count: int, profile: Path | None = None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        node = FileLoggedDaemon("node", Path(tmp), extra="max_peers = 20", log_level="info")
        chaingen.copy_to(3, SENDERS, node.data_dir)
        node.start()
        profiler = None
        try:
            network = bytes.fromhex(node.status()["network"])
            # Each sender's next nonce, as the node says (before anything is timed).
            nonces = [
                node.call("balance", address=chaingen.key(i).address.hex())["next_nonce"]
                for i in range(SENDERS)
            ]
            if profile is not None:
                assert node.proc is not None
                profiler = Profiler(node.proc.pid, profile)
            return trio.run(feed, node.port, network, count, nonces)
        finally:
            node.stop()
            if profiler is not None:
                profiler.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--txs", type=int, default=4_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="py-spy raw output of each run's daemon: OUT.1, ...")
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    count = 1_000 if args.quick else args.txs
    if count > 100 * SENDERS:
        parser.error(f"--txs at most {100 * SENDERS}: the pool holds 100 pending per sender")
    limit = median([verify_rate() for _ in range(3)])
    outs = [
        args.profile.with_name(f"{args.profile.name}.{i + 1}") if args.profile else None for i in range(runs)
    ]
    rates = [run(count, out) for out in outs]
    rate = median(rates)
    if runs > 1:
        print("intake of each run: " + ", ".join(f"{r:,.0f}" for r in rates) + " tx/s")
    print(f"Ed25519 verify, 1 core: {limit:,.0f}/s")
    print(f"intake (accepted + relayed): {rate:,.0f} tx/s = {rate / limit:.0%} of one core's verify rate")
    emit(
        "intake",
        {
            "txs": count,
            "runs": runs,
            "tx_per_s": round(rate),
            "verify_per_s": round(limit),
            "ratio": round(rate / limit, 3),
        },
    )


if __name__ == "__main__":
    main()
