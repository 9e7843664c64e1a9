"""Mempool policy, the orphan pool and block locators."""

import hashlib
import random

import pytest

from trionode.chain.amounts import COIN
from trionode.chain.errors import ValidationError
from trionode.chain.ledger import Ledger
from trionode.chain.locator import DENSE, MAX_LOCATOR, build_locator, locator_heights
from trionode.chain.mempool import MAX_PENDING_PER_SENDER, Mempool
from trionode.chain.orphans import MAX_ORPHAN_BYTES, OrphanPool
from trionode.chain.params import MAX_FUTURE_MS
from trionode.chain.tree import Chain

from helpers import EASY, NOW, add, address, branch, build_block, extend, mine, new_chain, pay


def reason_of(chain: Chain, tx: object, now: int = NOW) -> str:
    with pytest.raises(ValidationError) as info:
        chain.add_transaction(tx, now)  # type: ignore[arg-type]
    return info.value.reason


# ----------------------------------------------------------------------------- mempool


def test_mempool_accepts_consecutive_nonces(funded: Chain) -> None:
    for nonce in range(3):
        funded.add_transaction(pay(1, 3, COIN, nonce), NOW)
    assert len(funded.mempool) == 3
    assert funded.mempool.next_nonce(address(1), funded.ledger) == 3
    assert funded.mempool.spendable(address(1), funded.ledger) == 47 * COIN
    assert funded.balance(address(1)) == 50 * COIN  # confirmed balance is untouched


def test_mempool_nonce_gap(funded: Chain) -> None:
    assert reason_of(funded, pay(1, 3, COIN, 2)) == "nonce_gap"
    funded.add_transaction(pay(1, 3, COIN, 0), NOW)
    assert reason_of(funded, pay(1, 3, COIN, 3)) == "nonce_gap"
    assert len(funded.mempool) == 1  # nonce 1 is still missing: 2 and 3 stay held


def test_mempool_nonce_used(funded: Chain) -> None:
    funded.add_transaction(pay(1, 3, COIN, 0), NOW)
    # A second spend of the same nonce while the first is pending.
    assert reason_of(funded, pay(1, 4, COIN, 0)) == "nonce_used"
    extend(funded, 1)
    assert len(funded.mempool) == 0
    assert reason_of(funded, pay(1, 4, COIN, 0)) == "nonce_used"
    funded.add_transaction(pay(1, 4, COIN, 1), NOW)


def test_mempool_duplicate(funded: Chain) -> None:
    tx = pay(1, 3, COIN, 0)
    funded.add_transaction(tx, NOW)
    assert reason_of(funded, tx) == "duplicate"


def test_mempool_insufficient_after_pending_spends(funded: Chain) -> None:
    funded.add_transaction(pay(1, 3, 30 * COIN, 0), NOW)
    assert reason_of(funded, pay(1, 3, 30 * COIN, 1)) == "insufficient_balance"
    # Incoming pending coins do not count: only the confirmed balance less pending spends.
    funded.add_transaction(pay(2, 1, 40 * COIN, 0), NOW)
    assert reason_of(funded, pay(1, 3, 21 * COIN, 1)) == "insufficient_balance"
    funded.add_transaction(pay(1, 3, 20 * COIN, 1), NOW)
    assert funded.mempool.spendable(address(1), funded.ledger) == 0
    assert reason_of(funded, pay(3, 1, 1, 0)) == "insufficient_balance"  # no confirmed coins


def test_mempool_time_too_new(funded: Chain) -> None:
    assert reason_of(funded, pay(1, 3, COIN, 0, timestamp=NOW + MAX_FUTURE_MS + 1)) == "time_too_new"
    funded.add_transaction(pay(1, 3, COIN, 0, timestamp=NOW + MAX_FUTURE_MS), NOW)


