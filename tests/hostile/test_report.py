"""docs/adversarial.md's numbers come from a run, not a keyboard: its report section is what
``report.py`` renders, and it names exactly the kinds of bad input and fault the tests can
send. Reads files and imports the test modules; starts no daemon and runs no other test.

When a test adds, renames or drops a kind, these fail until the doc is regenerated:
``python -m tests.hostile.report`` (as root, as CI runs, so no test is skipped).
"""

from typing import Any

from tests.hostile.report import DOC, declared_kinds, parse, render, section_of

REGENERATE = "regenerate docs/adversarial.md: python -m tests.hostile.report"


def documented() -> str:
    return section_of(DOC.read_text())


def test_the_report_section_is_exactly_what_the_renderer_makes_of_it() -> None:
    section = documented()
    assert render(parse(section)) == section, f"the section was edited by hand; {REGENERATE}"


def test_the_report_names_every_kind_the_tests_declare_and_no_other() -> None:
    tally = parse(documented())["tally"]
    exact, patterns = declared_kinds()
    missing = sorted(exact - set(tally))
    assert not missing, f"kinds the tests send that the doc lacks: {missing}; {REGENERATE}"
    stale = sorted(k for k in tally if k not in exact and not any(p.fullmatch(k) for p in patterns))
    assert not stale, f"kinds in the doc that no test sends any more: {stale}; {REGENERATE}"


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
        "outcomes": {"failed": 1, "passed": 187, "skipped": 1},
        "skipped": {"creating network namespaces needs root (CI runs as root)": 1},
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
