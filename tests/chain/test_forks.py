"""Fork choice: most work wins, ties keep the first seen, reorgs move transactions, and a
branch with an invalid block never becomes the main chain."""

from pathlib import Path

import pytest

from trionode.chain.audit import replay
from trionode.chain.block import Block
from trionode.chain.errors import ValidationError
from trionode.chain.store import STATUS_INVALID, STATUS_VALID, Store
from trionode.chain.transaction import Transaction
from trionode.chain.tree import MAX_SIDE_BLOCKS, MAX_SIDE_BYTES, Chain, Reorg

from helpers import EASY, NOW, add, address, branch, build_block, extend, main_txids, pay

COIN = 10**8
REWARD = EASY.mining_reward


def assert_consistent(chain: Chain) -> None:
    assert chain.ledger.total() == REWARD * chain.height
    assert chain.validate_all(NOW) == []
    txids = main_txids(chain)
    assert len(txids) == len(set(txids))
    assert not set(txids) & set(chain.mempool.txs)


def test_more_work_wins(chain: Chain) -> None:
    main = extend(chain, 2, address(1))
    side = branch(EASY, EASY.genesis.header, 3)
    results = [add(chain, b) for b in side]
    assert [r.status for r in results] == ["side", "side", "connected"]
    last = results[-1]
    assert last.reorgs == [Reorg(main[-1].block_hash, side[-1].block_hash, 2)]
    assert [b.block_hash for b in last.connected] == [b.block_hash for b in side]
    assert chain.main[1:] == [b.block_hash for b in side]
    assert chain.balance(address(1)) == 0
    assert chain.on_main(side[0].block_hash) and not chain.on_main(main[0].block_hash)
    assert_consistent(chain)


def test_tie_keeps_the_first_seen(chain: Chain) -> None:
    first = extend(chain, 1, address(1))[0]
    rival = build_block(EASY, EASY.genesis.header, miner=address(2))
    assert rival.header.target == first.header.target
    assert add(chain, rival).status == "side"
    assert chain.tip.block_hash == first.block_hash
    # Also when the rival branch catches up again later.
    extend(chain, 1)
    rival2 = build_block(EASY, rival.header)
    assert add(chain, rival2).status == "side"
    assert chain.main[1] == first.block_hash
    assert add(chain, rival).status == "duplicate"


def test_deep_reorg_and_back(chain: Chain) -> None:
    main = extend(chain, 5, address(1))
    side = branch(EASY, EASY.genesis.header, 6)
    results = [add(chain, b) for b in side]
    assert results[-1].reorgs[0].depth == 5
    assert chain.height == 6
    # The old branch grows past it again: reorg back, depth 6.
    more = build_block(EASY, main[-1].header)
    more2 = build_block(EASY, more.header)
    assert add(chain, more).status == "side"
    result = add(chain, more2)
    assert result.reorgs == [Reorg(side[-1].block_hash, more2.block_hash, 6)]
    assert chain.main[1:] == [*(b.block_hash for b in main), more.block_hash, more2.block_hash]
    assert_consistent(chain)


def test_reorg_returns_disconnected_transactions(funded: Chain) -> None:
    fork = funded.tip.header
    t1 = pay(1, 3, 5 * COIN, 0)  # only on the main branch
    t3 = pay(3, 4, 5 * COIN, 0)  # spends what t1 gave key 3
    t2 = pay(2, 5, COIN, 0)  # pending now, confirmed by the other branch
    m1 = build_block(EASY, fork, [t1])
    m2 = build_block(EASY, m1.header, [t3])
    assert add(funded, m1).status == "connected" and add(funded, m2).status == "connected"
    funded.add_transaction(t2, NOW)

    s1 = build_block(EASY, fork, [t2], miner=address(6))
    s2 = build_block(EASY, s1.header, miner=address(6))
    s3 = build_block(EASY, s2.header, miner=address(6))
    assert [add(funded, b).status for b in (s1, s2, s3)] == ["side", "side", "connected"]
    # t1 is valid again and back in the pool; t3 lost its funding; t2 is confirmed now.
    assert set(funded.mempool.txs) == {t1.txid}
    assert funded.balance(address(3)) == 0 and funded.balance(address(5)) == COIN
    assert_consistent(funded)

    # And back again: the old branch grows; t2 returns, t1 and t3 are confirmed again.
    m3 = build_block(EASY, m2.header)
    m4 = build_block(EASY, m3.header)
    assert add(funded, m3).status == "side"
    result = add(funded, m4)
    assert result.reorgs[0].depth == 3
    assert set(funded.mempool.txs) == {t2.txid}
    assert funded.balance(address(4)) == 5 * COIN
    assert_consistent(funded)


