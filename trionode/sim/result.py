"""What a scenario run hands back: the plan it ran, its timeline, its violations, its counters
and timings.

Its own module because it is what the callers of ``run_scenario`` (the CLI, the tests, the
sweep's ``cli.run_one``) read, after the run and its nodes are gone; none of them needs the
machinery that produced it.
"""

from dataclasses import dataclass
from typing import Any

from trionode.sim.plan import Plan, Spec
from trionode.sim.timeline import Timeline


@dataclass
class Result:
    spec: Spec
    plan: Plan
    timeline: Timeline
    violations: list[str]
    stats: dict[str, Any]
    final_tip: str = ""
    final_height: int = -1
    sim_time: float = 0.0
    wall_time: float = 0.0
    cpu_time: float = 0.0  # this process's CPU seconds: fairer than wall time on a busy machine

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def ratio(self) -> float:
        return self.sim_time / self.wall_time if self.wall_time > 0 else 0.0

    def summary(self) -> str:
        """One line, deterministic (no wall time): the same seed prints the same."""
        verdict = "OK" if self.ok else f"FAILED ({len(self.violations)} violations)"
        s = self.stats
        return (
            f"seed {self.spec.seed}: {verdict}; tip {self.final_height} {self.final_tip[:16]} after "
            f"{self.sim_time:.1f} simulated s; {s.get('blocks_mined', 0)} blocks mined, "
            f"{s.get('reorgs', 0)} reorgs (deepest {s.get('max_reorg', 0)}), "
            f"{s.get('txs_accepted', 0)} txs accepted, {s.get('crashes', 0)} crashes, "
            f"{s.get('partitions', 0)} partitions; timeline {self.timeline.digest()[:16]}"
        )
