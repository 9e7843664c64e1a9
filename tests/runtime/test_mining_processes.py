"""The proof-of-work worker processes of a real ``trionode run`` end with it: after a clean
stop, and after ``kill -9`` (the orphans notice their parent is gone and exit).

Linux only: the node's children are read from ``/proc``.
"""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon import Daemon, poll

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

# Workers configured, and the difficulty: ~268 million hashes a block, so the node is still
# searching (never between blocks) whenever the test looks.
WORKERS = 2
DIFFICULTY = 7
# Real-time bound for the workers to start, and for orphans to exit.
WITHIN = 20.0
# After a clean stop the workers are told to exit: they are gone within moments, not minutes.
STOP_WITHIN = 5.0


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A node mining from the start (not yet started); killed at the end whatever happened."""
    data_dir = tmp_path / "miner"
    daemon = Daemon.from_config(
        "miner",
        tmp_path,
        f'[node]\ndata_dir = "{data_dir}"\n\n[p2p]\nlisten = "127.0.0.1:0"\n\n'
        f"[mining]\nenabled = true\nworkers = {WORKERS}\n\n[chain]\ndifficulty = {DIFFICULTY}\n",
    )
    yield daemon
    daemon.kill()


def children(pid: int) -> set[int]:
    """Live processes whose parent is ``pid``."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_mining(daemon: Daemon) -> set[int]:
    """Start the daemon and wait until its workers hash; their pids."""
    daemon.start()
    daemon.wait_for("mining_started", workers=WORKERS)
    assert daemon.proc is not None
    pid = daemon.proc.pid
    workers: set[int] = poll(
        lambda: len(children(pid)) >= WORKERS and children(pid), WITHIN, "worker processes"
    )
    poll(lambda: daemon.call("status")["hashrate"] > 0, WITHIN, "a hash rate")
    return workers


def test_the_workers_exit_with_the_node(daemon: Daemon) -> None:
    workers = start_mining(daemon)
    assert daemon.stop() == 0
    # The node tells its workers to exit as it ends; they may take a moment after it is gone.
    poll(lambda: not any(alive(pid) for pid in workers), STOP_WITHIN, "the workers to exit")


def test_orphaned_workers_exit_when_the_node_is_killed(daemon: Daemon) -> None:
    workers = start_mining(daemon)
    daemon.kill()
    poll(lambda: not any(alive(pid) for pid in workers), WITHIN, "the orphaned workers to exit")
