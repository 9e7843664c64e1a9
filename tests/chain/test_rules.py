"""Every consensus rule: one block that passes it, one that breaks it (with its reason code).

Blocks go through ``Chain.add_block`` (the path every peer's block takes) unless the rule lives
in one function; a rejected block must leave the tip and the ledger untouched.
"""

import hashlib

import pytest

from trionode.chain.amounts import MAX_MONEY
from trionode.chain.block import HEADER_BYTES, HEADER_VERSION, MAX_BLOCK_TXS, Block, BlockHeader
from trionode.chain.errors import ValidationError
from trionode.chain.merkle import merkle_root
from trionode.chain.params import MAX_BLOCK_TX_BYTES, MAX_FUTURE_MS, ChainParams
from trionode.chain.pow import MAX_TARGET, work_for_target
from trionode.chain.transaction import Transaction, coinbase, sign_transaction
from trionode.chain.tree import BlockResult, Chain
from trionode.chain.validation import check_block_body, median_time_past, next_target

from helpers import (
    BLOCK_SPACING_MS,
    EASY,
    NOW,
    add,
    address,
    build_block,
    extend,
    fails_pow,
    key,
    mine,
    new_chain,
    pay,
    seal,
    solve,
)

REWARD = EASY.mining_reward


def assert_rejected(chain: Chain, block: Block, reason: str) -> BlockResult:
    tip, balances, nonces = chain.tip.block_hash, dict(chain.ledger.balances), dict(chain.ledger.nonces)
    result = add(chain, block)
    assert result.status == "invalid", (result.status, result.error)
    assert result.error is not None and result.error.reason == reason, result.error
    assert chain.tip.block_hash == tip
    assert chain.ledger.balances == balances and chain.ledger.nonces == nonces
    return result


def assert_connected(chain: Chain, block: Block) -> BlockResult:
    result = add(chain, block)
    assert result.status == "connected", (result.status, result.error)
    assert chain.tip.block_hash == block.block_hash
    return result


def body_error(block: Block, params: ChainParams = EASY) -> str | None:
    try:
        check_block_body(block, params)
    except ValidationError as exc:
        return exc.reason
    return None


# ----------------------------------------------------------------------------- structure, size


def test_block_transaction_count_limit() -> None:
    tip = EASY.genesis.header
    # 36-byte coinbases (amount 1, timestamp 1): 20,001 of them stay far below the byte limit.
    tiny = coinbase(address(1), 1, 1, 1)
    cbs = [coinbase(address(1), REWARD, 1, tip.timestamp + 1)] + [tiny] * MAX_BLOCK_TXS
    header = BlockHeader(HEADER_VERSION, 1, tip.block_hash, tip.timestamp + 1, bytes(32), tip.target, 0)
    # At the limit the count passes and the next rule (one coinbase) speaks; one more is too large.
    assert body_error(seal(header, cbs[:MAX_BLOCK_TXS])) == "extra_coinbase"
    assert body_error(seal(header, cbs)) == "block_too_large"


def _filler(n: int, extra_bytes: int) -> list[Transaction]:
    """``n`` distinct, well-formed (unsigned-checked) transactions of minimal size, then
    ``extra_bytes`` more spread over them by widening amounts (1 -> 2, 3, 5 or 9 bytes)."""
    widen = {8: 2**40, 4: 70_000, 2: 300, 1: 200}
    txs = []
    for i in range(n):
        amount = 1
        for grow in (8, 4, 2, 1):
            if extra_bytes >= grow:
                amount = widen[grow]
                extra_bytes -= grow
                break
        recipient = hashlib.sha256(i.to_bytes(4, "big")).digest()[:20]
        txs.append(Transaction(key(1).public_key, recipient, amount, 0, 0, bytes(64)))
    assert extra_bytes == 0
    return txs


def test_block_size_limit_is_exact() -> None:
    tip = EASY.genesis.header
    cb = coinbase(address(1), REWARD, 1, tip.timestamp + 1)
    one = len(_filler(1, 0)[0].encoded)
    room = MAX_BLOCK_TX_BYTES - HEADER_BYTES - len(cb.encoded)
    n, rest = divmod(room, one)
    header = BlockHeader(HEADER_VERSION, 1, tip.block_hash, tip.timestamp + 1, bytes(32), tip.target, 0)
    at_limit = seal(header, [cb, *_filler(n, rest)])
    assert at_limit.size() == MAX_BLOCK_TX_BYTES
    assert body_error(at_limit) is None
    over = seal(header, [cb, *_filler(n, rest + 1)])
    assert over.size() == MAX_BLOCK_TX_BYTES + 1
    assert body_error(over) == "block_too_large"


