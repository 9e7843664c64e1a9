"""Keys, transaction and block encodings, Merkle roots and proof of work, on their own."""

import hashlib
import struct

import pytest

from trionode.chain import keys
from trionode.chain.block import HEADER_BYTES, HEADER_VERSION, MAX_BLOCK_TXS, PREFIX_BYTES, Block, BlockHeader
from trionode.chain.encoding import packb, unpackb
from trionode.chain.errors import DecodeError
from trionode.chain.keys import KeyPair, address_of, verify
from trionode.chain.merkle import EMPTY_ROOT, merkle_root
from trionode.chain.params import GENESIS_TIMESTAMP_MS, ChainParams
from trionode.chain.pow import (
    MAX_TARGET,
    difficulty_of,
    meets_target,
    search,
    target_for_difficulty,
    work_for_target,
)
from trionode.chain.transaction import COINBASE_SENDER, Transaction, coinbase
from trionode.chain.validation import median_time_past

from helpers import EASY, address, key, pay, solve

# ----------------------------------------------------------------------------- keys


def test_address_is_first_20_bytes_of_sha256_of_pubkey() -> None:
    kp = key(1)
    assert len(kp.public_key) == 32
    assert kp.address == hashlib.sha256(kp.public_key).digest()[:20]
    assert address_of(kp.public_key) == kp.address


def test_keypair_from_seed_is_deterministic() -> None:
    assert KeyPair(key(1).seed).public_key == key(1).public_key
    with pytest.raises(ValueError):
        KeyPair(b"short")


def test_verify() -> None:
    kp = key(1)
    sig = kp.sign(b"msg")
    assert verify(kp.public_key, sig, b"msg")
    assert not verify(kp.public_key, sig, b"msh")
    assert not verify(key(2).public_key, sig, b"msg")
    assert not verify(kp.public_key[:31], sig, b"msg")  # bad key length: False, not an exception
    assert not verify(kp.public_key, sig[:63], b"msg")


# ----------------------------------------------------------------------------- transactions


def test_txid_is_sha256_of_canonical_encoding() -> None:
    tx = pay(1, 2, 5, 0)
    assert tx.encoded == packb([tx.sender, tx.recipient, 5, 0, tx.timestamp, tx.signature])
    assert tx.txid == hashlib.sha256(tx.encoded).digest()


def test_txid_is_recomputed_from_the_wire() -> None:
    # A decoded transaction gets its id from its own bytes: there is no stated id to trust.
    tx = pay(1, 2, 5, 0)
    wire = tx.to_wire()
    assert Transaction.from_wire(unpackb(packb(wire))).txid == tx.txid
    wire[2] = 6
    assert Transaction.from_wire(wire).txid != tx.txid


def test_transactions_compare_by_id_both_ways() -> None:
    tx = pay(1, 2, 5, 0)
    same = Transaction(tx.sender, tx.recipient, tx.amount, tx.nonce, tx.timestamp, tx.signature)
    other = pay(1, 2, 6, 0)
    assert same == tx and (same != tx) is False and hash(same) == hash(tx)
    assert other != tx and (other == tx) is False
    assert {tx, same, other} == {tx, other}


def test_id_is_computed_once_and_matches_a_fresh_computation() -> None:
    tx = pay(1, 2, 5, 0)
    fresh = Transaction(tx.sender, tx.recipient, tx.amount, tx.nonce, tx.timestamp, tx.signature)
    assert fresh.txid is fresh.txid  # cached
    assert fresh.encoded == tx.encoded and fresh.txid == hashlib.sha256(tx.encoded).digest()


def test_transaction_is_immutable() -> None:
    tx = pay(1, 2, 5, 0)
    with pytest.raises(AttributeError):
        tx.amount = 10  # type: ignore[misc]


def test_coinbase_encoding() -> None:
    cb = coinbase(address(1), EASY.mining_reward, 7, 123)
    assert cb.is_coinbase
    assert cb.to_wire()[0] == COINBASE_SENDER
    assert cb.nonce == 7
    assert cb.sender_address == b""
    decoded = Transaction.from_wire(cb.to_wire())
    assert decoded.is_coinbase and decoded.txid == cb.txid
    assert not cb.signature_valid(EASY.network)


def test_signature_covers_network_and_every_field() -> None:
    tx = pay(1, 2, 5, 0)
    assert tx.signature_valid(EASY.network)
    assert not tx.signature_valid(ChainParams(difficulty=1, mining_reward=51).network)
    fields = [tx.sender, tx.recipient, tx.amount, tx.nonce, tx.timestamp]
    for i, changed in enumerate([key(3).public_key, address(3), 6, 1, tx.timestamp + 1]):
        args = list(fields)
        args[i] = changed
        forged = Transaction(*args, tx.signature)  # type: ignore[arg-type]
        assert not forged.signature_valid(EASY.network), i


GOOD_TX = pay(1, 2, 5, 0).to_wire()


