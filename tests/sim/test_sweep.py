"""CI's short sweep: 50 seeds of a 10-node network with partitions, crashes and delays, every
invariant checked on each. The long sweep (1,000 seeds of 20 nodes) is
``benchmarks/sim_sweep.py``; a failing seed replays with ``trionode sim --seed S``."""

import os
import time

from trionode.sim.cli import sweep
from trionode.sim.plan import Spec
from trionode.sim.scenario import run_scenario

SEEDS = range(1, 51)
NODES = 10
EVENTS = 40


def test_short_sweep_holds_every_invariant() -> None:
    jobs = min(2, len(os.sched_getaffinity(0)))
    started = time.perf_counter()
    outcomes = list(sweep([Spec(seed=s, nodes=NODES, events=EVENTS) for s in SEEDS], jobs))
    elapsed = time.perf_counter() - started
    assert [o.seed for o in outcomes] == list(SEEDS)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        first = run_scenario(Spec(seed=failed[0].seed, nodes=NODES, events=EVENTS))
        timeline = "\n".join(first.timeline.render(verbose=True))
        raise AssertionError(
            f"{len(failed)} of {len(outcomes)} seeds failed: {[o.seed for o in failed]}; "
            f"first: seed {failed[0].seed}: {failed[0].violations}\n{timeline}"
        )
    # Every scenario did something: blocks, crashes and partitions happened.
    assert sum(o.stats["crashes"] for o in outcomes) > 0
    assert sum(o.stats["partitions"] for o in outcomes) > 0
    assert sum(o.stats["reorgs"] for o in outcomes) > 0
    # CPU seconds (the scenarios' own, summed over the workers) are the figure that does not
    # depend on what else the machine runs; no bound is asserted (no timed unit tests).
    cpu = sum(o.cpu_time for o in outcomes)
    print(f"{len(outcomes)} seeds of {NODES} nodes in {elapsed:.1f} s wall with {jobs} jobs, {cpu:.1f} s CPU")
