from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon import Daemon


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.kill()