def test_reorg_returns_transactions_in_nonce_order(funded: Chain) -> None:
    fork = funded.tip.header
    txs = [pay(1, 3, COIN, n) for n in range(4)]
    m1 = build_block(EASY, fork, txs[:2])
    m2 = build_block(EASY, m1.header, txs[2:])
    add(funded, m1)
    add(funded, m2)
    side = branch(EASY, fork, 3)
    result = [add(funded, b) for b in side][-1]
    assert result.reorgs and result.dropped == []
    assert set(funded.mempool.txs) == {t.txid for t in txs}
    assert_consistent(funded)


def _bad_tx_block(parent: Block) -> Block:
    return build_block(EASY, parent.header, [pay(7, 8, COIN, 0)], miner=address(6))  # key 7 is broke


def test_invalid_block_with_more_work_is_rejected(funded: Chain) -> None:
    old_tip = funded.tip.block_hash
    fork = funded.index[funded.main[1]]
    b2 = build_block(EASY, fork.header, miner=address(6))
    b3 = _bad_tx_block(b2)
    assert add(funded, b2).status == "side"
    result = add(funded, b3)
    assert result.status == "invalid" and result.error is not None
    assert result.error.reason == "insufficient_balance"
    assert funded.tip.block_hash == old_tip
    assert funded.index[b3.block_hash].status == STATUS_INVALID
    assert funded.index[b2.block_hash].status == STATUS_VALID  # it was connected, then undone
    b4 = build_block(EASY, b3.header)
    assert add(funded, b4).error.reason == "invalid_parent"  # type: ignore[union-attr]
    assert add(funded, b3).error.reason == "known_invalid"  # type: ignore[union-attr]
    assert add(funded, b4).error.reason == "known_invalid"  # type: ignore[union-attr]
    # A valid sibling of the bad block makes the branch win after all.
    good = build_block(EASY, b2.header, miner=address(6))
    assert add(funded, good).status == "connected"
    assert_consistent(funded)


def test_branch_with_an_invalid_block_in_the_middle(funded: Chain) -> None:
    extend(funded, 2)  # main: height 4
    old_tip = funded.tip.block_hash
    b1 = build_block(EASY, funded.index[funded.main[1]].header, miner=address(6))
    b2 = _bad_tx_block(b1)
    b3 = build_block(EASY, b2.header)
    b4 = build_block(EASY, b3.header)
    b5 = build_block(EASY, b4.header)
    assert [add(funded, b).status for b in (b1, b2, b3)] == ["side", "side", "side"]
    result = add(funded, b4)  # height 5 > 4: the switch finds b2 broken
    assert result.status == "invalid"
    assert result.error is not None and result.error.reason == "invalid_parent"
    assert [(h, e.reason) for h, e in result.rejected] == [(b2.block_hash, "insufficient_balance")]
    assert funded.tip.block_hash == old_tip
    for b in (b2, b3, b4):
        assert funded.index[b.block_hash].status == STATUS_INVALID
    assert add(funded, b5).error.reason == "invalid_parent"  # type: ignore[union-attr]
    for b in (b2, b3, b4, b5):
        assert add(funded, b).error.reason == "known_invalid"  # type: ignore[union-attr]
    assert_consistent(funded)


def test_invalid_block_delivered_after_its_descendants(funded: Chain) -> None:
    # The branch arrives backwards: descendants wait as orphans; when the bad block comes, the
    # orphans connect, the switch finds the bad block, and the bad block itself is reported.
    extend(funded, 2)
    old_tip = funded.tip.block_hash
    b1 = build_block(EASY, funded.index[funded.main[1]].header, miner=address(6))
    b2 = _bad_tx_block(b1)
    b3 = build_block(EASY, b2.header)
    b4 = build_block(EASY, b3.header)
    assert add(funded, b4).status == "orphan"
    assert add(funded, b3).status == "orphan"
    assert add(funded, b1).status == "side"
    result = add(funded, b2)
    assert funded.tip.block_hash == old_tip
    assert funded.index[b2.block_hash].status == STATUS_INVALID
    assert result.status == "invalid", (result.status, result.rejected)
    assert result.error is not None and result.error.reason == "insufficient_balance"
    assert len(funded.orphans) == 0
    assert_consistent(funded)