def test_mempool_full(funded: Chain) -> None:
    funded.mempool.max_txs = 2
    funded.add_transaction(pay(1, 3, COIN, 0), NOW)
    funded.add_transaction(pay(2, 3, COIN, 0), NOW)
    assert reason_of(funded, pay(1, 3, COIN, 1)) == "mempool_full"
    # A transaction that breaks a rule gets that rule's reason, not "full".
    assert reason_of(funded, pay(1, 3, COIN, 5)) == "nonce_gap"
    extend(funded, 1)  # both confirmed: room again
    funded.add_transaction(pay(1, 3, COIN, 1), NOW)


def test_mempool_is_revalidated_after_a_tip_change(funded: Chain) -> None:
    pending = pay(1, 3, COIN, 0)
    keep = pay(2, 3, COIN, 0)
    funded.add_transaction(pending, NOW)
    funded.add_transaction(keep, NOW)
    # Another miner confirms a different transaction with the same nonce: ours is now invalid.
    rival = pay(1, 4, 2 * COIN, 0)
    result = add(funded, mine(funded, txs=[rival]))
    assert result.status == "connected"
    assert [(tx.txid, reason) for tx, reason in result.forgotten] == [(pending.txid, "nonce_used")]
    assert result.dropped == []  # (its nonce is used on the chain: not held, gone for good)
    assert pending.txid not in funded.mempool
    assert keep.txid in funded.mempool
    assert funded.mempool.next_nonce(address(1), funded.ledger) == 1
    funded.add_transaction(pay(1, 3, COIN, 1), NOW)


def test_template_takes_pending_in_an_order_that_applies(funded: Chain) -> None:
    txs = [pay(1, 3, COIN, 0), pay(2, 3, COIN, 0), pay(1, 3, COIN, 1), pay(2, 4, COIN, 1)]
    for tx in txs:
        funded.add_transaction(tx, NOW)
    block = mine(funded)
    assert {tx.txid for tx in block.txs[1:]} == {tx.txid for tx in txs}
    assert add(funded, block).status == "connected"
    assert len(funded.mempool) == 0
    assert funded.ledger.nonce(address(1)) == 2 and funded.ledger.nonce(address(2)) == 2


def test_mempool_alone() -> None:
    ledger = Ledger()
    ledger.balances[address(1)] = 10
    pool = Mempool(max_txs=1)
    pool.add(pay(1, 2, 10, 0), ledger, NOW)
    assert pool.select(10**6, 10) and pool.select(0, 10) == [] and pool.select(10**6, 0) == []
    with pytest.raises(ValidationError):
        pool.add(pay(1, 2, 1, 1), ledger, NOW)


# ----------------------------------------------------------------------------- orphan pool


def test_orphan_pool_is_bounded_fifo() -> None:
    blocks = branch(EASY, EASY.genesis.header, 5)
    pool = OrphanPool(max_blocks=3)
    for b in blocks:
        pool.add(b)
    assert len(pool) == 3
    assert [b.block_hash in pool for b in blocks] == [False, False, True, True, True]
    pool.add(blocks[4])  # re-adding is a no-op, not a refresh
    assert len(pool) == 3
    # root_of walks down to the first missing ancestor.
    assert pool.root_of(blocks[4].block_hash) == blocks[1].block_hash
    assert pool.root_of(blocks[2].block_hash) == blocks[1].block_hash
    assert pool.pop_children(blocks[1].block_hash) == [blocks[2]]
    assert pool.pop_children(blocks[1].block_hash) == []
    assert len(pool) == 2


def test_orphan_pool_is_bounded_in_bytes() -> None:
    """100 orphans of 1 MB each would be 100 MB for blocks nobody can place yet."""
    assert MAX_ORPHAN_BYTES == 10_000_000 and OrphanPool().max_bytes == MAX_ORPHAN_BYTES
    blocks = branch(EASY, EASY.genesis.header, 5)
    size = blocks[0].size()
    assert all(b.size() == size for b in blocks)
    pool = OrphanPool(max_blocks=100, max_bytes=3 * size)
    for b in blocks:
        pool.add(b)
        assert pool.bytes <= pool.max_bytes
    assert [b.block_hash in pool for b in blocks] == [False, False, True, True, True]
    assert pool.bytes == 3 * size
    assert pool.pop_children(blocks[2].block_hash) == [blocks[3]]
    assert pool.bytes == 2 * size
    big = build_block(EASY, blocks[4].header, [pay(1, 2, 1, 0)])
    assert size < big.size() <= 2 * size
    pool.add(big)  # larger than the room left: the oldest orphan makes room, only that one
    assert big.block_hash in pool and blocks[2].block_hash not in pool and blocks[4].block_hash in pool
    assert pool.bytes == sum(b.size() for b in (blocks[4], big)) <= pool.max_bytes


