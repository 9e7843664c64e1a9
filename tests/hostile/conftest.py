"""Fixtures of the hostile suite, and its report: what was tried, counted as it was sent.

Every bad input a hostile peer sends, every fault injected and every transaction checked
for loss is counted (``peer.TALLY``), and attributed to the test that sent it. The counts are
printed at the end of the run; with ``TRIONODE_HOSTILE_REPORT=path.json`` the run's report
(the counts, which tests sent each kind and whether they passed, the run's outcome, command,
date and duration) is written to that file, which ``python -m tests.hostile.report`` renders
into docs/adversarial.md.
"""

import json
import os
import platform
import shlex
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.hostile.daemons import PARAMS, Node
from tests.hostile.encoder import Key, Params
from tests.hostile.expect import Arena, Attacker, chain_of, established, mine_on
from tests.hostile.peer import NOTES, TALLY


class Run:
    """The session's record for the report: per test, what it sent and whether it failed."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.before: Counter[str] = Counter()  # the tally when the running test began
        self.senders: dict[str, list[str]] = {}  # kind -> node ids of the tests that sent it
        self.failed: set[str] = set()
        self.outcomes: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()  # by reason


RUN = Run()


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    RUN.before = TALLY.copy()


# These hooks live in this conftest, so pytest calls them for the tests below it only.
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    xfail = hasattr(report, "wasxfail")
    if report.failed:
        RUN.failed.add(report.nodeid)
        RUN.outcomes["failed" if report.when == "call" else "error"] += 1
    elif report.skipped and xfail:
        RUN.outcomes["xfailed"] += 1
    elif report.skipped:
        RUN.outcomes["skipped"] += 1
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        RUN.skipped[reason.removeprefix("Skipped: ")] += 1
    elif report.when == "call":
        RUN.outcomes["xpassed" if xfail else "passed"] += 1


def pytest_runtest_logfinish(nodeid: str, location: object) -> None:
    """Whatever the tally gained since the test began (its fixtures included) is the test's."""
    for kind, n in TALLY.items():
        if n > RUN.before[kind]:
            RUN.senders.setdefault(kind, []).append(nodeid)


def commit(root: Path) -> str | None:
    """The commit the run's tree is at, and whether it had uncommitted changes (read only:
    ``--no-optional-locks`` keeps ``git status`` from refreshing the index)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None  # not a git checkout (an sdist), or no git
    return f"{head} with uncommitted changes" if changes else head


def report(config: pytest.Config) -> dict[str, Any]:
    """The report ``tests/hostile/report.py`` renders."""
    args = [shlex.quote(arg) for arg in config.invocation_params.args]
    at = commit(config.rootpath)
    return {
        "command": " ".join(["python -m pytest", *args]),
        "markers": config.option.markexpr,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        **({"commit": at} if at else {}),
        "seconds": round(time.monotonic() - RUN.started),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "outcomes": dict(sorted(RUN.outcomes.items())),
        "skipped": dict(sorted(RUN.skipped.items())),
        "notes": list(NOTES),
        "tally": dict(sorted(TALLY.items())),
        "senders": {
            kind: {"tests": len(ids), "failed": len(set(ids) & RUN.failed)}
            for kind, ids in sorted(RUN.senders.items())
        },
    }


@pytest.fixture(scope="module")
def spawn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Node]]:
    """Start daemons for a module; every one is killed when the module is done."""
    root = tmp_path_factory.mktemp("hostile")
    started: list[Node] = []

    def make(name: str, params: Params = PARAMS, *, start: bool = True, **kwargs: Any) -> Node:
        node = Node(name, root, params, **kwargs)
        started.append(node)
        return node.start() if start else node

    yield make
    for node in started:
        node.kill()


@pytest.fixture(scope="module")
def arena(spawn: Callable[..., Node], request: pytest.FixtureRequest) -> Arena:
    node = spawn(request.module.__name__.rsplit(".", 1)[-1], p2p={"max_peers": 40})
    return Arena(node, established(node))


@pytest.fixture
def attacker(arena: Arena) -> Iterator[Attacker]:
    peer = established(arena.node)
    view = chain_of(peer)
    key = Key()
    mine_on(arena.node, peer, view, key.address)
    yield Attacker(peer, view, key)
    peer.close()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if not TALLY:
        return
    terminalreporter.section("hostile suite: what was tried")
    for key in sorted(TALLY):
        terminalreporter.write_line(f"{key:60} {TALLY[key]:>10,}")
    path = os.environ.get("TRIONODE_HOSTILE_REPORT")
    if path:
        Path(path).write_text(json.dumps(report(config), indent=2) + "\n")
        terminalreporter.write_line(
            f"written to {path}; render it with python -m tests.hostile.report --from {path}"
        )
