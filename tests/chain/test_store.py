"""The SQLite store: what survives a reopen, what is refused, and what ``validate_all`` catches."""

import sqlite3
from pathlib import Path

import pytest

from trionode.chain.audit import validate_store
from trionode.chain.block import Block
from trionode.chain.encoding import packb, unpackb
from trionode.chain.params import ChainParams
from trionode.chain.store import STATUS_INVALID, STATUS_VALID, Store, StoreError
from trionode.chain.transaction import Transaction
from trionode.chain.tree import Chain

from helpers import EASY, NOW, add, address, branch, build_block, extend, mine, pay, solve

COIN = 10**8


def open_chain(path: Path, params: ChainParams = EASY) -> Chain:
    return Chain(params, Store(path))


def snapshot(chain: Chain) -> tuple[object, ...]:
    return (
        chain.tip.block_hash,
        chain.height,
        chain.work,
        list(chain.main),
        dict(chain.ledger.balances),
        dict(chain.ledger.nonces),
        set(chain.mempool.txs),  # a set: the pool keeps (nonce, arrival) order, not arrival order
    )


def funded_on_disk(path: Path) -> Chain:
    chain = open_chain(path)
    extend(chain, 1, address(1))
    extend(chain, 1, address(2))
    chain.commit()
    return chain


def test_reopen_restores_tip_ledger_and_mempool(db_path: Path) -> None:
    chain = funded_on_disk(db_path)
    chain.add_transaction(pay(1, 3, COIN, 0), NOW)
    extend(chain, 1)
    chain.add_transaction(pay(1, 3, COIN, 1), NOW)
    chain.add_transaction(pay(2, 4, 2 * COIN, 0), NOW)
    chain.add_transaction(pay(1, 4, COIN, 2), NOW)
    chain.commit()
    before = snapshot(chain)
    chain.store.close()
    again = open_chain(db_path)
    assert snapshot(again) == before
    assert again.validate_all(NOW) == []
    assert again.ledger.total() == EASY.mining_reward * again.height


def test_only_committed_state_survives(db_path: Path) -> None:
    chain = funded_on_disk(db_path)
    before = snapshot(chain)
    extend(chain, 3)
    chain.add_transaction(pay(1, 3, COIN, 0), NOW)
    chain.store.rollback()  # what a crash before commit amounts to
    chain.store.close()
    assert snapshot(open_chain(db_path)) == before


def test_store_of_another_network_is_refused(db_path: Path) -> None:
    funded_on_disk(db_path).store.close()
    with pytest.raises(StoreError, match="network"):
        open_chain(db_path, ChainParams(difficulty=2))
    with pytest.raises(StoreError):
        open_chain(db_path, ChainParams(difficulty=1, mining_reward=EASY.mining_reward + 1))
    assert open_chain(db_path).height == 2  # refusing changed nothing


def test_a_file_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError):
        Store(junk)


def test_side_blocks_that_never_competed_are_not_stored(db_path: Path) -> None:
    # A side branch whose work never beat the tip stays in memory only (a flood of them must
    # not grow the store); after a restart it is unknown, so a peer can deliver it again.
    chain = funded_on_disk(db_path)
    side = branch(EASY, EASY.genesis.header, 2)
    assert [add(chain, b).status for b in side] == ["side", "side"]  # equal work: first seen stays
    assert all(chain.knows(b.block_hash) for b in side)
    chain.commit()
    tip = chain.tip.block_hash
    chain.store.close()
    assert sqlite3.connect(db_path).execute("SELECT count(*) FROM blocks").fetchone()[0] == 3

    again = open_chain(db_path)
    assert again.tip.block_hash == tip
    assert not any(again.knows(b.block_hash) for b in side)
    assert [add(again, b).status for b in side] == ["side", "side"]
    more = build_block(EASY, side[-1].header)
    result = add(again, more)
    assert result.status == "connected" and result.reorgs[0].depth == 2
    assert again.main[1:] == [side[0].block_hash, side[1].block_hash, more.block_hash]
    assert again.index[side[0].block_hash].status == STATUS_VALID
    again.commit()
    again.store.close()
    # The winning branch was stored with the tip, and the old main blocks stay stored.
    third = open_chain(db_path)
    assert third.main[1:] == [side[0].block_hash, side[1].block_hash, more.block_hash]
    assert third.index[chain.main[2]].status == STATUS_VALID and not third.on_main(chain.main[2])
    assert third.validate_all(NOW) == []


