"""Proof of work: targets, work, and a pure, resumable nonce search.

A block hash, read as a 256-bit big-endian integer, must be <= the header's target. Difficulty
``d`` (the seed's "leading zero hex digits") is the target 2**(256 - 4d) - 1. The work of a
block is 2**256 // (target + 1): the expected number of hashes to find it, so cumulative work
stays the right fork-choice measure when retargeting changes the target.
"""

import hashlib
from typing import Final

HASH_SPACE: Final = 1 << 256
MAX_TARGET: Final = HASH_SPACE - 1
NONCE_BYTES: Final = 8
MAX_NONCE: Final = (1 << (8 * NONCE_BYTES)) - 1


def target_for_difficulty(difficulty: int) -> int:
    if not 0 <= difficulty <= 63:
        raise ValueError("difficulty is 0..63 leading zero hex digits")
    return (1 << (256 - 4 * difficulty)) - 1


def work_for_target(target: int) -> int:
    return HASH_SPACE // (target + 1)


def difficulty_of(target: int) -> float:
    """Leading-zero-hex-digit equivalent of a target, for display (may be fractional)."""
    return (256 - (target + 1).bit_length() + 1) / 4 if target < MAX_TARGET else 0.0


def meets_target(block_hash: bytes, target: int) -> bool:
    return int.from_bytes(block_hash, "big") <= target


def search(prefix: bytes, target: int, start: int, count: int) -> int | None:
    """Try nonces ``start .. start+count-1`` after the header ``prefix``; the first that hits.

    Pure and resumable: callers run it over successive ranges (in a worker) and stop calling
    when the tip changes, which is how mining is abandoned without killing anything.
    """
    base = hashlib.sha256(prefix)
    target_bytes = target.to_bytes(32, "big")
    end = min(start + count, MAX_NONCE + 1)
    for nonce in range(start, end):
        h = base.copy()
        h.update(nonce.to_bytes(NONCE_BYTES, "big"))
        if h.digest() <= target_bytes:
            return nonce
    return None