def test_orphan_pool_children_of_one_parent() -> None:
    g = EASY.genesis.header
    kids = [build_block(EASY, g, miner=address(i)) for i in range(3)]
    pool = OrphanPool()
    for k in kids:
        pool.add(k)
    out = pool.pop_children(g.block_hash)
    assert sorted(b.block_hash for b in out) == [b.block_hash for b in out]
    assert {b.block_hash for b in out} == {k.block_hash for k in kids}
    assert len(pool) == 0


def test_orphans_connect_when_the_parent_arrives(chain: Chain) -> None:
    blocks = branch(EASY, chain.tip.header, 5)
    for b in reversed(blocks[1:]):
        result = add(chain, b)
        assert result.status == "orphan"
        assert result.missing == b.prev_hash  # its parent is not here yet
    again = add(chain, blocks[3])  # already waiting: the answer names the bottom of its chain
    assert again.status == "orphan" and again.missing == blocks[0].block_hash
    assert chain.height == 0 and len(chain.orphans) == 4
    result = add(chain, blocks[0])
    assert result.status == "connected"
    assert [b.block_hash for b in result.connected] == [b.block_hash for b in blocks]
    assert chain.tip.block_hash == blocks[-1].block_hash
    assert len(chain.orphans) == 0


def test_evicted_orphans_are_fetched_again(chain: Chain) -> None:
    chain.orphans.max_blocks = 2
    blocks = branch(EASY, chain.tip.header, 4)
    for b in blocks[1:]:
        add(chain, b)
    assert blocks[1].block_hash not in chain.orphans  # evicted first
    result = add(chain, blocks[0])
    assert result.status == "connected" and chain.height == 1
    # Blocks 3 and 4 wait for block 2, the ancestor a node must ask for again.
    assert chain.orphans.root_of(blocks[3].block_hash) == blocks[1].block_hash
    result = add(chain, blocks[1])
    assert chain.height == 4 and [b.height for b in result.connected] == [2, 3, 4]


# ----------------------------------------------------------------------------- locators


def test_locator_heights_dense_then_doubling() -> None:
    assert locator_heights(0) == [0]
    assert locator_heights(3) == [3, 2, 1, 0]
    assert locator_heights(10) == [10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    assert locator_heights(11) == [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 0]
    for tip in (12, 100, 9_999, 10_000, 123_456, 2**32, 2**64 - 1):
        heights = locator_heights(tip)
        assert heights[0] == tip and heights[-1] == 0
        assert len(heights) <= MAX_LOCATOR
        dense = heights[:DENSE]
        assert dense == list(range(tip, tip - DENSE, -1))
        steps = [a - b for a, b in zip(heights[DENSE - 1 : -2], heights[DENSE:-1], strict=True)]
        assert steps == [2 ** (i + 1) for i in range(len(steps))]
        assert heights[-2] - 0 <= 2 ** (len(steps) + 1)  # genesis is within the next step
    assert len(locator_heights(2**64 - 1)) == 73


def test_locator_of_a_10000_block_chain_has_23_hashes() -> None:
    main = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(10_000)]
    loc = build_locator(main)
    assert len(loc) == 23
    assert loc[0] == main[-1] and loc[-1] == main[0]
    assert [main.index(h) for h in loc] == locator_heights(9_999)