def test_orphan_below_a_rejected_block_is_rejected(chain: Chain) -> None:
    # A block failing a header rule is remembered; its orphan children are refused too.
    bad = build_block(EASY, chain.tip.header, height=5)
    child = build_block(EASY, bad.header)
    assert add(chain, bad).error.reason == "bad_height"  # type: ignore[union-attr]
    result = add(chain, child)
    assert result.status == "invalid" and result.error.reason == "invalid_parent"  # type: ignore[union-attr]
    assert add(chain, child).error.reason == "known_invalid"  # type: ignore[union-attr]


def test_transaction_on_both_branches_is_neither_returned_nor_dropped(funded: Chain) -> None:
    fork = funded.tip.header
    both = pay(1, 3, COIN, 0)
    lost_funding = pay(3, 4, COIN, 0)  # spends what ``both`` gave key 3, only on the old branch
    m1 = build_block(EASY, fork, [both, lost_funding])
    assert add(funded, m1).status == "connected"
    s1 = build_block(EASY, fork, [both], miner=address(6))
    s2 = build_block(EASY, s1.header, miner=address(6))
    assert add(funded, s1).status == "side"
    result = add(funded, s2)
    assert result.reorgs and result.reorgs[0].depth == 1
    # ``both`` is confirmed again on the new branch: not pending, and not reported as dropped.
    assert set(funded.mempool.txs) == {lost_funding.txid}
    assert result.dropped == []
    assert_consistent(funded)


def test_dropped_lists_what_a_reorg_invalidates(funded: Chain) -> None:
    fork = funded.tip.header
    gift = pay(1, 3, COIN, 0)
    spend = pay(3, 4, COIN, 0)
    assert add(funded, build_block(EASY, fork, [gift])).status == "connected"
    funded.add_transaction(spend, NOW)
    rival = pay(1, 5, 2 * COIN, 0)  # same nonce as ``gift``: gift can never confirm now
    s1 = build_block(EASY, fork, [rival], miner=address(6))
    s2 = build_block(EASY, s1.header, miner=address(6))
    add(funded, s1)
    result = add(funded, s2)
    # Each with the rule it breaks now (the log's ``tx_dropped`` reason): ``spend`` is held (a
    # block may fund it again), ``gift`` is gone for good (its nonce is used on the chain).
    assert [(tx.txid, reason) for tx, reason in result.dropped] == [(spend.txid, "insufficient_balance")]
    assert [(tx.txid, reason) for tx, reason in result.forgotten] == [(gift.txid, "nonce_used")]
    assert spend.txid in funded.held and gift.txid not in funded.held
    assert len(funded.mempool) == 0
    assert_consistent(funded)


def test_the_audit_refuses_a_main_chain_that_does_not_link(chain: Chain) -> None:
    # Two branches from genesis; a "main chain" that jumps from one to the other is refused
    # at the jump, which is what `trionode validate` reports for a store whose links broke.
    ours = extend(chain, 2, address(1))
    theirs = branch(EASY, EASY.genesis.header, 2)
    for block in theirs:
        add(chain, block)
    genesis = EASY.genesis.block_hash
    assert replay(EASY, chain.block, [genesis, ours[0].block_hash, ours[1].block_hash], NOW)[0] == []
    spliced = [genesis, ours[0].block_hash, theirs[1].block_hash]
    errors = replay(EASY, chain.block, spliced, NOW)[0]
    assert len(errors) == 1 and errors[0].startswith("height 2: bad_link"), errors


# ----------------------------------------------------------------------------- side-branch budget


def side_count(chain: Chain) -> int:
    return len(chain.index) - len(chain.main)


def stored_blocks(chain: Chain) -> int:
    chain.commit()
    return len(list(chain.store.iter_index()))


def siblings(parent: Block, n: int, first_ts: int) -> list[Block]:
    """``n`` distinct one-block branches on ``parent``: one block of work each."""
    return [build_block(EASY, parent.header, timestamp=first_ts + i, miner=address(7)) for i in range(n)]


