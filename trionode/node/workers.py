"""CPU-bound work off the event loop: signature checks and the proof-of-work search.

Both are injected into the node, so the simulator can swap in inline versions that keep
a simulated network deterministic (a worker thread's timing is not).
"""

import os
from collections.abc import Sequence
from typing import Final, Protocol

import trio

from trionode.chain import pow
from trionode.chain.transaction import Transaction

# Below this many signatures a thread hop costs more than it saves.
INLINE_SIGNATURES: Final = 16
# Nonces per worker per round: about 0.1 s on one core, so mining notices a new tip quickly.
POW_CHUNK: Final = 1 << 18


def signatures_valid(txs: Sequence[Transaction], network: bytes) -> list[bool]:
    """Per transaction: does its signature verify? (A coinbase has none and counts as valid.)"""
    return [tx.is_coinbase or tx.signature_valid(network) for tx in txs]


class SignatureChecker(Protocol):
    async def verify(self, txs: Sequence[Transaction], network: bytes) -> list[bool]:
        """Per transaction, whether its signature verifies."""

    async def first_bad(self, txs: Sequence[Transaction], network: bytes) -> int | None:
        """Index of the first transaction with a bad signature, or None."""


class InlineSignatureChecker:
    async def verify(self, txs: Sequence[Transaction], network: bytes) -> list[bool]:
        return signatures_valid(txs, network)

    async def first_bad(self, txs: Sequence[Transaction], network: bytes) -> int | None:
        return _first_false(await self.verify(txs, network))


class ThreadSignatureChecker:
    """Splits large batches over worker threads: ``cryptography`` releases the GIL while
    verifying, so N cores verify about N times faster."""

    def __init__(self, threads: int | None = None) -> None:
        self._threads = max(1, threads or os.cpu_count() or 1)
        self._limiter = trio.CapacityLimiter(self._threads)

    async def verify(self, txs: Sequence[Transaction], network: bytes) -> list[bool]:
        if len(txs) < INLINE_SIGNATURES:
            return signatures_valid(txs, network)
        size = -(-len(txs) // self._threads)
        parts: list[list[bool]] = [[] for _ in range(self._threads)]

        async def run(part: int) -> None:
            chunk = txs[part * size : (part + 1) * size]
            parts[part] = await trio.to_thread.run_sync(
                signatures_valid, chunk, network, limiter=self._limiter
            )

        async with trio.open_nursery() as nursery:
            for part in range(self._threads):
                nursery.start_soon(run, part)
        return [ok for part in parts for ok in part]

    async def first_bad(self, txs: Sequence[Transaction], network: bytes) -> int | None:
        return _first_false(await self.verify(txs, network))


def _first_false(results: list[bool]) -> int | None:
    for i, ok in enumerate(results):
        if not ok:
            return i
    return None


class PowSolver(Protocol):
    workers: int

    async def search(self, prefix: bytes, target: int, start: int) -> tuple[int | None, int]:
        """Try a round of nonces from ``start``; returns (nonce found or None, nonces tried)."""


class InlineSolver:
    """Searches on the event loop in small rounds: for easy targets and for simulation."""

    workers = 1

    def __init__(self, chunk: int = 4096) -> None:
        self.chunk = chunk

    async def search(self, prefix: bytes, target: int, start: int) -> tuple[int | None, int]:
        await trio.lowlevel.checkpoint()
        nonce = pow.search(prefix, target, start, self.chunk)
        return nonce, self.chunk if nonce is None else nonce - start + 1


class ProcessSolver:
    """Searches in worker processes (hashlib holds the GIL for 124-byte inputs, so threads
    would not scale); easy targets are solved inline, where a process hop would dominate."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._inline = InlineSolver()

    async def search(self, prefix: bytes, target: int, start: int) -> tuple[int | None, int]:
        if pow.work_for_target(target) < 50_000:
            return await self._inline.search(prefix, target, start)
        import trio_parallel

        found: list[int] = []
        tried = 0

        async def run(part: int) -> None:
            nonlocal tried
            first = start + part * POW_CHUNK
            nonce = await trio_parallel.run_sync(pow.search, prefix, target, first, POW_CHUNK)
            if nonce is not None:
                found.append(nonce)
            tried += POW_CHUNK if nonce is None else nonce - first + 1  # each part stops at its hit

        async with trio.open_nursery() as nursery:
            for part in range(self.workers):
                nursery.start_soon(run, part)
        return (min(found) if found else None), tried
