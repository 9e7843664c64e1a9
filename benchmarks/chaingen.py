"""Build a data dir holding a chain of N blocks of K signed transactions (cached on disk).

    python benchmarks/chaingen.py --blocks 10000 --txs 10 --out /tmp/chain

Used by the sync benchmark. Blocks are mined at difficulty 1 with the chain core directly
(signatures are checked once when the transactions are made); a cache under
``$TMPDIR/trionode-bench`` keyed by the parameters makes repeated runs instant.
"""

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

from trionode.chain.amounts import COIN
from trionode.chain.block import Block
from trionode.chain.keys import KeyPair
from trionode.chain.params import ChainParams
from trionode.chain.pow import search
from trionode.chain.store import Store
from trionode.chain.transaction import sign_transaction
from trionode.chain.tree import Chain

PARAMS = ChainParams(difficulty=1)
START_MS = 1_750_000_000_000
BLOCK_MS = 10_000


def key(i: int) -> KeyPair:
    """The i-th key of generated chains (key 0 mines; all are funded from block 2 on)."""
    return KeyPair(hashlib.sha256(b"bench%d" % i).digest())


def build(path: Path, blocks: int, txs: int) -> None:
    """Chain of ``blocks`` blocks; from block 2 on, each carries ``txs`` signed transfers."""
    path.mkdir(parents=True, exist_ok=True)
    chain = Chain(PARAMS, Store(path / "chain.db"))
    keys = [key(i) for i in range(max(1, txs))]
    nonces = [0] * len(keys)
    miner = keys[0]
    # Block 1's reward (50 coins) funds every key: 4 coins each, less when there are many.
    fund = min(4 * COIN, 45 * COIN // max(1, txs))
    for height in range(1, blocks + 1):
        now = START_MS + height * BLOCK_MS
        if height == 2 and txs:  # fund every key from the first reward
            for i in range(txs):
                tx = sign_transaction(keys[0], PARAMS.network, keys[i].address, fund, nonces[0], now)
                nonces[0] += 1
                chain.add_transaction(tx, now, signature_checked=True)
        elif height > 2:  # each key pays its neighbour a little: never runs dry
            for i in range(txs):
                to = keys[(i + 1) % len(keys)].address
                tx = sign_transaction(keys[i], PARAMS.network, to, 1_000, nonces[i], now)
                nonces[i] += 1
                chain.add_transaction(tx, now, signature_checked=True)
        template = chain.template(miner.address, now)
        nonce = search(template.header.prefix(), template.header.target, 0, 1 << 20)
        assert nonce is not None
        result = chain.add_block(
            Block(template.header.with_nonce(nonce), template.txs), now, signatures_checked=True
        )
        assert result.status == "connected", result.error
        if height % 500 == 0:
            chain.commit()
    chain.commit()
    chain.store.close()


def cached(blocks: int, txs: int) -> Path:
    cache = Path(tempfile.gettempdir()) / "trionode-bench" / f"chain-{blocks}x{txs}-d{PARAMS.difficulty}"
    if not (cache / "chain.db").exists():
        partial = cache.with_name(cache.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        started = time.monotonic()
        print(f"building a {blocks}-block chain of {txs} txs/block (cached in {cache})...", file=sys.stderr)
        build(partial, blocks, txs)
        partial.rename(cache)
        print(f"built in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return cache


def copy_to(blocks: int, txs: int, data_dir: Path) -> None:
    source = cached(blocks, txs)
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "chain.db", data_dir / "chain.db")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=10_000)
    parser.add_argument("--txs", type=int, default=10)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    copy_to(args.blocks, args.txs, args.out)
