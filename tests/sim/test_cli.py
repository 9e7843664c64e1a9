"""``trionode sim`` as a user runs it: a sweep (``--runs``) names the first failing seed and
replays its timeline; the exit status says whether every seed held; the mempool flags."""

import re
from pathlib import Path
from typing import Any

import pytest

import trionode.sim.scenario as scenario
from trionode.chain.store import Store
from trionode.sim.cli import main, parser, spec_from
from trionode.sim.plan import Spec


def test_a_sweep_prints_the_first_failing_seed_and_its_timeline(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``trionode sim --runs 3``: seeds 2 and 3 run on a store that never commits (so their
    data dirs reopen empty); the sweep names the first of them and replays it as a timeline."""
    monkeypatch.setattr(scenario, "_default_root", lambda: tmp_path)
    real = scenario.run_scenario

    def broken_from_seed_2(spec: Spec, *args: Any, **kwargs: Any) -> Any:
        with monkeypatch.context() as patch:
            if spec.seed >= 2:
                patch.setattr(Store, "commit", lambda self: None)
            return real(spec, *args, **kwargs)

    monkeypatch.setattr(scenario, "run_scenario", broken_from_seed_2)
    code = main(["--seed", "1", "--runs", "3", "--nodes", "3", "--events", "5", "--jobs", "1"])
    out = capsys.readouterr().out
    assert code == 1, out
    sweep_part, _, first = out.partition("\nfirst failing seed: ")
    assert re.search(r"^seed 1: OK;", sweep_part, re.M), out
    assert re.search(r"^seed 2: FAILED \(\d+ violations\);", sweep_part, re.M), out
    assert re.search(r"^seed 3: FAILED", sweep_part, re.M), out
    assert "3 seeds (3 nodes, 5 events): 2 failed (2, 3)" in sweep_part, out
    assert first.startswith("2 (rerun: trionode sim --seed 2 --nodes 3 --events 5)\n"), out
    lines = first.splitlines()
    assert lines[1].startswith("seed 2: 3 nodes, 5 events"), out
    assert any(re.match(r" +\d+\.\d{3}  n0\d  +mined block \d+ ", line) for line in lines), out
    assert any(line.startswith("VIOLATION: n01 data dir: reopened at 0 ") for line in lines), out
    assert lines[-1].startswith("seed 2: FAILED"), out
    assert not any("first failing seed" in line for line in lines[1:]), out


def test_a_sweep_where_every_seed_holds_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(scenario, "_default_root", lambda: tmp_path)
    code = main(["--seed", "1", "--runs", "2", "--nodes", "3", "--events", "5", "--jobs", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 seeds (3 nodes, 5 events): 0 failed\n" in out, out
    assert "first failing seed" not in out, out


@pytest.mark.parametrize(
    ("flags", "strict"), [([], True), (["--strict-mempools"], True), (["--relaxed-mempools"], False)]
)
def test_mempools_are_strict_unless_relaxed(flags: list[str], strict: bool) -> None:
    """``--strict-mempools`` is still accepted (old command lines), and changes nothing."""
    assert spec_from(parser().parse_args(flags), 1).strict_mempools is strict


def test_strict_and_relaxed_mempools_together_are_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--strict-mempools", "--relaxed-mempools"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