def test_invalid_blocks_stay_invalid_after_reopen(db_path: Path) -> None:
    chain = funded_on_disk(db_path)
    g = chain.index[chain.main[1]].header
    bad = build_block(EASY, g, [pay(3, 4, COIN, 0)])  # key 3 has nothing
    child = build_block(EASY, bad.header)
    assert add(chain, bad).status == "side"  # state rules run when a branch would win
    result = add(chain, child)
    assert result.status == "invalid" and result.rejected[0][0] == bad.block_hash
    chain.commit()
    chain.store.close()
    again = open_chain(db_path)
    assert again.index[bad.block_hash].status == STATUS_INVALID
    grandchild = build_block(EASY, child.header)
    result = add(again, grandchild)
    assert result.status == "invalid" and result.error is not None
    assert result.error.reason == "invalid_parent"
    assert add(again, bad).error.reason == "known_invalid"  # type: ignore[union-attr]


def test_mempool_reload_keeps_nonce_order_after_a_reorg(db_path: Path) -> None:
    # a0 is confirmed, then a1 (nonce 1) is pending and persisted. A reorg returns a0 to the
    # pool, where it is persisted after a1: the reload must still accept both.
    chain = funded_on_disk(db_path)
    fork_point = chain.tip.header
    a0, a1 = pay(1, 3, COIN, 0), pay(1, 3, COIN, 1)
    add(chain, mine(chain, txs=[a0]))
    chain.add_transaction(a1, NOW)
    chain.commit()
    side = branch(EASY, fork_point, 2)
    results = [add(chain, b) for b in side]
    assert results[-1].reorgs and list(chain.mempool.txs) == [a0.txid, a1.txid]
    chain.commit()
    chain.store.close()
    again = open_chain(db_path)
    assert set(again.mempool.txs) == {a0.txid, a1.txid}
    again.store.close()
    assert set(open_chain(db_path).mempool.txs) == {a0.txid, a1.txid}  # and not deleted on load


def _tamper_body(path: Path, height: int, edit: object) -> None:
    db = sqlite3.connect(path)
    try:
        tip = db.execute("SELECT value FROM meta WHERE key = 'tip'").fetchone()[0]
        # Walk down from the tip to the main block at ``height``.
        h = tip
        while True:
            row = db.execute("SELECT prev, height, body FROM blocks WHERE hash = ?", (h,)).fetchone()
            if row[1] == height:
                break
            h = row[0]
        body = unpackb(bytes(row[2]))
        new = edit(body)  # type: ignore[operator]
        db.execute("UPDATE blocks SET body = ? WHERE hash = ?", (new, h))
        db.commit()
    finally:
        db.close()


def _tampered_store_is_refused_at_open_and_validate_names_the_rule(
    db_path: Path, main: list[bytes], height: int, what: str, rule: str
) -> None:
    with pytest.raises(StoreError, match=f"height {height}.*{what}.*trionode validate"):
        open_chain(db_path)
    store = Store(db_path, readonly=True)  # what `trionode validate` reads
    try:
        errors = validate_store(EASY, store, main, NOW)
    finally:
        store.close()
    assert errors and errors[0].startswith(f"height {height}: {rule}"), errors


