"""A full re-check of a main chain from genesis, every rule included (``validate``).

``replay`` takes the blocks from any source: the ``Chain`` itself (``Chain.validate_all``), or
its own ``Store`` connection (``validate_store``), which lets ``trionode validate`` run in a
worker thread while the node keeps working (SQLite's WAL gives the reader a consistent
snapshot beside the writer).
"""

from collections.abc import Callable, Sequence

from trionode.chain.block import Block, BlockHeader
from trionode.chain.errors import ValidationError
from trionode.chain.ledger import Ledger
from trionode.chain.params import MEDIAN_TIME_SPAN, ChainParams
from trionode.chain.store import Store, StoreError
from trionode.chain.validation import check_block_body, check_header_context, check_signatures, next_target


def replay(
    params: ChainParams,
    block_of: Callable[[bytes], Block | None],
    main: Sequence[bytes],
    now_ms: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[str], Ledger]:
    """Walk ``main`` (hashes by height) applying every rule to a fresh ledger.

    Returns the errors (empty if the chain is valid; the walk stops at the first) and the
    ledger the replay built, for comparison with the one the node holds.
    """
    ledger = Ledger()
    if not main or main[0] != params.network:
        return ["height 0: genesis does not match the [chain] parameters"], ledger
    headers: list[BlockHeader] = [params.genesis.header]
    for height in range(1, len(main)):
        try:
            block = block_of(main[height])
        except StoreError as exc:  # a body that no longer decodes
            return [f"height {height}: {exc}"], ledger
        if block is None:
            return [f"height {height}: block {main[height].hex()} is missing"], ledger
        parent = headers[-1]
        try:
            if block.block_hash != main[height]:
                raise ValidationError("bad_hash", "recomputed hash differs from the stored one")
            if block.prev_hash != parent.block_hash:
                raise ValidationError("bad_link", "previous hash does not match")
            check_block_body(block, params)
            check_signatures(block.txs[1:], params.network)
            n = params.retarget_interval
            span_start = headers[height - n].timestamp if n and height % n == 0 else None
            expected = next_target(params, parent, span_start)
            times = [h.timestamp for h in headers[-MEDIAN_TIME_SPAN:]]
            check_header_context(block.header, parent, times, expected, now_ms, retarget_interval=n)
            ledger.apply_block(block)
        except ValidationError as exc:
            return [f"height {height}: {exc}"], ledger
        headers.append(block.header)
        if progress is not None:
            progress(height)
    if ledger.total() != params.mining_reward * (len(main) - 1):
        return ["balances do not sum to the rewards issued"], ledger
    return [], ledger


def validate_store(params: ChainParams, store: Store, main: Sequence[bytes], now_ms: int) -> list[str]:
    """Errors found walking ``main`` through ``store``; an empty list means valid."""
    return replay(params, store.get_block, main, now_ms)[0]