@pytest.mark.parametrize(
    ("index", "value", "field"),
    [
        (0, b"\x00" * 31, "tx.sender"),
        (0, "someone", "tx.sender"),
        (1, b"\x00" * 19, "tx.recipient"),
        (2, -1, "tx.amount"),
        (2, 2**63, "tx.amount"),  # above MAX_MONEY
        (2, True, "tx.amount"),  # a bool is not an int here
        (2, 1.5, "tx.amount"),
        (3, "0", "tx.nonce"),
        (4, 2**64, "tx.timestamp"),
        (5, b"\x00" * 63, "tx.signature"),
        (5, "sig", "tx.signature"),
    ],
)
def test_transaction_decode_errors_name_the_field(index: int, value: object, field: str) -> None:
    wire = list(GOOD_TX)
    wire[index] = value
    with pytest.raises(DecodeError) as info:
        Transaction.from_wire(wire)
    assert info.value.field == field
    assert info.value.reason == "malformed"


def test_transaction_decode_wrong_arity() -> None:
    with pytest.raises(DecodeError):
        Transaction.from_wire(GOOD_TX[:5])
    with pytest.raises(DecodeError):
        Transaction.from_wire({"a": 1})


# ----------------------------------------------------------------------------- merkle


def test_merkle_root_shapes() -> None:
    a, b, c = (hashlib.sha256(bytes([i])).digest() for i in range(3))

    def node(x: bytes, y: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + x + y).digest()

    assert merkle_root([]) == EMPTY_ROOT == bytes(32)
    assert merkle_root([a]) == a
    assert merkle_root([a, b]) == node(a, b)
    assert merkle_root([a, b, c]) == node(node(a, b), c)  # the odd one moves up unchanged
    assert merkle_root([b, a]) != merkle_root([a, b])
    # No duplication of the odd node, so [a, b, c] and [a, b, c, c] differ (CVE-2012-2459).
    assert merkle_root([a, b, c, c]) != merkle_root([a, b, c])


# ----------------------------------------------------------------------------- pow


def test_targets_and_work() -> None:
    assert target_for_difficulty(0) == MAX_TARGET
    assert target_for_difficulty(2) == 2 ** (256 - 8) - 1
    for d in range(0, 8):
        assert work_for_target(target_for_difficulty(d)) == 16**d
        assert difficulty_of(target_for_difficulty(d)) == d
    with pytest.raises(ValueError):
        target_for_difficulty(64)
    with pytest.raises(ValueError):
        target_for_difficulty(-1)


def test_meets_target_boundary() -> None:
    target = 2**200
    assert meets_target(target.to_bytes(32, "big"), target)
    assert not meets_target((target + 1).to_bytes(32, "big"), target)


def test_search_finds_first_hit_and_resumes() -> None:
    prefix = b"\x07" * PREFIX_BYTES
    target = target_for_difficulty(2)

    def hits(nonce: int) -> bool:
        return hashlib.sha256(prefix + nonce.to_bytes(8, "big")).digest() <= target.to_bytes(32, "big")

    first = search(prefix, target, 0, 1 << 20)
    assert first is not None and hits(first)
    assert not any(hits(n) for n in range(first))
    # Resumable: searching in small pieces finds the same nonce.
    start = 0
    found = None
    while found is None:
        found = search(prefix, target, start, 37)
        start += 37
    assert found == first
    assert search(prefix, target, first + 1, 0) is None
    # The nonce space ends at 2**64 - 1.
    assert search(prefix, MAX_TARGET, 2**64 - 1, 10) == 2**64 - 1
    assert search(prefix, MAX_TARGET, 2**64, 10) is None


# ----------------------------------------------------------------------------- headers and blocks


def test_header_layout_is_fixed_124_bytes() -> None:
    header = BlockHeader(HEADER_VERSION, 5, b"\x01" * 32, 1234, b"\x02" * 32, 2**250 + 3, 99)
    raw = header.serialize()
    assert len(raw) == HEADER_BYTES == 124
    assert raw == struct.pack(">IQ32sQ32s32sQ", 1, 5, b"\x01" * 32, 1234, b"\x02" * 32,
                              (2**250 + 3).to_bytes(32, "big"), 99)  # fmt: skip
    assert header.prefix() == raw[:116]
    assert header.block_hash == hashlib.sha256(raw).digest()
    again = BlockHeader.deserialize(raw)
    assert again.block_hash == header.block_hash
    assert BlockHeader.from_wire(header.to_wire()).block_hash == header.block_hash


