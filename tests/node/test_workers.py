"""The proof-of-work solvers: how many nonces they really tried (the hash rate's input), and
jobs sized by time, so that a search stops soon after it is cancelled (MockClock and a fake
``trio_parallel.run_sync``: durations exact in trio's clock)."""

import itertools
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing
import trio_parallel

from trionode.chain import pow
from trionode.node.workers import (
    FIRST_JOB,
    INLINE_CHUNK,
    INLINE_WORK,
    JOB_SECONDS,
    MIN_JOB,
    POW_CHUNK,
    ROUND_SECONDS,
    InlineSolver,
    ProcessSolver,
    job_size,
)

PREFIX = bytes(range(116))


async def test_inline_solver_counts_up_to_its_hit_not_the_whole_round() -> None:
    target = pow.MAX_TARGET >> 4  # about one nonce in 16 hits
    nonce, tried = await InlineSolver(chunk=4096).search(PREFIX, target, 100)
    assert nonce is not None and nonce == pow.search(PREFIX, target, 100, 4096)
    assert tried == nonce - 100 + 1 < 4096


async def test_inline_solver_counts_a_whole_round_without_a_hit() -> None:
    assert await InlineSolver(chunk=64).search(PREFIX, 0, 0) == (None, 64)  # target 0: never


class FakeWorkers:
    """Stands in for ``trio_parallel.run_sync``: each job hashes at ``rate`` nonces/s of trio's
    clock (plus ``startup`` s for the first job of each of two workers), hits only at nonce
    ``hit``, and is not interrupted by a cancellation (as trio-parallel's jobs)."""

    def __init__(self, rate: float, startup: float = 0.0, hit: int | None = None) -> None:
        self.rate = rate
        self.startup = startup
        self.hit = hit
        self.jobs: list[tuple[float, int, int]] = []  # (began, first nonce, count)

    async def run_sync(
        self, fn: object, prefix: bytes, target: int, first: int, count: int, **_: object
    ) -> int | None:
        self.jobs.append((trio.current_time(), first, count))
        delay = count / self.rate + (self.startup if len(self.jobs) <= 2 else 0.0)
        with trio.CancelScope(shield=True):
            await trio.sleep(delay)
        return self.hit if self.hit is not None and first <= self.hit < first + count else None


async def rounds(solver: ProcessSolver, n: int) -> list[float]:
    """Durations of ``n`` rounds (in trio's clock) on a target nothing meets."""
    durations = []
    start = 0
    for _ in range(n):
        began = trio.current_time()
        nonce, tried = await solver.search(PREFIX, 0, start)
        assert nonce is None
        durations.append(trio.current_time() - began)
        start += tried
    return durations


@pytest.fixture
def fake_workers(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeWorkers]:
    def install(rate: float, **kwargs: Any) -> FakeWorkers:
        workers = FakeWorkers(rate, **kwargs)
        monkeypatch.setattr(trio_parallel, "run_sync", workers.run_sync)
        return workers

    return install


@pytest.mark.parametrize("rate", [100_000.0, 1_000_000.0, 2_500_000.0])
async def test_jobs_last_job_seconds_whatever_the_hash_rate(
    rate: float, fake_workers: Callable[..., FakeWorkers], autojump_clock: trio.testing.MockClock
) -> None:
    workers = fake_workers(rate)
    durations = await rounds(ProcessSolver(2), 3)
    first_jobs, later = workers.jobs[:2], workers.jobs[2:]
    assert [count for _, _, count in first_jobs] == [FIRST_JOB, FIRST_JOB]  # no rate known yet
    assert {count for _, _, count in later} <= {job_size(rate) - 1, job_size(rate), job_size(rate) + 1}
    # A round ends at the first job boundary after ROUND_SECONDS.
    assert ROUND_SECONDS <= durations[0] <= ROUND_SECONDS + 1.01 * max(FIRST_JOB / rate, JOB_SECONDS)
    job_time = job_size(rate) / rate  # JOB_SECONDS, unless MIN_JOB is more at this rate
    assert all(ROUND_SECONDS <= d <= ROUND_SECONDS + 1.01 * job_time for d in durations[1:]), durations
    # The jobs cover consecutive nonces, none twice.
    ranges = sorted((first, count) for _, first, count in workers.jobs)
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(ranges))


async def test_a_slow_first_job_only_shrinks_the_next_one(
    fake_workers: Callable[..., FakeWorkers], autojump_clock: trio.testing.MockClock
) -> None:
    # The worker processes take 0.3 s to start: the first samples say they are very slow.
    workers = fake_workers(1_000_000.0, startup=0.3)
    await rounds(ProcessSolver(2), 2)
    counts = [count for _, _, count in workers.jobs]
    assert counts[2:4] == [MIN_JOB, MIN_JOB]  # the floor: short jobs, which measure truly
    assert set(counts[6:]) <= {job_size(1_000_000.0) - 1, job_size(1_000_000.0), job_size(1_000_000.0) + 1}


async def test_a_cancelled_search_raises_when_the_jobs_in_flight_end(
    fake_workers: Callable[..., FakeWorkers], autojump_clock: trio.testing.MockClock
) -> None:
    workers = fake_workers(1_000_000.0)
    solver = ProcessSolver(2)
    await rounds(solver, 1)  # sized: a job now takes JOB_SECONDS
    with trio.move_on_after(ROUND_SECONDS / 2) as scope:
        await solver.search(PREFIX, 0, 0)
    cancelled_at = scope.deadline
    # Cancelled (no stale result returned), within one job, and no job began after it.
    assert scope.cancelled_caught
    assert trio.current_time() - cancelled_at <= 1.01 * JOB_SECONDS
    assert max(began for began, _, _ in workers.jobs) < cancelled_at


async def test_a_hit_ends_the_round_after_the_jobs_in_flight(
    fake_workers: Callable[..., FakeWorkers], autojump_clock: trio.testing.MockClock
) -> None:
    workers = fake_workers(1_000_000.0, hit=100_000)
    nonce, tried = await ProcessSolver(2).search(PREFIX, 0, 0)
    assert nonce == 100_000
    # Everything handed out was tried, except the hitting job's tail.
    hitting = next((first, count) for _, first, count in workers.jobs if first <= 100_000 < first + count)
    handed_out = sum(count for _, _, count in workers.jobs)
    assert tried == handed_out - (hitting[0] + hitting[1] - 1 - 100_000)
    assert trio.current_time() < ROUND_SECONDS


def test_job_size_is_bounded_whatever_the_sample() -> None:
    assert job_size(1_000_000.0) == round(1_000_000 * JOB_SECONDS)
    assert job_size(1.0) == MIN_JOB
    assert job_size(1e12) == POW_CHUNK


async def test_easy_targets_are_searched_on_the_loop_in_small_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError("a worker process for an easy target")

    monkeypatch.setattr(trio_parallel, "run_sync", no_process)
    target = pow.target_for_difficulty(3)  # 4,096 hashes expected: below INLINE_WORK
    assert pow.work_for_target(target) < INLINE_WORK
    nonce, tried = await ProcessSolver(2).search(PREFIX, target, 0)
    assert nonce == pow.search(PREFIX, target, 0, INLINE_CHUNK)
    assert tried <= INLINE_CHUNK
