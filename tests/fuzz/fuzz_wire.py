"""Long fuzzing run of the wire decoder, by hand: python tests/fuzz/fuzz_wire.py --inputs 5000000

Every mutated body must decode or raise ProtocolError; prints outcome counts and inputs/s.
The test suite runs the same engine (tests/wire/fuzzing.py) with 100,000 inputs.
"""

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.wire.fuzzing import run, run_framing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inputs", type=int, default=1_000_000, help="mutated bodies to decode")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="random seed (printed)")
    args = parser.parse_args()
    print(f"seed {args.seed}, {args.inputs} inputs", flush=True)
    start = time.perf_counter()
    done = 0
    chunk = 100_000
    totals: Counter[str] = Counter()
    while done < args.inputs:
        n = min(chunk, args.inputs - done)
        totals.update(run(n, seed=args.seed + done))
        totals.update(run_framing(n // 10, seed=args.seed + done))
        done += n
        rate = done / (time.perf_counter() - start)
        print(f"{done} inputs, {rate:,.0f}/s, outcomes so far: {dict(sorted(totals.items()))}", flush=True)
    print("no exception other than ProtocolError escaped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
