"""Crash-test writer: extends a chain on disk forever, saying what it has committed.

    python crash_writer.py PATH SEED

Opens (or creates) the chain at PATH, prints ``ready HEIGHT WORK_HEX TIP_HEX`` and then, after
every commit, ``committed HEIGHT WORK_HEX TIP_HEX``, each line flushed. Between commits it
mines blocks of pending transactions, submits transactions, builds side branches (some win and
reorganize the chain, some only tie) and now and then a branch with an invalid block, so a
SIGKILL can land in the middle of any kind of write. It never stops on its own.
"""

import random
import sys
import time

from trionode.chain.block import Block
from trionode.chain.errors import ValidationError
from trionode.chain.store import Store
from trionode.chain.tree import Chain

from helpers import EASY, address, build_block, key, pay, solve

WALLETS = (1, 2, 3, 4)


def now_ms() -> int:
    return int(time.time() * 1000)


def report(word: str, chain: Chain) -> None:
    print(f"{word} {chain.height} {chain.work:x} {chain.tip.block_hash.hex()}", flush=True)


def submit_some(chain: Chain, rng: random.Random) -> None:
    for _ in range(rng.randint(0, 3)):
        who = rng.choice(WALLETS)
        addr = address(who)
        spendable = chain.mempool.spendable(addr, chain.ledger)
        if spendable <= 0:
            continue
        nonce = chain.mempool.next_nonce(addr, chain.ledger)
        tx = pay(who, rng.choice((*WALLETS, 7)), rng.randint(1, spendable), nonce, timestamp=now_ms())
        try:
            chain.add_transaction(tx, now_ms())
        except ValidationError:
            pass


def side_branch(chain: Chain, rng: random.Random, extra: int, bad: bool = False) -> None:
    """Blocks on the main block ``depth`` below the tip: ``depth + extra`` of them."""
    depth = rng.randint(1, min(4, chain.height))
    parent = chain.index[chain.main[chain.height - depth]].header
    for i in range(depth + extra):
        txs = [pay(9, 8, 1, 0, timestamp=now_ms())] if bad and i == 0 else []  # key 9 is broke
        block = build_block(
            chain.params,
            parent,
            txs,
            miner=address(rng.choice(WALLETS)),
            timestamp=max(now_ms(), parent.timestamp + 1),
        )
        chain.add_block(block, now_ms())
        parent = block.header


def step(chain: Chain, rng: random.Random) -> None:
    roll = rng.random()
    if roll < 0.5 or chain.height < 5:
        submit_some(chain, rng)
        # On the wall clock (not helpers.mine's 1 s spacing): restarts must not run ahead of it.
        template = chain.template(address(rng.choice(WALLETS)), now_ms())
        block = Block(solve(template.header), template.txs)
        result = chain.add_block(block, now_ms())
        assert result.status == "connected", (result.status, result.error)
    elif roll < 0.7:
        side_branch(chain, rng, extra=1)  # wins: a reorg
    elif roll < 0.8:
        side_branch(chain, rng, extra=0)  # ties: stored as a side branch
    elif roll < 0.85:
        side_branch(chain, rng, extra=1, bad=True)  # would win, but is invalid
    else:
        submit_some(chain, rng)


def main() -> None:
    path, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    chain = Chain(EASY, Store(path))
    report("ready", chain)
    key(1)  # warm the key cache before the loop
    while True:
        step(chain, rng)
        if rng.random() < 0.8:  # sometimes several steps share one commit
            chain.commit()
            report("committed", chain)


if __name__ == "__main__":
    main()
