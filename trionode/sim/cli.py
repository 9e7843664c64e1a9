"""``trionode sim`` / ``python -m trionode.sim``: run one scenario, or sweep many seeds.

One seed prints its timeline (the scenario's actions and the nodes' notable events, in
simulated time), the violations if any, and a summary line; stdout is the same, byte for
byte, every time a seed is run. Wall-clock figures go to stderr. ``--runs R`` runs seeds
S..S+R-1 (``--jobs`` processes at once) and prints one line per seed, then the timeline of
the first failing seed. Exit status: 0 if every scenario held, 1 if one failed, 2 for bad
usage.
"""

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from trionode.sim.plan import Spec, describe_spec, make_plan


@dataclass(frozen=True)
class Outcome:
    """What a sweep keeps of one run (picklable, small)."""

    seed: int
    ok: bool
    summary: str
    violations: list[str]
    sim_time: float
    wall_time: float
    cpu_time: float
    digest: str
    final_tip: str
    stats: dict[str, Any]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="trionode sim",
        description="Run real trionode nodes on a simulated network, deterministically from a seed.",
    )
    p.add_argument("--seed", type=int, default=1, help="scenario seed (first seed of a sweep)")
    p.add_argument("--nodes", type=int, default=10, help="nodes in the network (default 10)")
    p.add_argument("--events", type=int, default=40, help="scheduled events (default 40)")
    p.add_argument("--runs", type=int, default=1, help="sweep this many consecutive seeds")
    p.add_argument("--jobs", type=int, default=0, help="processes for a sweep (default: CPUs)")
    p.add_argument(
        "--max-peers",
        type=int,
        default=0,
        help="peer limit per node, plus room for the nodes configured to dial it (default: no limit binds)",
    )
    p.add_argument("--no-partitions", action="store_true", help="no partitions or cut links")
    p.add_argument("--no-crashes", action="store_true", help="no crashes")
    p.add_argument("--no-delays", action="store_true", help="ideal links: no latency, loss or slow hosts")
    mempools = p.add_mutually_exclusive_group()
    # Strict became the default; the flag stays accepted so older command lines still run.
    mempools.add_argument(
        "--strict-mempools",
        action="store_true",
        help="no effect, kept for old command lines: strict is the default (a transaction pending "
        "anywhere must be pending everywhere)",
    )
    mempools.add_argument(
        "--relaxed-mempools",
        action="store_true",
        help="excuse a transaction a node refused in a race (nonce_gap...), or that none of its peers holds",
    )
    p.add_argument("--verbose", "-v", action="store_true", help="every node's block and tx events too")
    p.add_argument("--json", action="store_true", help="one JSON line per run instead of text")
    return p


def spec_from(args: argparse.Namespace, seed: int) -> Spec:
    return Spec(
        seed=seed,
        nodes=args.nodes,
        events=args.events,
        partitions=not args.no_partitions,
        crashes=not args.no_crashes,
        delays=not args.no_delays,
        strict_mempools=not args.relaxed_mempools,
        max_peers=args.max_peers,
    )


def run_one(spec: Spec) -> Outcome:
    from trionode.sim.scenario import run_scenario

    r = run_scenario(spec)
    return Outcome(
        spec.seed,
        r.ok,
        r.summary(),
        r.violations,
        r.sim_time,
        r.wall_time,
        r.cpu_time,
        r.timeline.digest(),
        r.final_tip,
        r.stats,
    )


def sweep(specs: list[Spec], jobs: int) -> Iterator[Outcome]:
    """Outcomes in seed order; runs in ``jobs`` worker processes (1: in this process)."""
    if jobs <= 1 or len(specs) == 1:
        for spec in specs:
            yield run_one(spec)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(run_one, specs, chunksize=1)


def main(argv: list[str]) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.nodes < 2 or args.events < 0 or args.runs < 1:
        print(
            "trionode sim: --nodes must be at least 2, --events at least 0, --runs at least 1",
            file=sys.stderr,
        )
        return 2
    if args.runs == 1:
        return _single(args)
    return _sweep(args)


def _single(args: argparse.Namespace) -> int:
    from trionode.sim.scenario import run_scenario

    spec = spec_from(args, args.seed)
    result = run_scenario(spec)
    if args.json:
        print(json.dumps(_record(result.summary(), result.ok, result.violations, spec, result.final_tip)))
    else:
        print(describe_spec(result.plan))
        for line in result.timeline.render(verbose=args.verbose):
            print(line)
        for v in result.violations:
            print(f"VIOLATION: {v}")
        print(result.summary())
    sys.stdout.flush()
    print(
        f"wall {result.wall_time:.2f} s for {result.sim_time:.1f} simulated s "
        f"({result.ratio:.0f} simulated s per wall s)",
        file=sys.stderr,
    )
    return 0 if result.ok else 1


def _sweep(args: argparse.Namespace) -> int:
    jobs = args.jobs or len(os.sched_getaffinity(0))
    specs = [spec_from(args, args.seed + i) for i in range(args.runs)]
    started = time.perf_counter()
    failed: list[Outcome] = []
    sim_total = 0.0
    busy = 0.0
    excused = 0
    cpu = 0.0
    for out in sweep(specs, jobs):
        sim_total += out.sim_time
        cpu += out.cpu_time
        busy += out.wall_time
        excused += out.stats.get("excused_absences", 0)
        if not out.ok:
            failed.append(out)
        if args.json:
            print(
                json.dumps(
                    {"seed": out.seed, "ok": out.ok, "violations": out.violations, "digest": out.digest}
                )
            )
        else:
            print(out.summary)
        sys.stdout.flush()
    wall = time.perf_counter() - started
    print(
        f"{len(specs)} seeds ({args.nodes} nodes, {args.events} events): {len(failed)} failed"
        + (f" ({', '.join(str(o.seed) for o in failed)})" if failed else "")
        + (f"; {excused} mempool absences excused" if args.relaxed_mempools else "")
    )
    print(
        f"wall {wall:.1f} s with {jobs} jobs, {cpu:.1f} CPU s; "
        f"{sim_total:.0f} simulated s, "
        f"{sim_total / busy if busy else 0:.0f} simulated s per busy wall s",
        file=sys.stderr,
    )
    if failed and not args.json:
        first = failed[0]
        print(
            f"\nfirst failing seed: {first.seed} (rerun: trionode sim --seed {first.seed} "
            f"--nodes {args.nodes} --events {args.events}{_flags(args)})"
        )
        args_one = argparse.Namespace(**{**vars(args), "seed": first.seed, "runs": 1})
        _single(args_one)
    return 1 if failed else 0


def _flags(args: argparse.Namespace) -> str:
    limit = f" --max-peers {args.max_peers}" if args.max_peers else ""
    return limit + "".join(
        f" --{name.replace('_', '-')}"
        for name in ("no_partitions", "no_crashes", "no_delays", "relaxed_mempools")
        if getattr(args, name)
    )


def _record(summary: str, ok: bool, violations: list[str], spec: Spec, tip: str) -> dict[str, Any]:
    return {"ok": ok, "summary": summary, "violations": violations, "final_tip": tip, "spec": asdict(spec)}


def plan_text(spec: Spec) -> str:
    return describe_spec(make_plan(spec))