def test_a_changed_transaction_is_caught_at_open_and_by_validate(db_path: Path) -> None:
    chain = funded_on_disk(db_path)
    add(chain, mine(chain, txs=[pay(1, 3, COIN, 0)]))
    extend(chain, 2)
    chain.commit()
    assert chain.validate_all(NOW) == []
    main = list(chain.main)
    chain.store.close()

    def richer(body: list[list[object]]) -> bytes:
        body[1][2] = 2 * COIN  # the transfer now moves 2 coins (still affordable)
        return packb(body)

    _tamper_body(db_path, 3, richer)
    _tampered_store_is_refused_at_open_and_validate_names_the_rule(
        db_path, main, 3, "Merkle root", "bad_merkle_root"
    )


def test_a_changed_coinbase_time_is_caught_at_open_and_by_validate(db_path: Path) -> None:
    chain = funded_on_disk(db_path)
    extend(chain, 3)
    chain.commit()
    main = list(chain.main)
    chain.store.close()

    def later(body: list[list[object]]) -> bytes:
        body[0][4] += 1  # type: ignore[operator]
        return packb(body)

    _tamper_body(db_path, 4, later)
    _tampered_store_is_refused_at_open_and_validate_names_the_rule(
        db_path, main, 4, "Merkle root", "bad_merkle_root"
    )


def test_a_changed_header_is_caught_at_open_and_by_validate(db_path: Path) -> None:
    chain = funded_on_disk(db_path)
    extend(chain, 2)
    chain.commit()
    main = list(chain.main)
    target_hash = chain.main[3]
    chain.store.close()
    db = sqlite3.connect(db_path)
    header = bytearray(db.execute("SELECT header FROM blocks WHERE hash = ?", (target_hash,)).fetchone()[0])
    header[12 + 32 + 7] ^= 1  # the low byte of the timestamp
    db.execute("UPDATE blocks SET header = ? WHERE hash = ?", (bytes(header), target_hash))
    db.commit()
    db.close()
    _tampered_store_is_refused_at_open_and_validate_names_the_rule(db_path, main, 3, "hashes to", "bad_hash")


def test_an_unreadable_pending_transaction_is_dropped_and_counted_not_fatal(db_path: Path) -> None:
    chain = funded_on_disk(db_path)
    chain.add_transaction(pay(1, 3, COIN, 0), NOW)
    chain.add_transaction(pay(1, 3, COIN, 1), NOW)
    chain.commit()
    assert len(chain.mempool) == 2
    chain.store.close()
    db = sqlite3.connect(db_path)
    db.execute("UPDATE mempool SET body = ? WHERE seq = (SELECT max(seq) FROM mempool)", (b"\xc1",))
    db.commit()
    db.close()
    again = open_chain(db_path)
    assert again.store.damaged_mempool_rows == 1
    assert len(again.mempool) == 1  # the readable one survives
    again.store.close()
    assert open_chain(db_path).store.damaged_mempool_rows == 0  # the bad row is gone for good


def test_a_read_only_store_writes_nothing(db_path: Path, tmp_path: Path) -> None:
    chain = funded_on_disk(db_path)
    chain.store.close()
    store = Store(db_path, readonly=True)
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store.set_meta("tip", bytes(32))
    finally:
        store.close()
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(StoreError, match="not a chain store"):
        Store(empty, readonly=True)
    assert empty.stat().st_size == 0  # and nothing was created in it


def test_overspending_stored_block_is_refused_at_open(db_path: Path) -> None:
    # A well-formed block (hash, Merkle root and proof of work all fine) that breaks a ledger
    # rule, written as the tip behind the chain's back: only the replay at open can see it.
    chain = funded_on_disk(db_path)
    bad = build_block(EASY, chain.tip.header, [pay(1, 3, 51 * COIN, 0)], miner=address(0))
    chain.store.put_block(bad, chain.tip.work + 1, STATUS_VALID, 10_000)
    chain.store.set_meta("tip", bad.block_hash)
    chain.store.commit()
    chain.store.close()
    with pytest.raises(StoreError, match=f"fails at {bad.height}: insufficient_balance"):
        open_chain(db_path)


