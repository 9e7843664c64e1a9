"""The progress line of `trionode mine` and `sync` (cli/progress.py): on stderr while the call
runs in a terminal, with what the node reports meanwhile; none with --json or a pipe; Ctrl+C
during `mine` exits 130 and the node stops mining.

Mining runs on a network of difficulty 8 (billions of hashes a block: it goes on until it is
interrupted). The peer ahead for `sync` is a scripted one (tests/hostile/peer.py) that claims
1,000 blocks and sends none until it hangs up: the sync lasts exactly as long as the test
needs to read the line, with no chain to build and no race with the node's own sync.
"""

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hostile.encoder import Params, work_of
from tests.hostile.peer import Peer
from tests.integration.daemon import PYTHON, Daemon, hard
from tests.integration.terminal import CTRL_C, Terminal

# The claimed height of the peer ahead.
AHEAD = 1_000


@pytest.fixture
def hard_node(tmp_path: Path) -> Iterator[Daemon]:
    """A node of the hard network, not mining until asked; one worker when it does."""
    daemon = hard(Daemon("hard", tmp_path, extra="[mining]\nworkers = 1")).start()
    try:
        yield daemon
    finally:
        daemon.kill()


def mining(node: Daemon) -> bool:
    status = node.call("status")
    return bool(status["mining"])


def test_mine_shows_its_progress_on_stderr_and_ctrl_c_exits_130(hard_node: Daemon) -> None:
    term = Terminal("--data-dir", str(hard_node.data_dir), "mine", stdout_pipe=True)
    try:
        term.wait_for(rb"mining\.\.\.")  # at once, before the node reports anything
        # Then the elapsed time, the block being mined and the node's hash rate.
        line = term.wait_for(rb"mining\.\.\. [0-9]+\.[0-9] s  block 1 at difficulty 8, [0-9,]+ H/s")
        assert int(line[0].rsplit(b", ", 1)[1].split()[0].replace(b",", b"")) > 0
        hard_node.wait_until(lambda: mining(hard_node), what="mining")
        term.key(CTRL_C)
        assert term.wait_exit() == 130
        assert term.stdout == b""  # no result: nothing was mined
        assert b"Traceback" not in term.screen
        hard_node.wait_until(lambda: not mining(hard_node), what="mining to stop")
        assert hard_node.call("status")["height"] == 0
    finally:
        term.close()


def test_no_progress_line_with_json_or_a_pipe(hard_node: Daemon) -> None:
    # --json in a terminal: the output is for a program, stderr stays quiet.
    term = Terminal("--data-dir", str(hard_node.data_dir), "mine", "--json", stdout_pipe=True)
    try:
        # The line would be drawn before the call reaches the node: once it mines, it is not.
        hard_node.wait_until(lambda: mining(hard_node), what="mining")
        term.key(CTRL_C)
        assert term.wait_exit() == 130
        assert term.text.replace(b"^C", b"").strip() == b"", term.screen  # the terminal echoes ^C
    finally:
        term.close()
    hard_node.wait_until(lambda: not mining(hard_node), what="mining to stop")
    # stderr a pipe (`2>log`, a script): no line either.
    proc = subprocess.Popen(
        [PYTHON, "-m", "trionode", "--data-dir", str(hard_node.data_dir), "mine"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        hard_node.wait_until(lambda: mining(hard_node), what="mining")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert (proc.returncode, out, err) == (130, b"", b"")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sync_shows_the_height_reached_of_the_best_peers(tmp_path: Path, daemons: list[Daemon]) -> None:
    node = Daemon("behind", tmp_path).start()
    daemons.append(node)
    params = Params(difficulty=1)  # the chain of tests/integration/daemon.py
    with Peer(node.address, params) as ahead:
        ahead.height = AHEAD
        ahead.tip = os.urandom(32)
        ahead.work = work_of(params.target) * (AHEAD + 1)
        ahead.handshake()
        ahead.expect("RequestChain")  # the node asks; the peer keeps it waiting
        term = Terminal("--data-dir", str(node.data_dir), "sync", stdout_pipe=True)
        try:
            term.wait_for(rb"syncing\.\.\. [0-9]+\.[0-9] s  height 0 of 1000")
            ahead.close()  # it hangs up: the sync ends, with what the node has
            assert term.wait_exit() == 0, term.screen
            assert re.fullmatch(rb"height 0 tip [0-9a-f]{64}\r?\n", term.stdout), term.stdout
            assert b"Traceback" not in term.screen
        finally:
            term.close()
