"""docs/adversarial.md's numbers come from a run, not a keyboard: each report section (the CI
run's, the long fault run's) is what ``report.py`` renders, names exactly the kinds of bad
input and fault its tests can send, and counts as many tests as its command collects now.
Reads files, imports the test modules and collects (``--collect-only``, in a subprocess);
starts no daemon and runs no other test.

When a test adds, renames or drops a kind, or a test is added or removed, these fail until
the doc is regenerated: ``python -m tests.hostile.report`` (as root, as CI runs, so no test
is skipped), ``python -m tests.hostile.report --long`` for the long run's section.
"""

from typing import Any

import pytest

from tests.hostile.report import (
    DOC,
    LONG,
    MAIN,
    SECTIONS,
    Section,
    collected,
    declared_kinds,
    parse,
    pytest_args,
    render,
    section_of,
)


def regenerate(section: Section) -> str:
    return "regenerate docs/adversarial.md: python -m tests.hostile.report" + (
        " --long" if section is LONG else ""
    )


def documented(section: Section) -> str:
    return section_of(DOC.read_text(), section)


each_section = pytest.mark.parametrize("section", SECTIONS, ids=["ci", "long"])


@each_section
def test_the_report_section_is_exactly_what_the_renderer_makes_of_it(section: Section) -> None:
    text = documented(section)
    assert render(parse(text), section) == text, f"the section was edited by hand; {regenerate(section)}"


@each_section
def test_the_report_names_every_kind_the_tests_declare_and_no_other(section: Section) -> None:
    tally = parse(documented(section))["tally"]
    exact, patterns = declared_kinds(section.modules)
    missing = sorted(exact - set(tally))
    assert not missing, f"kinds the tests send that the doc lacks: {missing}; {regenerate(section)}"
    stale = sorted(k for k in tally if k not in exact and not any(p.fullmatch(k) for p in patterns))
    assert not stale, f"kinds in the doc that no test sends any more: {stale}; {regenerate(section)}"


@each_section
def test_the_report_counts_the_tests_its_command_collects_now(section: Section) -> None:
    """A test added or removed since the run leaves the section stale (its counts with it)."""
    report = parse(documented(section))
    ran = sum(report["outcomes"].values())
    now = collected(pytest_args(report))
    assert ran == now, f"the section counts {ran} tests, its command collects {now}; {regenerate(section)}"


def test_the_collected_count_follows_the_command() -> None:
    """The count is of selected tests: markers and paths narrow it, as in a run."""
    assert collected(LONG.pytest) == 1  # test_faults.py's slow test, not its short one
    assert collected(MAIN.pytest) > 100


def test_the_declared_kinds_follow_the_tests() -> None:
    """The reader of the sources finds parametrized, literal and constant kinds."""
    exact, patterns = declared_kinds()
    assert "addr: a label that starts with a hyphen" in exact  # f"addr: {case}", parametrized
    assert "load: 4 MiB junk frame" in exact  # a literal bad=
    assert "fault: kill -9 during a catch-up sync" in exact  # a module constant, counted by a helper
    assert "control: connect as another user" in exact  # count("...")
    assert any(p.fullmatch("tx: nonce gap") for p in patterns)  # from a loop: a pattern
    assert not any(p.fullmatch("block: anything at all") for p in patterns)


def sample() -> dict[str, Any]:
    return {
        "command": "python -m pytest -p no:cacheprovider tests/hostile -q",
        "markers": "not slow",
        "date": "2025-01-02",
        "seconds": 1234,
        "cpus": 2,
        "python": "3.12.3",
        "commit": "0123abc with uncommitted changes",
        "outcomes": {"failed": 1, "passed": 187, "skipped": 1},
        "skipped": {"creating network namespaces needs root (CI runs as root)": 1},
        "notes": ["fault run of 6 rounds: TRIONODE_FAULT_SEED=42"],
        "tally": {
            "block: a forged signature": 1,
            "fault: network partition": 0,
            "tx: a zero signature": 1_006,
        },
        "senders": {
            "block: a forged signature": {"tests": 1, "failed": 1},
            "tx: a zero signature": {"tests": 2, "failed": 0},
        },
    }


def test_a_report_survives_rendering() -> None:
    report = sample()
    text = render(report)
    assert parse(text) == report
    assert "| block | a forged signature | 1 | 1 | **no**: 1 of 1 tests failed |" in text
    assert "| tx | a zero signature | 1,006 | 2 | yes |" in text
    assert "| fault | network partition | 0 | 0 | - |" in text
    assert "- result: 187 passed, 1 failed, 1 skipped" in text
    assert "- note: fault run of 6 rounds: TRIONODE_FAULT_SEED=42" in text


def test_a_fault_run_alone_renders_no_bad_input_tables() -> None:
    report = {**sample(), "tally": {"fault: network partition": 1}, "senders": {}}
    text = render(report, LONG)
    assert text.startswith(LONG.begin) and text.endswith(LONG.end)
    assert "Bad inputs" not in text and "Every kind of bad input" not in text
    assert "| fault | network partition | 1 | 0 | yes |" in text
    assert parse(text) == report
