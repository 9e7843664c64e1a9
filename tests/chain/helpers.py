"""Shared helpers of the chain-core tests: fixed keys, a fixed clock, and instant mining.

Blocks built here are spaced one second apart from the genesis timestamp, and every test adds
them with ``NOW`` (a year after genesis), so no test depends on the wall clock.
"""

import hashlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from trionode.chain.block import HEADER_VERSION, Block, BlockHeader
from trionode.chain.keys import KeyPair
from trionode.chain.merkle import merkle_root
from trionode.chain.params import GENESIS_TIMESTAMP_MS, ChainParams
from trionode.chain.pow import search
from trionode.chain.store import Store
from trionode.chain.transaction import Transaction, coinbase, sign_transaction
from trionode.chain.tree import BlockResult, Chain

# "Now" for every test: a year after genesis, far later than any block the tests build.
NOW = GENESIS_TIMESTAMP_MS + 365 * 24 * 3600 * 1000
# Spacing of helper-built blocks: keeps timestamps strictly rising, hence above the median.
BLOCK_SPACING_MS = 1000
# The search is resumable; this chunk keeps a hard target from looking like a hang.
_SEARCH_CHUNK = 1 << 16

# Difficulty 1 (16 hashes on average) so proof of work is real but mining is instant.
EASY = ChainParams(difficulty=1)


@cache
def key(i: int) -> KeyPair:
    """A deterministic key pair: test failures reproduce exactly."""
    return KeyPair(hashlib.sha256(b"trionode-test-key-%d" % i).digest())


def address(i: int) -> bytes:
    return key(i).address


def solve(header: BlockHeader) -> BlockHeader:
    """The header with the first nonce that meets its target."""
    start = 0
    while True:
        nonce = search(header.prefix(), header.target, start, _SEARCH_CHUNK)
        if nonce is not None:
            return header.with_nonce(nonce)
        start += _SEARCH_CHUNK


def fails_pow(header: BlockHeader) -> BlockHeader:
    """The header with the first nonce whose hash is above the target."""
    nonce = 0
    while True:
        candidate = header.with_nonce(nonce)
        if int.from_bytes(candidate.block_hash, "big") > header.target:
            return candidate
        nonce += 1


def seal(header: BlockHeader, txs: Sequence[Transaction], *, mine: bool = True) -> Block:
    """A block of ``txs`` under ``header`` with its Merkle root recomputed (and mined)."""
    fixed = BlockHeader(
        header.version,
        header.height,
        header.prev_hash,
        header.timestamp,
        merkle_root([tx.txid for tx in txs]),
        header.target,
        0,
    )
    return Block(solve(fixed) if mine else fixed, list(txs))


def build_block(
    params: ChainParams,
    parent: BlockHeader,
    txs: Sequence[Transaction] = (),
    *,
    miner: bytes | None = None,
    timestamp: int | None = None,
    target: int | None = None,
    reward: int | None = None,
    height: int | None = None,
    with_coinbase: bool = True,
) -> Block:
    """A mined child of ``parent``: coinbase to ``miner`` then ``txs``; every field overridable."""
    h = parent.height + 1 if height is None else height
    ts = parent.timestamp + BLOCK_SPACING_MS if timestamp is None else timestamp
    all_txs = list(txs)
    if with_coinbase:
        cb_amount = params.mining_reward if reward is None else reward
        all_txs.insert(0, coinbase(miner if miner is not None else address(0), cb_amount, h, ts))
    header = BlockHeader(
        HEADER_VERSION,
        h,
        parent.block_hash,
        ts,
        merkle_root([tx.txid for tx in all_txs]),
        parent.target if target is None else target,
        0,
    )
    return Block(solve(header), all_txs)


def new_chain(params: ChainParams = EASY, path: Path | str = ":memory:") -> Chain:
    return Chain(params, Store(path))


def mine(chain: Chain, miner: bytes | None = None, txs: Sequence[Transaction] | None = None) -> Block:
    """A mined block on ``chain``'s tip (not added): the template of its mempool, or ``txs``."""
    parent = chain.tip.header
    who = miner if miner is not None else address(0)
    if txs is None:
        template = chain.template(who, parent.timestamp + BLOCK_SPACING_MS)
        return Block(solve(template.header), template.txs)
    return build_block(chain.params, parent, txs, miner=who)


def add(chain: Chain, block: Block, now_ms: int = NOW) -> BlockResult:
    return chain.add_block(block, now_ms)


def extend(chain: Chain, n: int, miner: bytes | None = None) -> list[Block]:
    """Mine and connect ``n`` blocks of the mempool on the tip; fail loudly if one is refused."""
    blocks = []
    for _ in range(n):
        block = mine(chain, miner)
        result = add(chain, block)
        assert result.status == "connected", (result.status, result.error)
        blocks.append(block)
    return blocks


def branch(params: ChainParams, parent: BlockHeader, n: int, miner: bytes | None = None) -> list[Block]:
    """``n`` coinbase-only blocks on ``parent`` (not added anywhere): a side branch to feed later."""
    blocks: list[Block] = []
    for _ in range(n):
        block = build_block(params, parent, miner=miner if miner is not None else address(9))
        blocks.append(block)
        parent = block.header
    return blocks


def pay(
    sender: int | KeyPair,
    recipient: int | bytes,
    amount: int,
    nonce: int,
    params: ChainParams = EASY,
    timestamp: int = NOW - 1,
) -> Transaction:
    """A signed transfer from key ``sender`` (an index into ``key``) to a key index or address."""
    kp = key(sender) if isinstance(sender, int) else sender
    to = address(recipient) if isinstance(recipient, int) else recipient
    return sign_transaction(kp, params.network, to, amount, nonce, timestamp)


def main_txids(chain: Chain) -> list[bytes]:
    """Every non-coinbase txid on the main chain, in order (duplicates kept)."""
    out: list[bytes] = []
    for height in range(1, chain.height + 1):
        block = chain.block_at(height)
        assert block is not None
        out.extend(tx.txid for tx in block.txs[1:])
    return out
