"""Long fuzzing run of the wire decoder, by hand: python tests/fuzz/fuzz_wire.py --inputs 5000000

Every mutated body must decode or raise ProtocolError; prints outcome counts and inputs/s.
The seed is ``--seed``, else ``TRIONODE_FUZZ_SEED``, else a fresh one, and is printed first
(and again on a failure) so that any run can be replayed. ``--seconds`` stops early, after
the chunk in progress. The test suite runs the same engine (tests/wire/fuzzing.py) with
100,000 inputs.
"""

import argparse
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.wire.fuzzing import run, run_framing

# Inputs per progress line (and per seed step: chunk i runs with seed + i * CHUNK).
CHUNK = 100_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inputs", type=int, default=1_000_000, help="mutated bodies to decode")
    parser.add_argument("--seed", type=int, default=None, help="random seed (printed)")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    args = parser.parse_args()
    chosen = os.environ.get("TRIONODE_FUZZ_SEED")
    seed = (
        args.seed
        if args.seed is not None
        else int(chosen)
        if chosen
        else random.SystemRandom().randrange(2**32)
    )
    print(f"seed {seed}, {args.inputs} inputs", flush=True)
    start = time.perf_counter()
    done = 0
    totals: Counter[str] = Counter()
    while done < args.inputs:
        n = min(CHUNK, args.inputs - done)
        try:
            totals.update(run(n, seed=seed + done))
            totals.update(run_framing(n // 10, seed=seed + done))
        except AssertionError as exc:
            print(f"FAILED with seed {seed} (chunk seed {seed + done}): {exc}", flush=True)
            return 1
        done += n
        elapsed = time.perf_counter() - start
        print(
            f"{done} inputs, {done / elapsed:,.0f}/s, outcomes so far: {dict(sorted(totals.items()))}",
            flush=True,
        )
        if args.seconds is not None and elapsed >= args.seconds:
            break
    elapsed = time.perf_counter() - start
    print(
        f"seed {seed}: {done:,} bodies and {done // 10:,} framed streams in {elapsed:,.0f} s,"
        f" {done / elapsed:,.0f} bodies/s; no exception other than ProtocolError escaped"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
