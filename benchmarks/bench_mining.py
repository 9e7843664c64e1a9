"""Mining: hashes/s of trionode's proof-of-work search on 1 and 2 cores, beside a bare
``hashlib.sha256`` loop over the same 124-byte header (the physical limit of this machine).

    python benchmarks/bench_mining.py [--quick]

The 1-core figure runs ``pow.search`` in this process; the N-core figure runs the node's
``ProcessSolver`` (worker processes via trio-parallel) on an unreachable target, so every
nonce of each round is tried.
"""

import argparse
import hashlib
import time

import trio

from trionode.chain import pow
from trionode.node.workers import POW_CHUNK, ProcessSolver

from common import emit, median

HEADER = bytes(range(124))


def bare_loop(n: int) -> float:
    data = HEADER
    sha = hashlib.sha256
    start = time.perf_counter()
    for _ in range(n):
        sha(data).digest()
    return n / (time.perf_counter() - start)


def search_rate(n: int) -> float:
    start = time.perf_counter()
    assert pow.search(HEADER[:116], 0, 0, n) is None  # target 0: never found, all n tried
    return n / (time.perf_counter() - start)


async def solver_rate(workers: int, rounds: int) -> float:
    solver = ProcessSolver(workers)
    await solver.search(HEADER[:116], 0, 0)  # warm the worker processes
    start = time.perf_counter()
    tried = 0
    for i in range(rounds):
        _, n = await solver.search(HEADER[:116], 0, (i + 1) * POW_CHUNK * workers)
        tried += n
    return tried / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 200_000 if args.quick else 1_000_000
    repeats = 3 if args.quick else 5
    bare = median([bare_loop(n) for _ in range(repeats)])
    one = median([search_rate(n) for _ in range(repeats)])
    rounds = 2 if args.quick else 6
    two = median([trio.run(solver_rate, 2, rounds) for _ in range(1 if args.quick else 3)])
    print(f"bare hashlib.sha256 loop, 1 core : {bare:>12,.0f} H/s")
    print(f"pow.search, 1 core               : {one:>12,.0f} H/s  ({one / bare:.0%} of bare)")
    print(f"ProcessSolver, 2 workers         : {two:>12,.0f} H/s  ({two / bare / 2:.0%} of bare per core)")
    emit(
        "mining",
        {
            "bare_hps": round(bare),
            "search_1core_hps": round(one),
            "solver_2core_hps": round(two),
            "ratio_1core": round(one / bare, 3),
            "ratio_per_core_2": round(two / bare / 2, 3),
        },
    )


if __name__ == "__main__":
    main()
