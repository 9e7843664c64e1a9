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
# Below this many expected hashes (difficulty 3 and less: ~4,100) a block takes well under
# 0.1 s of one core, less than starting worker processes: the search stays on the event loop.
INLINE_WORK: Final = 50_000
# Nonces per inline round: ~2 ms of hashing at 2.5 M H/s (the loop is blocked that long).
INLINE_CHUNK: Final = 4096
# Hashing per job (one ``pow.search`` call in one worker): a job in flight is not interrupted,
# so this bounds how long a worker keeps hashing a stale template after the tip moves; yet it
# is ~170 process round trips (~0.12 ms each): the hops cost ~1% of the hash rate (a few per
# cent when CPU contention shrinks the jobs, which are sized by wall time).
JOB_SECONDS: Final = 0.02
# A round (one ``search`` call) ends at the first job boundary after this long: it is only the
# miner's unit of bookkeeping (hash rate, nonce offset). At its end each worker idles for at
# most one job while the others finish theirs: ~2% of a round this long.
ROUND_SECONDS: Final = 0.5
# Nonces in a first job, before any rate is known (~7 ms at 2.5 M H/s).
FIRST_JOB: Final = 1 << 14
# Bounds on a job whatever the measured rate: at least ~1.7 ms of hashing at 2.5 M H/s, so a
# slow sample (a worker process starting) cannot make the hops dominate; at most ~0.1 s, so a
# fast sample cannot make abandonment slow.
MIN_JOB: Final = 1 << 12
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
        """Try a round of nonces from ``start``; returns (nonce found or None, nonces tried).

        Cancellable: a cancelled round is abandoned, at the latest when it ends."""


class InlineSolver:
    """Searches on the event loop in small rounds: for easy targets and for simulation.

    A round is synchronous; the checkpoint before it lets every other task run (and a
    cancellation land) between rounds."""

    workers = 1

    def __init__(self, chunk: int = INLINE_CHUNK) -> None:
        self.chunk = chunk

    async def search(self, prefix: bytes, target: int, start: int) -> tuple[int | None, int]:
        await trio.lowlevel.checkpoint()
        nonce = pow.search(prefix, target, start, self.chunk)
        return nonce, self.chunk if nonce is None else nonce - start + 1


def job_size(rate: float) -> int:
    """Nonces for a job of ``JOB_SECONDS`` at ``rate`` hashes/s (one worker's)."""
    return max(MIN_JOB, min(POW_CHUNK, round(rate * JOB_SECONDS)))


class ProcessSolver:
    """Searches in worker processes (hashlib holds the GIL for 124-byte inputs, so threads
    would not scale); easy targets are solved inline, where a process hop would dominate.

    In a round, each worker takes jobs of consecutive nonces until the round's time is up or a
    job hits; a job is sized from the rate of the one before to last ``JOB_SECONDS``. A job
    in flight is not interrupted (killing a worker would cost a process start on every new
    tip): a cancelled search raises ``Cancelled`` once the jobs in flight end, so the workers
    leave a stale template within about ``JOB_SECONDS``. The workers live in trio-parallel's
    process cache, warm from one round and one block to the next; they exit when idle for 10
    minutes, when this process exits, or when it dies (their pipe closes).
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.job = FIRST_JOB
        self._inline = InlineSolver()
        # Our own limiter: all workers run at once even above the CPU count.
        self._limiter = trio.CapacityLimiter(self.workers)

    async def search(self, prefix: bytes, target: int, start: int) -> tuple[int | None, int]:
        if pow.work_for_target(target) < INLINE_WORK:
            return await self._inline.search(prefix, target, start)
        import trio_parallel

        deadline = trio.current_time() + ROUND_SECONDS
        next_nonce = start
        found: list[int] = []
        tried = 0

        async def worker() -> None:
            nonlocal next_nonce, tried
            while not found and trio.current_time() < deadline:
                await trio.lowlevel.checkpoint_if_cancelled()  # a cancellation lands between jobs
                first, count = next_nonce, self.job
                next_nonce += count
                began = trio.current_time()
                nonce = await trio_parallel.run_sync(
                    pow.search, prefix, target, first, count, limiter=self._limiter
                )
                elapsed = trio.current_time() - began
                if nonce is not None:
                    found.append(nonce)
                    tried += nonce - first + 1
                    return
                tried += count
                if elapsed > 0:
                    self.job = job_size(count / elapsed)

        async with trio.open_nursery() as nursery:
            for _ in range(self.workers):
                nursery.start_soon(worker)
        # A cancellation that came while the last jobs ran: raise it rather than return a
        # result nobody wants (and have the caller start another round).
        await trio.lowlevel.checkpoint_if_cancelled()
        return (min(found) if found else None), tried
