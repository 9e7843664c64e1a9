"""Wire codec throughput: frames/s encoded and decoded, beside raw msgpack on the same objects.

    python benchmarks/bench_codec.py [--quick] [--decode-block SECONDS]

Two messages: a small Heartbeat and a NewBlock of 100 signed transactions. "encode" is
``encode_message`` (a complete frame); "decode" is ``FrameDecoder.feed`` + ``decode_message``
(every field checked, the typed message built). A transaction's id is hashed on first use,
not while decoding, so for the block "decode + txids" also reads every transaction's id:
what a node pays before it can check the Merkle root of a block it did not have. The raw columns are
``msgpack.packb``/``msgpack.unpackb`` of the same envelope dict: the floor of any msgpack
codec, without validation. Each figure is the median of several timed runs; the last line
is JSON with every figure. ``--decode-block S`` only decodes the 100-transaction block frame
for S seconds, for a profiler: ``py-spy record -r 200 -f raw -o OUT -- python
benchmarks/bench_codec.py --decode-block 20``.
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import msgpack

from trionode.chain.block import Block, BlockHeader
from trionode.chain.keys import KeyPair
from trionode.chain.merkle import merkle_root
from trionode.chain.transaction import Transaction, coinbase, sign_transaction
from trionode.wire.framing import FrameDecoder
from trionode.wire.messages import Heartbeat, Message, NewBlock, decode_message, encode_message, envelope_dict

from common import emit

SENDER = bytes(range(16))
TS = 1_704_067_260.25


def heartbeat() -> Heartbeat:
    return Heartbeat(SENDER, 123_456, bytes(range(32)), 2**80 + 12345, 2**40 + 7, False)


def block_message(n_txs: int = 100) -> NewBlock:
    key = KeyPair(bytes(32))
    network = bytes(range(32))
    txs = [coinbase(key.address, 50 * 10**8, 1, 1_704_067_260_000)]
    txs += [
        sign_transaction(key, network, bytes([i % 256]) * 20, 1000 + i, i, 1_704_067_260_000 + i)
        for i in range(n_txs - 1)
    ]
    header = BlockHeader(1, 1, network, 1_704_067_260_000, merkle_root([t.txid for t in txs]), 2**248 - 1, 42)
    return NewBlock(Block(header, txs))


def rate(fn: Callable[[], Any], number: int, repeats: int) -> float:
    """Median calls per second over ``repeats`` runs of ``number`` calls."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        rates.append(number / (time.perf_counter() - start))
    return statistics.median(rates)


def bench(name: str, msg: Message, number: int, repeats: int) -> dict[str, float]:
    frame = encode_message(msg, SENDER, TS)
    body = frame[4:]
    env = envelope_dict(msg, SENDER, TS)
    assert msgpack.packb(env, use_bin_type=True) == body

    decoder = FrameDecoder()  # one per connection, as in the node

    def decode() -> None:
        (b,) = decoder.feed(frame)
        decode_message(b)

    figures: dict[str, float] = {
        "bytes": float(len(frame)),
        "encode": rate(lambda: encode_message(msg, SENDER, TS), number, repeats),
        "decode": rate(decode, number, repeats),
        "raw_packb": rate(lambda: msgpack.packb(env, use_bin_type=True), number, repeats),
        "raw_unpackb": rate(lambda: msgpack.unpackb(body, raw=False), number, repeats),
    }
    if isinstance(msg, NewBlock):

        def decode_with_txids() -> None:
            (b,) = decoder.feed(frame)
            block = decode_message(b).message.block  # type: ignore[union-attr]
            for tx in block.txs:
                tx.txid  # noqa: B018 (computed and cached on first read)

        figures["decode_txids"] = rate(decode_with_txids, number, repeats)
        print(f"{'':<14} decode + every txid: {figures['decode_txids']:,.0f}/s")
        figures["encode_cold"] = encode_cold(msg, number, repeats)
        print(f"{'':<14} encode, transactions not yet encoded: {figures['encode_cold']:,.0f}/s")
        raw_block = msgpack.unpackb(body, raw=False)["payload"]["block"]
        # The reference decoder's share (chain core): rebuilding the transactions from lists.
        figures["chain_from_wire"] = rate(lambda: Block.from_wire(raw_block), number, repeats)
        print(
            f"{'':<14} Block.from_wire (the reference decoder's chain part): {figures['chain_from_wire']:,.0f}/s"
        )
    print(
        f"{name:<14} {len(frame):>7,} B  encode {figures['encode']:>10,.0f}/s  decode {figures['decode']:>10,.0f}/s"
        f"  | raw packb {figures['raw_packb']:>10,.0f}/s  unpackb {figures['raw_unpackb']:>10,.0f}/s",
        flush=True,
    )
    return figures


def encode_cold(msg: NewBlock, number: int, repeats: int) -> float:
    """Encode rate of blocks whose transactions have not been encoded yet (each is packed and
    its id hashed, then cached): "encode" above reuses one block whose transactions a node
    has already encoded while validating it, as a relayed or mined block has been."""
    rates = []
    for _ in range(repeats):
        fresh = [
            NewBlock(Block(msg.block.header, [Transaction(*_fields(tx)) for tx in msg.block.txs]))
            for _ in range(number)
        ]
        start = time.perf_counter()
        for block in fresh:
            encode_message(block, SENDER, TS)
        rates.append(number / (time.perf_counter() - start))
    return statistics.median(rates)


def _fields(tx: Transaction) -> tuple[bytes, bytes, int, int, int, bytes]:
    return tx.sender, tx.recipient, tx.amount, tx.nonce, tx.timestamp, tx.signature


def bench_batch(number: int, repeats: int) -> dict[str, float]:
    """Frames/s through FrameDecoder alone: 10,000 Heartbeat frames arriving in one piece."""
    stream = encode_message(heartbeat(), SENDER, TS) * 10_000
    per_second = rate(lambda: FrameDecoder().feed(stream), max(1, number // 10_000), repeats) * 10_000
    print(f"{'framing batch':<14} 10,000 frames/piece  split {per_second:>12,.0f} frames/s", flush=True)
    return {"split": per_second}


def decode_block_for(seconds: float) -> None:
    """Decode one 100-transaction block frame again and again (the profiled loop)."""
    frame = encode_message(block_message(), SENDER, TS)
    decoder = FrameDecoder()
    done = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            (body,) = decoder.feed(frame)
            decode_message(body)
        done += 100
    print(f"decoded {done:,} blocks in {seconds:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a few seconds)")
    parser.add_argument(
        "--decode-block", type=float, metavar="SECONDS", help="only decode a block (profiling)"
    )
    args = parser.parse_args()
    if args.decode_block:
        decode_block_for(args.decode_block)
        return 0
    repeats = 3 if args.quick else 7
    results = {
        "heartbeat": bench("Heartbeat", heartbeat(), 5_000 if args.quick else 50_000, repeats),
        "block_100tx": bench("NewBlock 100tx", block_message(), 100 if args.quick else 1_000, repeats),
        "framing_batch": bench_batch(100_000 if args.quick else 1_000_000, repeats),
    }
    emit("codec", {"python": sys.version.split()[0], "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