def test_blocks_after_locators(chain: Chain) -> None:
    extend(chain, 30)
    behind = build_locator(chain.main[:-1])  # a peer one block behind
    got = chain.blocks_after(behind, 500)
    assert [b.block_hash for b in got] == [chain.main[-1]]
    assert chain.blocks_after(chain.locator(), 500) == []  # a peer at our tip
    everything = chain.blocks_after([], 500)
    assert [b.height for b in everything] == list(range(31))  # empty: from genesis
    stranger = chain.blocks_after([b"\x05" * 32], 500)
    assert [b.height for b in stranger] == list(range(1, 31))  # nothing shared: after genesis
    assert [b.height for b in chain.blocks_after(build_locator(chain.main[:11]), 5)] == [11, 12, 13, 14, 15]
    # A peer on a side branch: its locator's first hash on our main chain is the fork point.
    fork = branch(EASY, chain.index[chain.main[20]].header, 3)
    side = [*chain.main[:21], *(b.block_hash for b in fork)]
    assert [b.height for b in chain.blocks_after(build_locator(side), 500)] == list(range(21, 31))


def test_sync_by_locator_reaches_the_same_tip(chain: Chain) -> None:
    extend(chain, 25)
    fresh = new_chain(EASY)
    while True:
        batch = chain.blocks_after(fresh.locator(), 7)
        if not batch:
            break
        for b in batch:
            assert add(fresh, b).status in ("connected", "duplicate")
    assert fresh.tip.block_hash == chain.tip.block_hash


def test_orphan_with_an_easier_target_than_the_network_is_refused(chain: Chain) -> None:
    """A parentless block's PoW is only checked against its own target: junk with no work
    must not get into the orphan pool."""
    from trionode.chain.pow import MAX_TARGET

    parent = branch(EASY, chain.tip.header, 1)[0]
    junk = build_block(EASY, parent.header, target=MAX_TARGET)
    result = add(chain, junk)
    assert result.status == "invalid" and result.error is not None
    assert result.error.reason == "bad_target"
    assert len(chain.orphans) == 0
    honest = build_block(EASY, parent.header)
    assert add(chain, honest).status == "orphan"


def test_a_transaction_refused_for_a_nonce_gap_joins_when_the_gap_closes(funded: Chain) -> None:
    first, second, third = (pay(1, 2, COIN, n) for n in range(3))
    for early in (third, second):
        with pytest.raises(ValidationError) as refused:
            funded.add_transaction(early, NOW)
        assert refused.value.reason == "nonce_gap"
    assert funded.add_transaction(first, NOW).readmitted == [second, third]
    assert list(funded.mempool.txs) == [first.txid, second.txid, third.txid]


def test_a_transaction_refused_for_balance_joins_after_a_block_funds_it(funded: Chain) -> None:
    rich = pay(1, 3, 40 * COIN, 0)
    spend = pay(3, 4, 30 * COIN, 0)
    with pytest.raises(ValidationError) as refused:
        funded.add_transaction(spend, NOW)
    assert refused.value.reason == "insufficient_balance"
    funded.add_transaction(rich, NOW)
    block = mine(funded)
    result = add(funded, block)
    assert result.status == "connected"
    assert spend.txid in funded.mempool and result.readmitted == [spend]


# ----------------------------------------------------------------------------- sharing the pool


def _ledger(*funded: int) -> Ledger:
    ledger = Ledger()
    for i in funded:
        ledger.balances[address(i)] = 100 * COIN
    return ledger


def test_one_sender_cannot_fill_the_pool(funded: Chain) -> None:
    """One funded account sending 1-unit payments used to take all 5,000 slots."""
    cap = funded.mempool.max_per_sender
    assert cap == MAX_PENDING_PER_SENDER == 100
    for nonce in range(cap):
        funded.add_transaction(pay(1, 3, 1, nonce), NOW, signature_checked=True)
    over = pay(1, 3, 1, cap)
    assert reason_of(funded, over) == "too_many_pending"
    funded.add_transaction(pay(2, 3, COIN, 0), NOW)  # others still get in
    assert len(funded.mempool) == cap + 1
    # A refusal, not held: once a block has confirmed the sender's others, it is sent again.
    result = add(funded, mine(funded))
    assert result.status == "connected" and result.readmitted == [] and len(funded.mempool) == 0
    assert funded.add_transaction(over, NOW, signature_checked=True).readmitted == []
    assert over.txid in funded.mempool