def test_a_flood_of_side_blocks_stays_bounded(chain: Chain) -> None:
    assert MAX_SIDE_BLOCKS == 5_000 and MAX_SIDE_BYTES == 256 * 1024 * 1024
    assert (chain.max_side_blocks, chain.max_side_bytes) == (MAX_SIDE_BLOCKS, MAX_SIDE_BYTES)
    extend(chain, 20)
    chain.max_side_blocks = 100
    flood = siblings(EASY.genesis, 300, EASY.genesis.header.timestamp + 1)
    for block in flood:
        assert add(chain, block).status == "side"
        assert side_count(chain) <= 100
    assert stored_blocks(chain) == 21  # the main chain only: a flood never reaches the disk
    assert chain.height == 20
    # The budget forgot blocks; it never made them invalid: a forgotten one is unknown, so a
    # peer for which it matters can deliver it again.
    forgotten = [b for b in flood if not chain.knows(b.block_hash)]
    assert len(forgotten) >= 200
    assert add(chain, forgotten[0]).status == "side"
    # And by bytes: a few large side blocks take the room of many small ones.
    chain.max_side_bytes = 20 * flood[0].size()
    add(chain, siblings(EASY.genesis, 1, EASY.genesis.header.timestamp + 10_000)[0])
    kept = [chain.block(h) for h in chain.index if not chain.on_main(h)]
    assert sum(b.size() for b in kept if b is not None) <= 20 * flood[0].size()
    assert_consistent(chain)


