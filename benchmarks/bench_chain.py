"""Chain-core throughput: block validation, signature checks, proof-of-work hashing.

    python benchmarks/bench_chain.py [--quick]

Builds a chain of blocks holding signed transfers (difficulty 1, so building is quick), then
times, on one core and as the median of several runs:
- adding those blocks to a fresh chain on a temporary SQLite store, committing after each block
  as a node does (all rules: body, signatures, context, ledger), and the same with signatures
  marked as already checked;
- ``check_signatures`` over all their transactions (Ed25519 verifications per second);
- ``pow.search`` (the miner's loop: SHA-256 midstate of the 116-byte prefix, nonce per try)
  beside a bare ``hashlib.sha256`` loop over a 124-byte input.
Prints a readable table, then one JSON line with every figure.
"""

import argparse
import hashlib
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from trionode.chain.block import Block
from trionode.chain.keys import KeyPair
from trionode.chain.params import GENESIS_TIMESTAMP_MS, ChainParams
from trionode.chain.pow import search
from trionode.chain.store import Store
from trionode.chain.transaction import Transaction, sign_transaction
from trionode.chain.tree import Chain
from trionode.chain.validation import check_signatures

from common import emit

PARAMS = ChainParams(difficulty=1)
# A fixed clock a year after genesis: blocks are spaced 1 s apart from genesis and stay far
# below it, so the run never depends on the wall clock.
NOW = GENESIS_TIMESTAMP_MS + 365 * 24 * 3600 * 1000


def solve(block: Block) -> Block:
    start = 0
    while True:
        nonce = search(block.header.prefix(), block.header.target, start, 1 << 16)
        if nonce is not None:
            return Block(block.header.with_nonce(nonce), block.txs)
        start += 1 << 16


def build_blocks(n_blocks: int, txs_per_block: int) -> list[Block]:
    """``txs_per_block`` wallets each mine one block, then ``n_blocks`` of one transfer each."""
    wallets = [KeyPair(hashlib.sha256(b"bench-%d" % i).digest()) for i in range(txs_per_block)]
    with tempfile.TemporaryDirectory() as tmp:
        chain = Chain(PARAMS, Store(Path(tmp) / "build.sqlite"))
        blocks: list[Block] = []

        def mine(reward_to: bytes) -> None:
            template = chain.template(reward_to, chain.tip.header.timestamp + 1000)
            block = solve(template)
            result = chain.add_block(block, NOW)
            assert result.status == "connected", result.error
            chain.commit()
            blocks.append(block)

        for w in wallets:
            mine(w.address)
        for i in range(n_blocks):
            for j, w in enumerate(wallets):
                recipient = wallets[(j + 1) % len(wallets)].address
                tx = sign_transaction(w, PARAMS.network, recipient, 1 + i, i, NOW - 1)
                chain.add_transaction(tx, NOW)
            mine(wallets[i % len(wallets)].address)
            assert len(blocks[-1].txs) == txs_per_block + 1
        chain.store.close()
    return blocks


def time_add(blocks: list[Block], signatures_checked: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        chain = Chain(PARAMS, Store(Path(tmp) / "bench.sqlite"))
        start = time.perf_counter()
        for block in blocks:
            result = chain.add_block(block, NOW, signatures_checked=signatures_checked)
            chain.commit()
            if result.status != "connected":
                raise RuntimeError(f"block {block.height}: {result.status} {result.error}")
        elapsed = time.perf_counter() - start
        chain.store.close()
    return elapsed


def time_signatures(txs: list[Transaction]) -> float:
    start = time.perf_counter()
    check_signatures(txs, PARAMS.network)
    return time.perf_counter() - start


def time_search(count: int) -> float:
    prefix = PARAMS.genesis.header.prefix()
    start = time.perf_counter()
    assert search(prefix, 0, 0, count) is None  # target 0: never hit, so exactly ``count`` tries
    return time.perf_counter() - start


def time_bare_sha256(count: int) -> float:
    data = PARAMS.genesis.header.serialize()
    assert len(data) == 124
    sha = hashlib.sha256
    start = time.perf_counter()
    for _ in range(count):
        sha(data).digest()
    return time.perf_counter() - start


def median_rate(work: float, runs: int, fn: Callable[[], float]) -> float:
    """Median over ``runs`` of ``work`` units per second."""
    return statistics.median(work / fn() for _ in range(runs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer blocks, hashes and runs (a smoke run)")
    args = parser.parse_args(argv)
    n_blocks, txs_per_block = (40, 10) if args.quick else (200, 10)
    hashes = 100_000 if args.quick else 1_000_000
    runs = 3 if args.quick else 5

    t0 = time.perf_counter()
    blocks = build_blocks(n_blocks, txs_per_block)
    build_s = time.perf_counter() - t0
    user_txs = [tx for block in blocks for tx in block.txs[1:]]

    full = median_rate(len(blocks), runs, lambda: time_add(blocks, signatures_checked=False))
    no_sig = median_rate(len(blocks), runs, lambda: time_add(blocks, signatures_checked=True))
    sigs = median_rate(len(user_txs), runs, lambda: time_signatures(user_txs))
    pow_rate = median_rate(hashes, runs, lambda: time_search(hashes))
    bare = median_rate(hashes, runs, lambda: time_bare_sha256(hashes))

    figures = {
        "quick": args.quick,
        "python": platform.python_version(),
        "runs": runs,
        "blocks": len(blocks),
        "txs_per_block": txs_per_block,
        "user_txs": len(user_txs),
        "build_seconds": round(build_s, 3),
        "validate_blocks_per_s": round(full, 1),
        "validate_txs_per_s": round(full * len(user_txs) / len(blocks), 1),
        "validate_blocks_per_s_sigs_prechecked": round(no_sig, 1),
        "signature_verifications_per_s": round(sigs, 1),
        "pow_search_hashes_per_s": round(pow_rate),
        "bare_sha256_124b_hashes_per_s": round(bare),
        "pow_search_vs_bare": round(pow_rate / bare, 3),
    }
    rows = [
        ("blocks (incl. 10 funding blocks)", f"{len(blocks)} x up to {txs_per_block} signed txs"),
        (
            "add_block + commit, all rules",
            f"{full:,.0f} blocks/s ({figures['validate_txs_per_s']:,.0f} txs/s)",
        ),
        ("add_block + commit, sigs prechecked", f"{no_sig:,.0f} blocks/s"),
        ("check_signatures (Ed25519 verify)", f"{sigs:,.0f} verifications/s"),
        ("pow.search (midstate + nonce)", f"{pow_rate:,.0f} hashes/s"),
        ("bare hashlib.sha256, 124 bytes", f"{bare:,.0f} hashes/s"),
    ]
    print(
        f"trionode chain benchmark (median of {runs} runs, single core, Python {platform.python_version()})"
    )
    for name, value in rows:
        print(f"  {name:<38} {value}")
    emit("chain", figures)  # "machine" there: the core count, Python and architecture
    return 0


if __name__ == "__main__":
    sys.exit(main())