def test_a_full_pool_evicts_the_last_transaction_of_the_sender_with_most_pending() -> None:
    ledger = _ledger(1, 2, 3, 4)
    pool = Mempool(max_txs=5, max_per_sender=10)
    s1 = [pay(1, 9, 1, n) for n in range(4)]
    for tx in s1:
        assert pool.add(tx, ledger, NOW) == []
    assert pool.add(pay(2, 9, 1, 0), ledger, NOW) == []
    # Full: a newcomer takes the place of sender 1's last transaction, never one in the middle.
    assert pool.add(pay(3, 9, 1, 0), ledger, NOW) == [s1[3]]
    assert pool.next_nonce(address(1), ledger) == 3 and pool.spendable(address(1), ledger) == 100 * COIN - 3
    assert pool.add(pay(2, 9, 1, 1), ledger, NOW) == [s1[2]]  # 3 pending against 1 (+1): evict
    # Sender 3 has 1, the most anyone else has is 2: swapping would only move the imbalance.
    with pytest.raises(ValidationError) as full:
        pool.add(pay(3, 9, 1, 1), ledger, NOW)
    assert full.value.reason == "mempool_full"
    # Senders 1 and 2 tie at 2: the one whose last transaction came last (sender 2) gives way.
    assert pool.add(pay(4, 9, 1, 0), ledger, NOW) == [pay(2, 9, 1, 1)]
    assert sorted((tx.sender_address, tx.nonce) for tx in pool.txs.values()) == sorted(
        [(address(1), 0), (address(1), 1), (address(2), 0), (address(3), 0), (address(4), 0)]
    )
    # What stays applies cleanly on the ledger (no sender's nonces broken).
    after = ledger.copy()
    for tx in pool.select(10**6, 10):
        after.apply_transaction(tx)


def test_the_heaviest_sender_is_the_one_a_full_scan_finds_through_adds_evictions_and_rebuilds() -> None:
    """The pool keeps its senders' ranks in a lazy heap; whatever happens to the pool, the
    sender it picks to evict is the one with the most pending, then the latest last arrival."""
    rng = random.Random(7)
    senders = range(1, 9)
    ledger = _ledger(*senders)
    pool = Mempool(max_txs=12, max_per_sender=6)

    def scan(exclude: bytes | None) -> bytes | None:
        others = [s for s in pool._by_sender if s != exclude]
        return max(others, key=pool._rank, default=None)

    for step in range(400):
        sender = rng.choice(senders)
        try:
            pool.add(pay(sender, 9, 1, pool.next_nonce(address(sender), ledger)), ledger, NOW)
        except ValidationError as exc:
            assert exc.reason in ("too_many_pending", "mempool_full")
        if step % 50 == 49:  # a tip change: everything is judged again, and trimmed
            kept = list(pool.txs.values())
            pool.remove([tx.txid for tx in kept])
            pool.max_txs = rng.choice((8, 12))
            pool.rebuild(ledger, kept, NOW)
        for exclude in (None, address(rng.choice(senders))):
            assert pool._heaviest(exclude) == scan(exclude)
    assert len(pool._ranks) <= 4 * len(pool._by_sender) + 64  # stale entries are dropped


def test_an_evicted_transaction_is_held_and_comes_back_when_there_is_room(funded: Chain) -> None:
    funded.mempool.max_txs = 3
    mine_first = [pay(1, 3, COIN, n) for n in range(3)]
    for tx in mine_first:
        funded.add_transaction(tx, NOW)
    newcomer = pay(2, 3, COIN, 0)
    admission = funded.add_transaction(newcomer, NOW)
    assert admission.evicted == [mine_first[2]] and mine_first[2].txid not in funded.mempool
    result = add(funded, mine(funded))  # confirms the three pending: room again
    assert result.readmitted == [mine_first[2]]
    assert set(funded.mempool.txs) == {mine_first[2].txid}
