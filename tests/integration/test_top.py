"""`trionode top`: a snapshot without a terminal, all nodes of a devnet-like dir, a node that
went away, no node at all, and the live view in a pseudo-terminal quitting on `q`."""

import os
import pty
import re
import select
import time
from pathlib import Path

from tests.integration.daemon import PYTHON, Daemon, cli


def top(*args: str) -> tuple[int, str, str]:
    result = cli("top", *args, check=False)
    assert "Traceback" not in result.stderr
    return result.returncode, result.stdout, result.stderr


def test_snapshot_of_one_node_shows_its_id_height_and_peers(tmp_path: Path, daemons: list[Daemon]) -> None:
    a = Daemon("a", tmp_path).start()
    b = Daemon("b", tmp_path, peers=(a.address,)).start()
    daemons += [a, b]
    a_id, b_id = a.status()["node_id"], b.status()["node_id"]
    a.wait_for("peer_connected", peer=b_id)
    cli("mine", data_dir=a.data_dir)
    code, out, err = top("--data-dir", str(a.data_dir))
    assert code == 0, err
    assert a_id in out
    assert re.search(r"^height +1 ", out, re.MULTILINE), out
    assert a.address in out
    assert b_id[:10] in out and b.address in out  # the peers table
    assert "recent blocks" in out
    assert not [line for line in out.splitlines() if line.endswith(" ")]  # `| cat` shows no padding


def test_a_devnet_dir_shows_every_node_and_one_that_went_away(tmp_path: Path, daemons: list[Daemon]) -> None:
    a = Daemon("node1", tmp_path).start()
    b = Daemon("node2", tmp_path, peers=(a.address,)).start()
    daemons += [a, b]
    a_id, b_id = a.status()["node_id"], b.status()["node_id"]
    a.wait_for("peer_connected", peer=b_id)
    code, out, _ = top("--data-dir", str(tmp_path))
    assert code == 0
    assert "node1" in out and "node2" in out
    assert a_id[:10] in out and b_id[:10] in out
    assert b.stop() == 0
    code, out, _ = top("--data-dir", str(tmp_path))
    assert code == 0
    assert a_id[:10] in out
    assert "not running" in out


def test_a_data_dir_holding_node_dirs_shows_them(tmp_path: Path, daemons: list[Daemon]) -> None:
    """``./data`` is the default node's data dir and the parent of data/node1..3 of configs/:
    with its own node stopped, `top --data-dir data` shows the nodes inside."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "node_id").write_text("0" * 32 + "\n")  # the default node ran here once
    a = Daemon("node1", data).start()
    daemons.append(a)
    code, out, err = top("--data-dir", str(data))
    assert code == 0, err
    assert a.status()["node_id"] in out
    assert a.stop() == 0
    code, _, err = top("--data-dir", str(data))
    assert code == 1
    assert err.splitlines() == [
        f"trionode: no node is running in {data} (node1) (start each node with: trionode run --config FILE)"
    ]


def test_a_stopped_devnet_says_how_to_start_it(tmp_path: Path) -> None:
    for name in ("node1", "node2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "node_id").write_text("0" * 32 + "\n")
    (tmp_path / "devnet.json").write_text('{"nodes": 2, "difficulty": 2, "ports": {}}\n')
    code, _, err = top("--data-dir", str(tmp_path))
    assert code == 1
    assert err.splitlines() == [
        f"trionode: no node is running in {tmp_path} (node1, node2) (start it with: trionode devnet --dir {tmp_path})"
    ]


def test_no_node_is_one_line_and_exit_1(tmp_path: Path) -> None:
    code, _, err = top("--data-dir", str(tmp_path / "nothing"))
    assert code == 1
    assert err.splitlines() == [
        f"trionode: no node is running on data dir {tmp_path / 'nothing'} (start one with: trionode --data-dir {tmp_path / 'nothing'} run)"
    ]


def test_live_view_in_a_terminal_quits_on_q(tmp_path: Path, daemons: list[Daemon]) -> None:
    a = Daemon("a", tmp_path).start()
    daemons.append(a)
    a_id = a.status()["node_id"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: top in a terminal
        os.execv(PYTHON, [PYTHON, "-m", "trionode", "top", "--data-dir", str(a.data_dir)])
    screen = b""

    def read_until(text: bytes, timeout: float = 20.0) -> None:
        nonlocal screen
        deadline = time.monotonic() + timeout
        while text not in screen and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                screen += os.read(fd, 65536)
        assert text in screen, screen[-2000:]

    try:
        read_until(a_id.encode())
        assert b"q or Ctrl+C quits" in screen
        assert a.stop() == 0  # the node goes away under the live view
        read_until(b"not running")
        os.write(fd, b"q")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    screen += os.read(fd, 65536)
                except OSError:  # the terminal closed with the child
                    pass
        else:
            raise AssertionError("top did not quit on q within 5 s")
        assert os.waitstatus_to_exitcode(status) == 0
        assert b"Traceback" not in screen
    finally:
        os.close(fd)
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