def test_an_honest_deep_branch_delivered_in_order_wins_over_a_flood(chain: Chain) -> None:
    """600 blocks of ours against 700 of a peer's, fetched oldest first: after 600 of them
    the branch still has less work than our tip, yet it must be kept until it wins, while
    blocks of a flood that each bring one block of work (here, each as much total work as
    our tip, so ranking by total work would keep them instead) are forgotten."""
    stem = extend(chain, 3, address(1))
    theirs = branch(EASY, stem[-1].header, 700, miner=address(2))
    ours = extend(chain, 600, address(3))
    chain.max_side_blocks = 700  # a trim keeps 630: room for the 600 blocks that must wait
    tip_parent = chain.index[chain.main[-2]]
    near_tip = Block(tip_parent.header, [])  # a stand-in with the header ``siblings`` needs
    flood = siblings(near_tip, 600, ours[-1].header.timestamp + 1)
    for block in flood[:300]:
        assert add(chain, block).status == "side"
    results = []
    for i in range(0, 700, 100):  # batches, with flood blocks between them
        results += [add(chain, b) for b in theirs[i : i + 100]]
        for block in flood[300 + i // 2 : 300 + (i + 100) // 2]:
            add(chain, block)
        assert side_count(chain) <= 700 + 600  # + our old main chain once the branch won
    assert [r.status for r in results[:600]] == ["side"] * 600
    assert results[600].status == "connected"
    assert results[600].reorgs == [Reorg(ours[-1].block_hash, theirs[600].block_hash, 600)]
    assert chain.tip.block_hash == theirs[-1].block_hash
    assert all(chain.on_main(b.block_hash) for b in theirs)
    assert all(chain.knows(b.block_hash) for b in ours)  # the old branch is stored, not forgotten
    assert sum(not chain.knows(b.block_hash) for b in flood) >= 300  # the flood went instead
    assert_consistent(chain)


def test_a_reorg_with_a_full_pool_keeps_the_returned_transactions(funded: Chain) -> None:
    early = [pay(1, 3, COIN, n) for n in range(3)]
    assert add(funded, build_block(EASY, funded.tip.header, early)).status == "connected"
    fork = funded.tip.header
    returned = [pay(1, 3, COIN, n) for n in (3, 4)]
    assert add(funded, build_block(EASY, fork, returned)).status == "connected"
    funded.mempool.max_txs = 4
    newer = [pay(2, 4, COIN, n) for n in range(4)]
    for tx in newer:
        funded.add_transaction(tx, NOW)
    s1 = build_block(EASY, fork, miner=address(6))
    s2 = build_block(EASY, s1.header, miner=address(6))
    assert add(funded, s1).status == "side"
    result = add(funded, s2)
    assert result.reorgs and result.reorgs[0].depth == 1
    # Six candidates for four places: the sender with most pending gives up its last ones; the
    # returned transactions (sender 1's oldest) stay, and nothing is "invalid".
    assert set(funded.mempool.txs) == {t.txid for t in (*returned, *newer[:2])}
    assert result.dropped == [(newer[3], "mempool_full"), (newer[2], "mempool_full")]
    assert_consistent(funded)
    # They were held, not lost: the next block makes room and they come back.
    result = add(funded, build_block(EASY, funded.tip.header, funded.mempool.select(10**6, 10)))
    assert result.status == "connected" and result.readmitted == [newer[2], newer[3]]
    assert set(funded.mempool.txs) == {newer[2].txid, newer[3].txid}
    assert_consistent(funded)


# ----------------------------------------------------------------------------- returned transactions


def _lone_branch(chain: Chain, txs: list[Transaction], per_block: int) -> list[Block]:
    """Connect blocks on the tip carrying ``txs``, ``per_block`` at a time (a lone miner's)."""
    blocks = []
    for i in range(0, len(txs), per_block):
        block = build_block(EASY, chain.tip.header, txs[i : i + per_block])
        assert add(chain, block).status == "connected"
        blocks.append(block)
    return blocks


def test_a_reorg_returns_more_than_the_cap_and_a_crash_loses_none(db_path: Path) -> None:
    """A lone miner confirmed 150 transactions of one sender; the heavier chain has none of
    them. All 150 are pending after the reorganisation (the per-sender cap is for new ones),
    and still after a kill -9 right after it (reopened without a clean close)."""
    chain = Chain(EASY, Store(db_path))
    extend(chain, 1, address(1))
    chain.commit()
    fork = chain.tip.header
    lone = [pay(1, 3, 1, n) for n in range(150)]
    _lone_branch(chain, lone, 50)
    newer = pay(1, 3, 1, 150)  # pending on top of the lone branch: it stays, after them
    chain.add_transaction(newer, NOW)
    chain.commit()
    results = [add(chain, b) for b in branch(EASY, fork, 4)]
    assert results[-1].reorgs and results[-1].reorgs[0].depth == 3
    assert all(r.dropped == [] and r.forgotten == [] for r in results)
    everything = {tx.txid for tx in (*lone, newer)}
    assert set(chain.mempool.txs) == everything
    # Over the cap because of them: a new transaction of the sender is refused, not held.
    over = pay(1, 4, 1, 151)
    with pytest.raises(ValidationError) as refused:
        chain.add_transaction(over, NOW)
    assert refused.value.reason == "too_many_pending" and over.txid not in chain.held
    # Peers apply the cap too: only the first 100 are relayed for now.
    assert {tx.nonce for tx in chain.mempool.relayable()} == set(range(100))
    chain.commit()  # the chain owner commits the reorganisation before anything else happens

    again = Chain(EASY, Store(db_path))  # the first store was never closed: a kill -9
    assert set(again.mempool.txs) == everything
    assert [tx.nonce for tx in again.mempool.select(10**7, 1000)] == list(range(151))
    # A block confirms the first 50: the next 50 become relayable (peers can take them now).
    result = add(again, build_block(EASY, again.tip.header, lone[:50]))
    assert result.status == "connected"
    assert sorted(tx.nonce for tx in result.relay) == list(range(100, 150))
    assert set(again.mempool.txs) == everything - {tx.txid for tx in lone[:50]}
    assert_consistent(again)


def test_every_transaction_a_reorg_leaves_out_is_reported_with_a_reason(funded: Chain) -> None:
    """A pool of 4 and room to hold 2 aside: of 8 returned transactions, 4 stay pending, 2
    are held (``dropped``) and 2 are forgotten (``forgotten``), each with its reason."""
    funded.mempool.max_txs = 4
    funded.held.max_kept = 2
    fork = funded.tip.header
    returned = [pay(1, 3, COIN, n) for n in range(8)]
    _lone_branch(funded, returned, 4)
    results = [add(funded, b) for b in branch(EASY, fork, 3)]
    result = results[-1]
    assert result.reorgs
    assert set(funded.mempool.txs) == {tx.txid for tx in returned[:4]}
    assert result.dropped == [(returned[5], "mempool_full"), (returned[4], "mempool_full")]
    assert result.forgotten == [(returned[7], "mempool_full"), (returned[6], "mempool_full")]
    assert all(tx.txid in funded.held for tx, _ in result.dropped)
    assert not any(tx.txid in funded.held for tx, _ in result.forgotten)
    # The held ones come back when a block makes room, in nonce order.
    result = add(funded, build_block(EASY, funded.tip.header, returned[:4]))
    assert result.readmitted == [returned[4], returned[5]] and result.relay == result.readmitted
    assert_consistent(funded)


def test_a_held_transaction_whose_nonce_is_used_is_reported_forgotten(funded: Chain) -> None:
    funded.mempool.max_txs = 3
    mine_first = [pay(1, 3, COIN, n) for n in range(3)]
    for tx in mine_first:
        funded.add_transaction(tx, NOW)
    assert funded.add_transaction(pay(2, 3, COIN, 0), NOW).evicted == [mine_first[2]]
    rival = pay(1, 4, COIN, 2)  # sender 1's nonce 2, confirmed instead of the held one
    result = add(funded, build_block(EASY, funded.tip.header, [*mine_first[:2], rival]))
    assert result.status == "connected"
    assert result.forgotten == [(mine_first[2], "nonce_used")] and result.dropped == []
    assert mine_first[2].txid not in funded.held
