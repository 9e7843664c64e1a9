"""The control channel: only the node's owner reaches it, and the P2P port is not it.

The other-user test forks a child that drops to ``nobody`` and tries the socket: it needs
root (as CI has); the data dir sits under a world-traversable directory so that only the
socket's own mode (0600) can stop the child.
"""

import errno
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hostile.daemons import PARAMS, Node
from tests.hostile.encoder import frame, pack
from tests.hostile.expect import established, refused, still_connected
from tests.hostile.peer import count

NOBODY = 65534


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    root = Path(tempfile.mkdtemp(prefix="tn-ctl-"))
    root.chmod(0o755)  # others may traverse: only control.sock's mode can refuse them
    daemon = Node("control", root, PARAMS)
    yield daemon.start()
    daemon.kill()
    shutil.rmtree(root, ignore_errors=True)


def connect_as(uid: int, path: Path) -> int:
    """errno of connecting to ``path`` as ``uid`` (0: connected), from a forked child."""
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, try, report through the exit status
        code = 0
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(str(path))
        except OSError as exc:
            code = exc.errno or 255
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_the_control_socket_is_mode_0600(node: Node) -> None:
    sock = node.data_dir / "control.sock"
    mode = sock.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert node.control("status")["node_id"]


@pytest.mark.skipif(os.geteuid() != 0, reason="acting as another user needs root (CI runs as root)")
def test_another_user_cannot_use_the_control_socket(node: Node) -> None:
    sock = node.data_dir / "control.sock"
    count("control: connect as another user")
    assert connect_as(NOBODY, sock) == errno.EACCES
    # The control: with the mode opened up, the same child gets in, so the 0600 is what stops it.
    sock.chmod(0o666)
    try:
        assert connect_as(NOBODY, sock) == 0
    finally:
        sock.chmod(0o600)
    assert connect_as(NOBODY, sock) == errno.EACCES
    assert node.control("status")["node_id"]


@pytest.mark.parametrize("verb", ["status", "stop", "mine", "submit"])
def test_the_p2p_port_answers_no_control_verb(node: Node, verb: str) -> None:
    height = node.control("status")["height"]
    # A control request as the first frame: not an envelope, so a protocol error.
    raw = node.peer()
    raw.send_raw(frame(pack({"verb": verb, "args": {}})), bad="control: verb on the P2P port")
    refused(node, raw, "protocol_error:missing_field", "protocol_error")
    assert not [env for env in raw.inbox if "ok" in env or "result" in env]
    # The verb as a message type after the handshake: an unknown type, ignored.
    peer = established(node)
    peer.send_and_ping(verb, {"verb": verb, "args": {}}, bad="control: verb on the P2P port")
    assert node.wait_for("unknown_message", peer=peer.node_id)["type"] == verb
    still_connected(node, peer)
    peer.close()
    assert node.alive and not node.matching("signal_received") and not node.matching("node_stopped")
    assert node.control("status")["height"] == height  # nothing was mined
