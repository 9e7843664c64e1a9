"""Consensus rules, each failing with its own reason code (protocol.md lists them all).

Three layers, cheapest first, so junk is dropped before it costs anything:
``check_block_body`` needs only the block (structure, PoW, Merkle root, coinbase);
``check_signatures`` needs only the network id (and may run in worker threads);
``check_header_context`` needs the ancestors (height, target, time). Balance and nonce rules
live in ``Ledger.apply_block`` because they need the state the block builds on.
"""

from collections.abc import Iterable, Sequence

from trionode.chain.block import HEADER_VERSION, MAX_BLOCK_TXS, Block, BlockHeader
from trionode.chain.errors import ValidationError
from trionode.chain.merkle import merkle_root
from trionode.chain.params import (
    MAX_BLOCK_TX_BYTES,
    MAX_FUTURE_MS,
    MEDIAN_TIME_SPAN,
    RETARGET_CLAMP,
    ChainParams,
)
from trionode.chain.pow import MAX_TARGET, meets_target
from trionode.chain.transaction import Transaction


def check_transaction(tx: Transaction) -> None:
    """Rules a user transaction obeys on its own, before signatures or state."""
    if tx.is_coinbase:
        raise ValidationError("unexpected_coinbase", "a coinbase only appears first in a block")
    if tx.amount <= 0:
        raise ValidationError("bad_amount", "amount must be positive")
    if len(tx.signature) != 64:
        raise ValidationError("bad_signature", "missing signature")


def check_signatures(txs: Iterable[Transaction], network: bytes) -> None:
    for tx in txs:
        if not tx.is_coinbase and not tx.signature_valid(network):
            raise ValidationError("bad_signature", f"tx {tx.txid.hex()}")


def check_block_body(block: Block, params: ChainParams) -> None:
    """Everything decidable from the block alone (not signatures)."""
    header = block.header
    if header.height == 0:
        if header.block_hash != params.network:
            raise ValidationError("bad_genesis", "genesis does not match this network's parameters")
        return
    if header.version != HEADER_VERSION:
        raise ValidationError("bad_version", f"header version {header.version}")
    if not meets_target(header.block_hash, header.target):
        raise ValidationError("bad_pow", "hash above target")
    txs = block.txs
    if not txs or not txs[0].is_coinbase:
        raise ValidationError("missing_coinbase", "the first transaction must be the coinbase")
    if len(txs) > MAX_BLOCK_TXS or block.size() > MAX_BLOCK_TX_BYTES:
        raise ValidationError("block_too_large", f"{len(txs)} txs, {block.size()} bytes")
    if merkle_root([tx.txid for tx in txs]) != header.merkle_root:
        raise ValidationError("bad_merkle_root", "merkle root does not match the transactions")
    cb = txs[0]
    if cb.amount != params.mining_reward:
        raise ValidationError("bad_coinbase_amount", f"pays {cb.amount}, reward is {params.mining_reward}")
    if cb.nonce != header.height or cb.signature:
        raise ValidationError("bad_coinbase", "coinbase nonce must be the height, with no signature")
    seen: set[bytes] = {cb.txid}
    for tx in txs[1:]:
        if tx.is_coinbase:
            raise ValidationError("extra_coinbase", "more than one coinbase")
        check_transaction(tx)
        if tx.txid in seen:
            raise ValidationError("duplicate_tx", tx.txid.hex())
        seen.add(tx.txid)


def median_time_past(timestamps: Sequence[int]) -> int:
    """Median of up to the last 11 timestamps (newest last)."""
    window = sorted(timestamps[-MEDIAN_TIME_SPAN:])
    return window[len(window) // 2]


def next_target(params: ChainParams, parent: BlockHeader, span_start_ts: int | None) -> int:
    """Target a child of ``parent`` must carry.

    With retargeting on, at heights that are multiples of the interval the target scales by
    actual/expected time over the last interval (clamped 4x either way); ``span_start_ts`` is
    the timestamp of the block ``retarget_interval`` blocks before the child.
    """
    n = params.retarget_interval
    height = parent.height + 1
    if n == 0 or height % n != 0 or span_start_ts is None:
        return parent.target
    expected = (n - 1) * params.target_block_time * 1000
    actual = parent.timestamp - span_start_ts
    actual = max(expected // RETARGET_CLAMP, min(actual, expected * RETARGET_CLAMP))
    return min(MAX_TARGET, parent.target * actual // expected)


def check_header_context(
    header: BlockHeader,
    parent: BlockHeader,
    ancestor_times: Sequence[int],
    expected_target: int,
    now_ms: int,
    *,
    retarget_interval: int = 0,
) -> None:
    """Rules that need the ancestors: ``ancestor_times`` ends with the parent's timestamp.

    ``retarget_interval`` is the chain's (``ChainParams.retarget_interval``): with retargeting
    on, the first block of a period may not be older than its parent. A period's span is
    measured from its first block to its last, so the step between periods is never counted:
    without this rule a miner could date each period's last block late and the next period's
    first block early (median time past allows it) and have every period look slower than it
    was, lowering the difficulty period after period (the "time warp"; Bitcoin's BIP 94 rule,
    here with no slack). With it the measured spans add up to at most the real elapsed time.
    """
    if header.height != parent.height + 1:
        raise ValidationError("bad_height", f"height {header.height} after {parent.height}")
    if header.target != expected_target:
        raise ValidationError("bad_target", "target differs from the difficulty rule")
    mtp = median_time_past(ancestor_times)
    if header.timestamp <= mtp:
        raise ValidationError("time_too_old", f"timestamp {header.timestamp} <= median {mtp}")
    if retarget_interval and header.height % retarget_interval == 0 and header.timestamp < parent.timestamp:
        raise ValidationError(
            "time_warp",
            f"a period's first block at {header.timestamp}, before its parent's {parent.timestamp}",
        )
    if header.timestamp > now_ms + MAX_FUTURE_MS:
        raise ValidationError("time_too_new", f"timestamp {header.timestamp} more than 2 h ahead")
