"""`trionode devnet`: three real nodes agree on a chain where alice paid bob 50; Ctrl+C (SIGINT)
stops every node cleanly; a second run reuses the same dir; a second devnet on it is refused."""

import fcntl
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.integration.daemon import PYTHON, Daemon, cli, cli_json


class Devnet:
    """``trionode devnet`` as a subprocess whose output lines are read by a thread."""

    def __init__(self, directory: Path, nodes: int = 3) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "trionode", "devnet", "--nodes", str(nodes), "--dir", str(directory)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._ended = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    found = re.search(pattern, line)
                    if found:
                        return found
                left = deadline - time.monotonic()
                if left <= 0 or self._ended:
                    raise AssertionError(f"no {pattern!r} in devnet output:\n" + "\n".join(self.lines))
                self._changed.wait(left)

    def pids(self) -> list[int]:
        return sorted({int(p) for p in re.findall(r"^  node\d+ .* pid (\d+)", self.output, re.MULTILINE)})

    def interrupt(self, timeout: float = 10.0) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """Cleanup after a failed test: the devnet and, by pid, any node it left."""
        pids = self.pids()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def lock_free(data_dir: Path) -> bool:
    """No process holds the node's data dir lock (what `trionode run` takes)."""
    with open(data_dir / "LOCK", "ab") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return True


def test_devnet_runs_the_demo_agrees_and_stops_cleanly(tmp_path: Path) -> None:
    root = tmp_path / "net"
    dirs = [root / f"node{i}" for i in (1, 2, 3)]
    devnet = Devnet(root)
    try:
        devnet.wait_for(r"^devnet ready")
        pids = devnet.pids()
        assert len(pids) == 3
        statuses = [cli_json("status", data_dir=d) for d in dirs]
        assert len({s["tip"] for s in statuses}) == 1
        assert {s["height"] for s in statuses} == {4}  # 3 blocks to alice, 1 with her payment
        assert [s["peers"] for s in statuses] == [2, 2, 2]  # node1 and node3 met through discovery
        bob = cli_json("wallet", "show", "bob", data_dir=dirs[0])["address"]
        alice = cli_json("wallet", "show", "alice", data_dir=dirs[0])["address"]
        for d in dirs:
            assert cli_json("balance", bob, data_dir=d)["balance"] == 50
            assert cli_json("balance", alice, data_dir=d)["balance"] == 100
        assert all((root / f"node{i}.log").stat().st_size > 0 for i in (1, 2, 3))

        started = time.monotonic()
        assert devnet.interrupt() == 0, devnet.output
        assert time.monotonic() - started < 5
        assert "devnet stopped" in devnet.output
        assert not any(alive(pid) for pid in pids)
        assert all(lock_free(d) and not (d / "control.sock").exists() for d in dirs)
        assert "Traceback" not in devnet.output

        # Again on the same dir: the same nodes and chain, no second demo.
        again = Devnet(root)
        try:
            again.wait_for(r"^devnet ready: 3 nodes, height 4")
            assert "reusing" in again.output
            second = cli("devnet", "--dir", str(root), check=False)
            assert second.returncode == 1
            assert second.stderr.startswith("trionode: a devnet is already running in")
            assert cli_json("balance", bob, data_dir=dirs[2])["balance"] == 50
            assert again.interrupt() == 0, again.output
        finally:
            again.kill()
    finally:
        devnet.kill()


def test_a_node_of_a_stopped_devnet_running_alone_is_not_called_a_devnet(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    """`trionode run --config devnet/node2.toml` while devnet is stopped: devnet names that node
    and how to stop it, rather than a devnet to Ctrl+C that does not exist."""
    (tmp_path / "devnet.json").write_text('{"nodes": 2, "difficulty": 1, "ports": {}}\n')
    daemons.append(Daemon("node2", tmp_path).start())
    result = cli("devnet", "--dir", str(tmp_path), check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"trionode: node2 is running on its own; stop it first: trionode --data-dir {tmp_path / 'node2'} stop"
    ]


def test_a_difficulty_out_of_range_is_refused_the_same_on_a_new_or_an_existing_dir(tmp_path: Path) -> None:
    """The range error, not "run with --difficulty 2": that advice would not help either."""
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "devnet.json").write_text('{"nodes": 2, "difficulty": 2, "ports": {}}\n')
    for directory in (tmp_path / "new", tmp_path / "old"):
        result = cli("devnet", "--dir", str(directory), "--difficulty", "9", check=False)
        assert (result.returncode, result.stderr) == (
            2,
            "trionode: --difficulty must be 0..8 for a devnet, got 9\n",
        )
    assert not (tmp_path / "new").exists()  # refused before anything was created
