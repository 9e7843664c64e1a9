"""A full re-check of a stored main chain from genesis, every rule included (``validate``).

Takes its own ``Store`` connection so it can run in a worker thread while the node keeps
working (SQLite's WAL lets a reader see a consistent snapshot beside the writer).
"""

from collections.abc import Sequence

from trionode.chain.block import BlockHeader
from trionode.chain.errors import ValidationError
from trionode.chain.ledger import Ledger
from trionode.chain.params import MEDIAN_TIME_SPAN, ChainParams
from trionode.chain.store import Store, StoreError
from trionode.chain.validation import check_block_body, check_header_context, check_signatures, next_target


def validate_store(params: ChainParams, store: Store, main: Sequence[bytes], now_ms: int) -> list[str]:
    """Errors found walking ``main`` (hashes by height); an empty list means valid."""
    if not main or main[0] != params.network:
        return ["height 0: genesis does not match the [chain] parameters"]
    headers: list[BlockHeader] = [params.genesis.header]
    ledger = Ledger()
    for height in range(1, len(main)):
        try:
            block = store.get_block(main[height])
        except StoreError as exc:
            return [f"height {height}: {exc}"]
        if block is None:
            return [f"height {height}: block {main[height].hex()} is missing"]
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
            check_header_context(block.header, parent, times, expected, now_ms)
            ledger.apply_block(block)
        except ValidationError as exc:
            return [f"height {height}: {exc}"]
        headers.append(block.header)
    if ledger.total() != params.mining_reward * (len(main) - 1):
        return ["balances do not sum to the rewards issued"]
    return []
