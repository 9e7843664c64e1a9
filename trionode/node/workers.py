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


def first_bad_signature(txs: Sequence[Transaction], network: bytes) -> int | None:
    for i, tx in enumerate(txs):
        if not tx.is_coinbase and not tx.signature_valid(network):
            return i
    return None


class SignatureChecker(Protocol):
    async def first_bad(self, txs: Sequence[Transaction], network: bytes) -> int | None:
        """Index of the first transaction with a bad signature, or None."""


class InlineSignatureChecker:
    async def first_bad(self, txs: Sequence[Transaction], network: bytes) -> int | None:
        return first_bad_signature(txs, network)


class ThreadSignatureChecker:
    """Splits large batches over worker threads: ``cryptography`` releases the GIL while
    verifying, so N cores verify about N times faster."""

    def __init__(self, threads: int | None = None) -> None:
        self._threads = max(1, threads or os.cpu_count() or 1)
        self._limiter = trio.CapacityLimiter(self._threads)

    async def first_bad(self, txs: Sequence[Transaction], network: bytes) -> int | None:
        if len(txs) < INLINE_SIGNATURES:
            return first_bad_signature(txs, network)
        size = -(-len(txs) // self._threads)
        results: list[int | None] = [None] * self._threads

        async def run(part: int) -> None:
            chunk = txs[part * size : (part + 1) * size]
            bad = await trio.to_thread.run_sync(first_bad_signature, chunk, network, limiter=self._limiter)
            results[part] = None if bad is None else part * size + bad

        async with trio.open_nursery() as nursery:
            for part in range(self._threads):
                nursery.start_soon(run, part)
        bad_indexes = [r for r in results if r is not None]
        return min(bad_indexes) if bad_indexes else None


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
        return pow.search(prefix, target, start, self.chunk), self.chunk


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

        async def run(part: int) -> None:
            nonce = await trio_parallel.run_sync(
                pow.search, prefix, target, start + part * POW_CHUNK, POW_CHUNK
            )
            if nonce is not None:
                found.append(nonce)

        async with trio.open_nursery() as nursery:
            for part in range(self.workers):
                nursery.start_soon(run, part)
        return (min(found) if found else None), POW_CHUNK * self.workers
