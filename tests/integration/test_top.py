"""`trionode top`: a snapshot without a terminal, all nodes of a devnet-like dir, a node that
went away, no node at all, and the live view in a pseudo-terminal quitting on `q` or Ctrl+C.
"""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon import Daemon, cli, hard
from tests.integration.terminal import CTRL_C, Terminal


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


def test_a_directory_of_other_files_is_not_offered_a_node(tmp_path: Path) -> None:
    """`top --data-dir configs`: no node ran there, and `trionode --data-dir configs run` would
    make configs/ a data dir; a file given as data dir is probably a config file."""
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "node1.toml").write_text("[node]\n")
    code, _, err = top("--data-dir", str(configs))
    assert code == 1
    assert err.splitlines() == [
        f"trionode: {configs} holds no node data dir"
        " (give --data-dir a node's data dir or the directory holding them, or --config a node's config file)"
    ]
    stopped = tmp_path / "stopped"  # a node ran here: `run` is the right hint
    stopped.mkdir()
    (stopped / "node_id").write_text("0" * 32 + "\n")
    (stopped / "notes.txt").write_text("mine")
    _, _, err = top("--data-dir", str(stopped))
    assert err.endswith(f"(start one with: trionode --data-dir {stopped} run)\n"), err
    code, _, err = top("--data-dir", str(configs / "node1.toml"))
    assert code == 1
    assert err.splitlines() == [
        f"trionode: {configs / 'node1.toml'} is a file, not a node's data dir"
        f" (a config file? trionode --config {configs / 'node1.toml'} top)"
    ]


@pytest.fixture
def miner(tmp_path: Path) -> Iterator[Daemon]:
    """A node mining by itself ([mining] enabled) on the hard network: its hash rate stays
    on; one worker leaves the other core to the test."""
    daemon = hard(Daemon("miner", tmp_path, extra="[mining]\nenabled = true\nworkers = 1")).start()
    try:
        yield daemon
    finally:
        daemon.kill()


def test_the_peers_rtt_and_last_seen_and_the_hash_rate_of_a_mining_node(
    tmp_path: Path, miner: Daemon, daemons: list[Daemon]
) -> None:
    b = hard(Daemon("b", tmp_path, peers=(miner.address,))).start()
    daemons.append(b)
    b_id = b.status()["node_id"]
    # The round trip is known after the first heartbeat echo (1 s heartbeats here).
    miner.wait_until(
        lambda: [p for p in miner.call("peers") if p["node_id"] == b_id and p["rtt"] is not None],
        what="b's round trip",
    )
    miner.wait_until(lambda: miner.call("status")["hashrate"] > 0, what="a hash rate")
    code, out, err = top("--data-dir", str(miner.data_dir))
    assert code == 0, err
    assert re.search(r"^mining +[0-9.]+ (MH|kH|H)/s$", out, re.MULTILINE), out
    header = next(line for line in out.splitlines() if line.lstrip().startswith("PEER "))
    assert header.split() == ["PEER", "ADDRESS", "DIR", "HEIGHT", "RTT", "LAST", "SEEN"]
    row = next(line for line in out.splitlines() if line.lstrip().startswith(b_id[:10]))
    # RTT then LAST SEEN: "0.4 ms  0s ago"
    assert re.search(r" [0-9]+\.[0-9] ms +[0-9]+s ago$", row), row


def test_live_view_in_a_terminal_quits_on_q(tmp_path: Path, daemons: list[Daemon]) -> None:
    a = Daemon("a", tmp_path).start()
    daemons.append(a)
    a_id = a.status()["node_id"]
    term = Terminal("top", "--data-dir", str(a.data_dir))
    try:
        term.wait_for(re.escape(a_id.encode()))
        assert b"q or Ctrl+C quits" in term.text
        assert a.stop() == 0  # the node goes away under the live view
        term.wait_for(b"not running")
        term.key(b"q")
        assert term.wait_exit(5) == 0
        assert b"Traceback" not in term.screen
    finally:
        term.close()


def test_live_view_quits_on_ctrl_c(miner: Daemon) -> None:
    term = Terminal("top", "--data-dir", str(miner.data_dir))
    try:
        term.wait_for(rb"mining +[0-9.]+ (MH|kH|H)/s")  # the live view shows the rate too
        term.key(CTRL_C)
        assert term.wait_exit(5) == 0
        assert b"Traceback" not in term.screen
    finally:
        term.close()