@pytest.mark.parametrize(
    "damage",
    [
        b"\x93\x01",  # truncated msgpack
        b"\xc1",  # a byte msgpack never uses
        packb([[1, 2, 3]]),  # a transaction of the wrong shape
        packb({"a": 1}),
    ],
)
def test_unreadable_stored_body_is_a_store_error(db_path: Path, damage: bytes) -> None:
    chain = funded_on_disk(db_path)
    extend(chain, 2)
    chain.commit()
    chain.store.close()
    _tamper_body(db_path, 3, lambda body: damage)
    with pytest.raises(StoreError, match="damaged"):
        open_chain(db_path)


def test_unreadable_stored_header_is_a_store_error(db_path: Path) -> None:
    chain = funded_on_disk(db_path)
    chain.store.close()
    db = sqlite3.connect(db_path)
    db.execute("UPDATE blocks SET header = ? WHERE height = 1", (b"\x00" * 100,))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="damaged"):
        open_chain(db_path)


def test_validate_all_reports_an_unreadable_body(db_path: Path) -> None:
    chain = funded_on_disk(db_path)
    extend(chain, 2)
    chain.commit()
    # A body damaged while the node runs (not in the block cache): an error, not a crash.
    damaged = chain.main[3]
    db = sqlite3.connect(db_path)
    db.execute("UPDATE blocks SET body = ? WHERE hash = ?", (b"\xc1", damaged))
    db.commit()
    db.close()
    chain._cache.clear()  # as if a long chain had pushed the block out of the cache
    errors = chain.validate_all(NOW)
    assert errors and errors[0].startswith("height 3:"), errors


def test_damaged_tip_or_missing_block_is_refused(db_path: Path) -> None:
    chain = funded_on_disk(db_path)
    extend(chain, 2)
    chain.commit()
    middle = chain.main[2]
    chain.store.close()
    db = sqlite3.connect(db_path)
    db.execute("DELETE FROM blocks WHERE hash = ?", (middle,))
    db.commit()
    db.close()
    with pytest.raises(StoreError):
        open_chain(db_path)
    db = sqlite3.connect(db_path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'tip'", (b"\x00" * 32,))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="tip"):
        open_chain(db_path)


def test_validate_all_healthy_and_progress(db_path: Path) -> None:
    chain = funded_on_disk(db_path)
    extend(chain, 5)
    seen: list[int] = []
    assert chain.validate_all(NOW, seen.append) == []
    assert seen == list(range(1, 8))
    chain.ledger.balances[address(1)] += 1  # an in-memory ledger that drifted
    assert chain.validate_all(NOW) == ["ledger differs from a replay of the chain"]


def test_mempool_rows_follow_commits(db_path: Path) -> None:
    chain = funded_on_disk(db_path)
    tx = pay(1, 3, COIN, 0)
    chain.add_transaction(tx, NOW)
    chain.commit()
    rows = [Transaction.from_wire(unpackb(bytes(r[0])))
            for r in sqlite3.connect(db_path).execute("SELECT body FROM mempool")]  # fmt: skip
    assert [t.txid for t in rows] == [tx.txid]
    extend(chain, 1)
    chain.commit()
    assert sqlite3.connect(db_path).execute("SELECT count(*) FROM mempool").fetchone()[0] == 0


def test_retargeting_chain_reopens_with_the_same_work(db_path: Path) -> None:
    params = ChainParams(difficulty=1, retarget_interval=2, target_block_time=60)
    chain = open_chain(db_path, params)
    for spacing in (1, 1, 1, 200_000, 200_000):  # fast blocks harden the target, slow ones ease it
        parent = chain.tip.header
        template = chain.template(address(1), parent.timestamp + spacing)
        result = add(chain, Block(solve(template.header), template.txs))
        assert result.status == "connected", result.error
    targets = {chain.index[h].header.target for h in chain.main}
    assert len(targets) > 1  # the target really moved
    chain.commit()
    work, tip = chain.work, chain.tip.block_hash
    chain.store.close()
    again = open_chain(db_path, params)
    assert (again.work, again.tip.block_hash) == (work, tip)
    assert again.validate_all(NOW) == []
