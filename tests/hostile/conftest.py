"""Fixtures of the hostile suite, and its report: what was tried, counted as it was sent.

Every bad input a hostile peer sends, every fault injected and every transaction checked
for loss is counted (``peer.TALLY``); the counts are printed at the end of the run and, with
``TRIONODE_HOSTILE_REPORT=path.json``, written to that file (docs/adversarial.md quotes it).
"""

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hostile.daemons import PARAMS, Node
from tests.hostile.encoder import Key, Params
from tests.hostile.expect import Arena, Attacker, chain_of, established, mine_on
from tests.hostile.peer import TALLY


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


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY:
        return
    terminalreporter.section("hostile suite: what was tried")
    for key in sorted(TALLY):
        terminalreporter.write_line(f"{key:40} {TALLY[key]:>10,}")
    path = os.environ.get("TRIONODE_HOSTILE_REPORT")
    if path:
        Path(path).write_text(json.dumps(dict(sorted(TALLY.items())), indent=2) + "\n")
        terminalreporter.write_line(f"written to {path}")