def test_block_wire_roundtrip() -> None:
    genesis = EASY.genesis
    txs = [coinbase(address(1), EASY.mining_reward, 1, GENESIS_TIMESTAMP_MS + 1), pay(1, 2, 3, 0)]
    header = BlockHeader(
        HEADER_VERSION, 1, genesis.block_hash, GENESIS_TIMESTAMP_MS + 1,
        merkle_root([t.txid for t in txs]), genesis.header.target, 0,
    )  # fmt: skip
    block = Block(solve(header), txs)
    decoded = Block.from_wire(unpackb(packb(block.to_wire())))
    assert decoded.block_hash == block.block_hash
    assert [t.txid for t in decoded.txs] == [t.txid for t in txs]
    assert block.size() == HEADER_BYTES + sum(len(t.encoded) for t in txs)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda w: w[0].__setitem__(0, -1), "block.header.version"),
        (lambda w: w[0].__setitem__(0, 2**32), "block.header.version"),
        (lambda w: w[0].__setitem__(2, b"\x00" * 31), "block.header.prev_hash"),
        (lambda w: w[0].__setitem__(5, 7), "block.header.target"),
        (lambda w: w[0].pop(), "block.header"),
        (lambda w: w.__setitem__(1, {}), "block.txs"),
        (lambda w: w[1].__setitem__(0, [1, 2]), "block.txs[0]"),
    ],
)
def test_block_decode_errors(mutate: object, field: str) -> None:
    wire = EASY.genesis.to_wire()
    wire[1] = [coinbase(address(1), 1, 1, 1).to_wire()]
    mutate(wire)  # type: ignore[operator]
    with pytest.raises(DecodeError) as info:
        Block.from_wire(wire)
    assert info.value.field == field


def test_block_decode_limits_transaction_count() -> None:
    cb = coinbase(address(1), 1, 1, 1).to_wire()
    wire = EASY.genesis.to_wire()
    wire[1] = [cb] * MAX_BLOCK_TXS
    assert len(Block.from_wire(wire).txs) == MAX_BLOCK_TXS
    wire[1] = [cb] * (MAX_BLOCK_TXS + 1)
    with pytest.raises(DecodeError):
        Block.from_wire(wire)


def test_keys_of_small_order_sign_nothing() -> None:
    identity_point = bytes([1]) + bytes(31)
    forged = bytes([1]) + bytes(63)  # R = identity, S = 0: "valid" for any message
    assert keys.is_weak(identity_point)
    assert not keys.verify(identity_point, forged, b"pay me")
    assert keys.is_weak(bytes([1]) + bytes(30) + b"\x80")  # the same point, sign bit set
    assert not keys.is_weak(KeyPair(bytes(32)).public_key)


# The order of Ed25519's base point, and an encoded point of order 8 (from the blocklist).
ED25519_L = 2**252 + 27742317777372353535851937790883648493
ORDER_8_POINT = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")


def nonce_zero_signature(kp: KeyPair, r: bytes, message: bytes) -> bytes:
    """R || S with S = k * a (RFC 8032 5.1.5's secret scalar a): [S]B - [k]A is the identity
    point, whatever R says, so only R's bytes decide."""
    h = hashlib.sha512(kp.seed).digest()
    a = (int.from_bytes(h[:32], "little") & ((1 << 254) - 8)) | (1 << 254)
    k = int.from_bytes(hashlib.sha512(r + kp.public_key + message).digest(), "little") % ED25519_L
    return r + (k * a % ED25519_L).to_bytes(32, "little")


def test_signature_verification_is_cofactorless_and_strict_about_r_and_s() -> None:
    # protocol.md 9.2: what a compatible peer must accept and refuse, beyond RFC 8032's latitude.
    kp, msg = key(1), b"pay me"
    identity = bytes([1]) + bytes(31)
    assert verify(kp.public_key, nonce_zero_signature(kp, identity, msg), msg)  # a nonce of 0
    # The identity encoded otherwise (y = p + 1; x = 0 with the sign bit set): refused.
    for r in (bytes([0xEE]) + b"\xff" * 30 + b"\x7f", identity[:31] + b"\x80"):
        assert not verify(kp.public_key, nonce_zero_signature(kp, r, msg), msg)
    # R of order 8: [8][S]B = [8]R + [8][k]A holds (a cofactored verifier accepts), the
    # cofactorless [S]B = R + [k]A does not.
    assert not verify(kp.public_key, nonce_zero_signature(kp, ORDER_8_POINT, msg), msg)
    # S + L satisfies the same equation; S >= L is refused.
    sig = kp.sign(msg)
    s = int.from_bytes(sig[32:], "little")
    assert verify(kp.public_key, sig, msg)
    assert not verify(kp.public_key, sig[:32] + (s + ED25519_L).to_bytes(32, "little"), msg)


# ----------------------------------------------------------------------------- median time past


@pytest.mark.parametrize(
    ("timestamps", "median"),
    [
        ([7], 7),
        ([5, 1], 5),  # two blocks: the later-sorted one, not their mean
        ([10, 40, 20, 30], 30),  # sorted 10 20 30 40: index 2, the upper middle
        ([3, 1, 2], 2),
        (list(range(12, 0, -1)), 6),  # only the last 11 (11..1) count: sorted, index 5
    ],
)
def test_median_time_past_takes_index_n_over_2_of_the_sorted_window(
    timestamps: list[int], median: int
) -> None:
    # protocol.md 10, time_too_old: index floor(n/2) of the n sorted timestamps, n <= 11.
    assert median_time_past(timestamps) == median
