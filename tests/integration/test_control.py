"""The control socket over a real daemon: a client that hangs up cancels what it asked for."""

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon import Daemon, hard
from trionode.control.protocol import encode


@pytest.fixture
def hard_node(tmp_path: Path) -> Iterator[Daemon]:
    """A node whose blocks take billions of hashes: a `mine` on it never finishes by itself."""
    daemon = hard(Daemon("hard", tmp_path)).start()
    try:
        yield daemon
    finally:
        daemon.kill()


def test_mining_stops_when_the_client_that_asked_for_it_hangs_up(hard_node: Daemon) -> None:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(hard_node.data_dir / "control.sock"))
    client.sendall(encode({"verb": "mine", "args": {}}))
    hard_node.wait_until(lambda: hard_node.call("status")["mining"], what="mining to start")
    client.close()  # what Ctrl+C on `trionode mine` does
    hard_node.wait_until(lambda: not hard_node.call("status")["mining"], what="mining to stop")
    status = hard_node.call("status")
    assert (status["height"], status["hashrate"]) == (0, 0.0)
    assert hard_node.stop() == 0