def test_template_fits_the_size_limit_with_a_huge_mempool(
    funded: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With the template's count cap lifted, selection must stop at the size limit including
    # the 124-byte header, or the miner produces a block every node (itself included) rejects.
    import trionode.chain.tree as tree

    monkeypatch.setattr(tree, "TEMPLATE_MAX_TXS", 100_000)
    funded.mempool.max_txs = funded.mempool.max_per_sender = 100_000
    size = HEADER_BYTES + len(funded.template(address(1), NOW).txs[0].encoded)
    nonce = 0
    while size <= MAX_BLOCK_TX_BYTES + 200:
        tx = pay(1, 2, 1, nonce)
        funded.add_transaction(tx, NOW, signature_checked=True)  # signing is the test's cost
        size += len(tx.encoded)
        nonce += 1
    block = mine(funded)
    assert block.size() <= MAX_BLOCK_TX_BYTES
    assert_connected(funded, block)


# ----------------------------------------------------------------------------- ids, root, hash, pow


def test_changed_transaction_is_caught_by_the_merkle_root(funded: Chain) -> None:
    good = mine(funded, txs=[pay(1, 3, 10, 0)])
    # Same header, one field of the transaction changed and even re-signed by its owner: the
    # recomputed txid no longer matches the root (the seed never recomputed ids).
    forged = Block(good.header, [good.txs[0], pay(1, 3, 11, 0)])
    assert_rejected(funded, forged, "bad_merkle_root")
    reordered = build_block(EASY, funded.tip.header, [pay(1, 3, 1, 0), pay(1, 3, 2, 1)])
    swapped = Block(reordered.header, [reordered.txs[0], reordered.txs[2], reordered.txs[1]])
    assert_rejected(funded, swapped, "bad_merkle_root")
    assert_connected(funded, good)


def test_proof_of_work(chain: Chain) -> None:
    good = mine(chain)
    lazy = Block(fails_pow(good.header), good.txs)
    assert_rejected(chain, lazy, "bad_pow")
    assert_connected(chain, good)


def test_target_must_follow_the_rule(chain: Chain) -> None:
    # A block may not pick its own easier target (any hash meets MAX_TARGET).
    easy = build_block(EASY, chain.tip.header, target=MAX_TARGET)
    assert_rejected(chain, easy, "bad_target")
    harder = build_block(EASY, chain.tip.header, target=chain.tip.header.target // 2)
    assert_rejected(chain, harder, "bad_target")
    assert_connected(chain, build_block(EASY, chain.tip.header))


def test_header_version(chain: Chain) -> None:
    good = build_block(EASY, chain.tip.header)
    h = good.header
    v2 = solve(BlockHeader(2, h.height, h.prev_hash, h.timestamp, h.merkle_root, h.target, 0))
    assert_rejected(chain, Block(v2, good.txs), "bad_version")
    assert_connected(chain, good)


# ----------------------------------------------------------------------------- link and height


def test_unknown_parent_is_an_orphan_not_a_rejection(chain: Chain) -> None:
    b1 = build_block(EASY, chain.tip.header)
    b2 = build_block(EASY, b1.header)
    result = add(chain, b2)
    assert result.status == "orphan" and result.missing == b1.block_hash
    assert chain.height == 0 and b2.block_hash not in chain.index
    assert add(chain, b1).status == "connected"
    assert chain.tip.block_hash == b2.block_hash  # the orphan joined when its parent came


def test_height_must_follow_the_parent(chain: Chain) -> None:
    assert_rejected(chain, build_block(EASY, chain.tip.header, height=2), "bad_height")
    extend(chain, 1)
    assert_rejected(chain, build_block(EASY, chain.tip.header, height=1), "bad_height")
    assert_connected(chain, build_block(EASY, chain.tip.header, height=2))


# ----------------------------------------------------------------------------- time


def test_timestamp_above_median_of_last_11(chain: Chain) -> None:
    # The last eleven times are not monotonic (10 s .. 100 s, then 95 s): their median is 60 s,
    # well below the parent's 95 s. The rule is about the median, not the parent.
    base = EASY.genesis.header.timestamp
    for off in [*range(10, 101, 10), 95]:
        assert_connected(chain, build_block(EASY, chain.tip.header, timestamp=base + off * 1000))
    times = [chain.index[h].header.timestamp for h in chain.main[-11:]]
    mtp = median_time_past(times)
    assert mtp == base + 60_000
    assert_rejected(chain, build_block(EASY, chain.tip.header, timestamp=mtp), "time_too_old")
    assert_rejected(chain, build_block(EASY, chain.tip.header, timestamp=base), "time_too_old")
    # Earlier than the parent yet above the median: valid.
    assert_connected(chain, build_block(EASY, chain.tip.header, timestamp=mtp + 1))


def test_median_uses_the_blocks_below_11(chain: Chain) -> None:
    g = EASY.genesis.header.timestamp
    assert_rejected(chain, build_block(EASY, chain.tip.header, timestamp=g), "time_too_old")
    assert_connected(chain, build_block(EASY, chain.tip.header, timestamp=g + 1))


def test_timestamp_at_most_two_hours_ahead(chain: Chain) -> None:
    now = EASY.genesis.header.timestamp + 10_000
    at_limit = build_block(EASY, chain.tip.header, timestamp=now + MAX_FUTURE_MS)
    assert add(chain, at_limit, now).status == "connected"
    too_new = build_block(EASY, chain.tip.header, timestamp=now + MAX_FUTURE_MS + 1)
    result = add(chain, too_new, now)
    assert result.status == "invalid" and result.error is not None
    assert result.error.reason == "time_too_new"
    assert chain.height == 1
    # Not remembered as invalid: once our clock catches up the same block is fine.
    assert add(chain, too_new, now + 1).status == "connected"


# ----------------------------------------------------------------------------- signatures


def test_signatures_in_blocks(funded: Chain) -> None:
    good = pay(1, 3, 10, 0)
    bad_sig = Transaction(good.sender, good.recipient, good.amount, good.nonce, good.timestamp,
                          bytes([good.signature[0] ^ 1]) + good.signature[1:])  # fmt: skip
    other_net = ChainParams(difficulty=1, mining_reward=REWARD, target_block_time=61)
    foreign = pay(1, 3, 10, 0, params=other_net)
    # Key 2 signs, claiming to be key 1: the signature is checked against the sender's key.
    stolen = Transaction(key(1).public_key, address(3), 10, 0, good.timestamp,
                         key(2).sign(good.signing_bytes(EASY.network)))  # fmt: skip
    unsigned = Transaction(good.sender, good.recipient, 10, 0, good.timestamp, b"")
    for tx in (bad_sig, foreign, stolen, unsigned):
        assert_rejected(funded, mine(funded, txs=[tx]), "bad_signature")
    assert_connected(funded, mine(funded, txs=[good]))


def test_signature_from_another_network_in_the_mempool(funded: Chain) -> None:
    other_net = ChainParams(difficulty=2)
    assert other_net.network != EASY.network
    with pytest.raises(ValidationError) as info:
        funded.add_transaction(pay(1, 3, 10, 0, params=other_net), NOW)
    assert info.value.reason == "bad_signature"
    funded.add_transaction(pay(1, 3, 10, 0), NOW)
    assert len(funded.mempool) == 1


# ----------------------------------------------------------------------------- nonces


def test_nonces_in_sequence_within_a_block(funded: Chain) -> None:
    assert_rejected(funded, mine(funded, txs=[pay(1, 3, 1, 1)]), "bad_nonce")
    assert_rejected(funded, mine(funded, txs=[pay(1, 3, 1, 0), pay(1, 3, 1, 2)]), "bad_nonce")
    assert_rejected(funded, mine(funded, txs=[pay(1, 3, 1, 1), pay(1, 3, 1, 0)]), "bad_nonce")
    # Two different transactions with the same nonce: the second is a double spend.
    assert_rejected(funded, mine(funded, txs=[pay(1, 3, 1, 0), pay(1, 4, 1, 0)]), "bad_nonce")
    assert_connected(funded, mine(funded, txs=[pay(1, 3, 1, 0), pay(1, 3, 1, 1)]))
    assert funded.ledger.nonce(address(1)) == 2


def test_replayed_transaction_is_rejected(funded: Chain) -> None:
    tx = pay(1, 3, 10, 0)
    assert_connected(funded, mine(funded, txs=[tx]))
    assert_rejected(funded, mine(funded, txs=[tx]), "bad_nonce")
    with pytest.raises(ValidationError) as info:
        funded.add_transaction(tx, NOW)
    assert info.value.reason == "nonce_used"


# ----------------------------------------------------------------------------- balances


def test_overspend(funded: Chain) -> None:
    assert_rejected(funded, mine(funded, txs=[pay(1, 3, REWARD + 1, 0)]), "insufficient_balance")
    assert_rejected(funded, mine(funded, txs=[pay(3, 1, 1, 0)]), "insufficient_balance")  # no coins
    assert_connected(funded, mine(funded, txs=[pay(1, 3, REWARD, 0)]))  # exactly all of it
    assert funded.balance(address(1)) == 0
    assert address(1) not in funded.ledger.balances


def test_double_spend_within_one_block(funded: Chain) -> None:
    txs = [pay(1, 3, 30 * 10**8, 0), pay(1, 4, 30 * 10**8, 1)]
    assert_rejected(funded, mine(funded, txs=txs), "insufficient_balance")
    assert_connected(funded, mine(funded, txs=txs[:1]))


def test_double_spend_across_blocks(funded: Chain) -> None:
    assert_connected(funded, mine(funded, txs=[pay(1, 3, 30 * 10**8, 0)]))
    assert_rejected(funded, mine(funded, txs=[pay(1, 4, 30 * 10**8, 1)]), "insufficient_balance")
    assert_connected(funded, mine(funded, txs=[pay(1, 4, 20 * 10**8, 1)]))


def test_received_coins_are_spendable_in_the_same_block(funded: Chain) -> None:
    # Key 3 has nothing; key 1 pays it first, then key 3 spends part of it in the same block.
    assert_connected(funded, mine(funded, txs=[pay(1, 3, 10, 0), pay(3, 4, 7, 0)]))
    assert funded.balance(address(3)) == 3


def test_coinbase_is_spendable_in_the_same_block(funded: Chain) -> None:
    block = mine(funded, miner=address(5), txs=[pay(5, 4, REWARD, 0)])
    assert_connected(funded, block)
    assert funded.balance(address(4)) == REWARD


def test_no_balance_may_exceed_max_money() -> None:
    # Reachable only with a reward near MAX_MONEY ([chain] mining_reward allows it): the second
    # reward to one address would push it past what an amount can hold.
    params = ChainParams(difficulty=1, mining_reward=MAX_MONEY)
    chain = new_chain(params)
    assert_connected(chain, build_block(params, chain.tip.header, miner=address(1)))
    assert_rejected(chain, build_block(params, chain.tip.header, miner=address(1)), "balance_overflow")
    assert_connected(chain, build_block(params, chain.tip.header, miner=address(2)))
    assert chain.balance(address(1)) == chain.balance(address(2)) == MAX_MONEY


def test_zero_amount(funded: Chain) -> None:
    assert_rejected(funded, mine(funded, txs=[pay(1, 3, 0, 0)]), "bad_amount")


# ----------------------------------------------------------------------------- coinbase


def test_coinbase_pays_exactly_the_reward(chain: Chain) -> None:
    tip = chain.tip.header
    assert_rejected(chain, build_block(EASY, tip, reward=REWARD + 1), "bad_coinbase_amount")
    assert_rejected(chain, build_block(EASY, tip, reward=REWARD - 1), "bad_coinbase_amount")
    assert_connected(chain, build_block(EASY, tip, reward=REWARD))
    assert chain.ledger.total() == REWARD


def test_one_coinbase_first(funded: Chain) -> None:
    tip = funded.tip.header
    ts = tip.timestamp + BLOCK_SPACING_MS
    h = tip.height + 1
    cb = coinbase(address(1), REWARD, h, ts)
    cb2 = coinbase(address(2), REWARD, h, ts)
    tx = pay(1, 3, 1, 0)
    header = BlockHeader(HEADER_VERSION, h, tip.block_hash, ts, bytes(32), tip.target, 0)
    assert_rejected(funded, seal(header, [cb, cb2]), "extra_coinbase")
    assert_rejected(funded, seal(header, [cb, tx, cb2]), "extra_coinbase")
    assert_rejected(funded, seal(header, [tx]), "missing_coinbase")
    assert_rejected(funded, seal(header, []), "missing_coinbase")
    assert_rejected(funded, seal(header, [tx, cb]), "missing_coinbase")  # not first
    wrong_height = coinbase(address(1), REWARD, h + 1, ts)
    assert_rejected(funded, seal(header, [wrong_height]), "bad_coinbase")
    signed_cb = Transaction(b"", address(1), REWARD, h, ts, bytes(64))
    assert_rejected(funded, seal(header, [signed_cb]), "bad_coinbase")
    assert_connected(funded, seal(header, [cb, tx]))


def test_coinbase_never_enters_the_mempool(funded: Chain) -> None:
    with pytest.raises(ValidationError) as info:
        funded.add_transaction(coinbase(address(1), REWARD, 3, NOW), NOW)
    assert info.value.reason == "unexpected_coinbase"


# ----------------------------------------------------------------------------- duplicates


def test_duplicate_transaction_in_a_block(funded: Chain) -> None:
    tx = pay(1, 3, 1, 0)
    assert_rejected(funded, mine(funded, txs=[tx, tx]), "duplicate_tx")
    assert_connected(funded, mine(funded, txs=[tx]))


# ----------------------------------------------------------------------------- genesis


def test_genesis_is_derived_from_the_parameters() -> None:
    g = EASY.genesis
    assert g.height == 0 and g.txs == []
    assert g.prev_hash == hashlib.sha256(EASY.canonical()).digest()
    assert ChainParams(difficulty=1).network == EASY.network  # reproducible
    others = {
        ChainParams(difficulty=2).network,
        ChainParams(difficulty=1, mining_reward=REWARD + 1).network,
        ChainParams(difficulty=1, retarget_interval=10).network,
        ChainParams(difficulty=1, target_block_time=30).network,
    }
    assert EASY.network not in others and len(others) == 4


def test_genesis_must_match(chain: Chain) -> None:
    assert chain.block_at(0) is not None
    assert chain.block_at(0).block_hash == EASY.network  # type: ignore[union-attr]
    assert body_error(EASY.genesis) is None
    foreign = ChainParams(difficulty=2).genesis
    assert body_error(foreign) == "bad_genesis"
    assert_rejected(chain, foreign, "bad_genesis")
    # Any other block claiming height 0, even a well-formed one.
    fake = build_block(EASY, EASY.genesis.header, height=0)
    assert_rejected(chain, fake, "bad_genesis")
    assert add(chain, EASY.genesis).status == "duplicate"


def test_invalid_parameters_are_refused() -> None:
    for bad in (
        {"difficulty": 64},
        {"mining_reward": 0},
        {"retarget_interval": 1},
        {"retarget_interval": -2},
        {"target_block_time": 0},
    ):
        with pytest.raises(ValueError):
            ChainParams(**bad)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- retargeting

RETARGET = ChainParams(difficulty=1, retarget_interval=2, target_block_time=60)


def _child(parent: Block, spacing_ms: int, ancestors: dict[bytes, Block]) -> Block:
    """A retarget-aware child: the target from the rule, ``spacing_ms`` after the parent."""
    span_start = ancestors[parent.prev_hash].header.timestamp if parent.height > 0 else None
    target = next_target(RETARGET, parent.header, span_start)
    return build_block(RETARGET, parent.header, timestamp=parent.header.timestamp + spacing_ms, target=target)


def _grow(n: int, spacing_ms: int) -> list[Block]:
    known = {RETARGET.genesis.block_hash: RETARGET.genesis}
    blocks = [RETARGET.genesis]
    for _ in range(n):
        child = _child(blocks[-1], spacing_ms, known)
        known[child.block_hash] = child
        blocks.append(child)
    return blocks[1:]


def test_next_target_rule() -> None:
    parent = build_block(RETARGET, RETARGET.genesis.header)
    t = parent.header.target
    expected = 60_000  # (interval - 1) blocks of 60 s
    g = RETARGET.genesis.header.timestamp
    p = parent.header.timestamp
    assert next_target(RETARGET, parent.header, p - expected) == t  # on time: unchanged
    assert next_target(RETARGET, parent.header, p - 2 * expected) == 2 * t  # twice too slow
    assert next_target(RETARGET, parent.header, p - expected // 2) == t // 2
    assert next_target(RETARGET, parent.header, p) == t // 4  # clamped at 4x
    assert next_target(RETARGET, parent.header, g - 10**9) == 4 * t
    off = ChainParams(difficulty=1)
    assert next_target(off, parent.header, p) == t
    child = build_block(RETARGET, parent.header)
    assert next_target(RETARGET, child.header, p) == t  # height 3: not a retarget height
    top = build_block(
        ChainParams(difficulty=0, retarget_interval=2), ChainParams(difficulty=0).genesis.header
    )
    assert next_target(ChainParams(difficulty=0, retarget_interval=2), top.header, 0) == MAX_TARGET


def test_retarget_is_enforced() -> None:
    chain = new_chain(RETARGET)
    fast = _grow(3, 1)  # 1 ms apart: height 2 gets a 4x harder target
    assert fast[1].header.target == fast[0].header.target // 4
    assert_connected(chain, fast[0])
    unchanged = build_block(RETARGET, fast[0].header, timestamp=fast[0].header.timestamp + 1)
    assert_rejected(chain, unchanged, "bad_target")
    assert_connected(chain, fast[1])
    # Height 3 keeps its parent's target.
    assert_connected(chain, fast[2])
    assert fast[2].header.target == fast[1].header.target
    assert chain.template(address(0), NOW).header.target == next_target(
        RETARGET, fast[2].header, fast[1].header.timestamp
    )


def test_a_retarget_period_may_not_start_before_its_parent() -> None:
    """The time-warp rule: with periods measured first block to last, a period's first block
    dated before the previous period's last would hide time between periods from the rule."""
    chain = new_chain(RETARGET)
    b1, b2 = _grow(2, 60_000)
    b3 = build_block(RETARGET, b2.header, timestamp=b2.header.timestamp + 120_000)
    for block in (b1, b2, b3):
        assert_connected(chain, block)
    # Height 4 starts a period (interval 2). Its timestamp passes the median rule (> b2's)...
    target = next_target(RETARGET, b3.header, b2.header.timestamp)
    warped = build_block(RETARGET, b3.header, timestamp=b2.header.timestamp + 1, target=target)
    assert_rejected(chain, warped, "time_warp")
    # ...and the parent's own timestamp is enough. The template keeps to it even when the
    # miner's clock is behind the parent.
    template = chain.template(address(0), b2.header.timestamp)
    assert template.header.timestamp == b3.header.timestamp
    on_time = build_block(RETARGET, b3.header, timestamp=b3.header.timestamp, target=target)
    assert_connected(chain, on_time)
    # Inside a period only the median rule applies: height 5 may be older than its parent.
    older = build_block(RETARGET, on_time.header, timestamp=b2.header.timestamp + 1)
    assert_connected(chain, older)
    assert chain.validate_all(NOW) == []


def test_work_follows_the_target_so_fewer_harder_blocks_win() -> None:
    fast = _grow(3, 1)  # targets: t, t/4, t/4
    slow = _grow(6, 10 * 60_000)  # targets: t, 4t, 4t, 16t (capped below MAX_TARGET)...
    t = RETARGET.genesis.header.target
    fast_work = sum(work_for_target(b.header.target) for b in fast)
    slow_work = sum(work_for_target(b.header.target) for b in slow)
    assert fast_work > slow_work and len(slow) > len(fast)
    assert slow[1].header.target == 4 * t

    chain = new_chain(RETARGET)
    for b in slow:
        assert add(chain, b).status == "connected"
    assert chain.height == 6
    results = [add(chain, b) for b in fast]
    # Two fast blocks (work 16 + 64) already outweigh six slow ones (16 + 4 + 4 + 1 + 1 + 1).
    assert [r.status for r in results] == ["side", "connected", "connected"]
    assert chain.tip.block_hash == fast[-1].block_hash
    assert results[1].reorgs[0].depth == 6
    assert chain.work == work_for_target(t) + fast_work
    assert chain.validate_all(NOW) == []


def test_sign_transaction_helper_matches_pay() -> None:
    tx = sign_transaction(key(1), EASY.network, address(2), 5, 0, NOW - 1)
    assert tx.txid == pay(1, 2, 5, 0).txid
    assert tx.signature_valid(EASY.network)
    assert merkle_root([tx.txid]) == tx.txid
