"""Three real daemons on 127.0.0.1: discovery, relay, mining, persistence, shutdown."""

import fcntl
import signal
from pathlib import Path

from tests.integration.daemon import Daemon, cli, cli_json, poll
from trionode.control.protocol import LOCK_NAME


def line_of_three(tmp_path: Path, daemons: list[Daemon]) -> list[Daemon]:
    """node1 - node2 - node3: 1 and 3 only know node2, discovery must do the rest.

    node1 has node2 in its config's peers; node3 is told on the command line (``--peer``)."""
    n2 = Daemon("node2", tmp_path).start()
    n1 = Daemon("node1", tmp_path, peers=(n2.address,)).start()
    n3 = Daemon("node3", tmp_path, run_args=("--peer", n2.address)).start()
    daemons += [n1, n2, n3]
    return [n1, n2, n3]


def test_line_of_three_discovers_relays_and_agrees(tmp_path: Path, daemons: list[Daemon]) -> None:
    n1, n2, n3 = line_of_three(tmp_path, daemons)
    id1, id2, id3 = (node.status()["node_id"] for node in (n1, n2, n3))
    assert "peers = []" in n3.config.read_text()
    assert n3.wait_for("peer_connected", peer=id2)["direction"] == "outbound"  # dialled per --peer
    n1.wait_for("peer_connected", peer=id3)
    n3.wait_for("peer_connected", peer=id1)
    cli("wallet", "new", "alice", data_dir=n1.data_dir)
    cli("wallet", "new", "bob", data_dir=n1.data_dir)
    cli("mine", "--to", "alice", data_dir=n1.data_dir)
    for node in (n2, n3):
        node.wait_for("block_accepted", height=1)
    bob = cli_json("wallet", "show", "bob", data_dir=n1.data_dir)["address"]
    sent = cli_json("send", "--from", "alice", "--to", bob, "--amount", "12.5", data_dir=n1.data_dir)
    for node in (n2, n3):
        node.wait_for("tx_accepted", txid=sent["txid"])
        assert [t["txid"] for t in cli_json("pending", data_dir=node.data_dir)] == [sent["txid"]]
    mined = cli_json("mine", data_dir=n3.data_dir)
    for node in (n1, n2):
        node.wait_for("block_accepted", hash=mined["hash"])
    tips = {node.status()["tip"] for node in (n1, n2, n3)}
    assert tips == {mined["hash"]}
    for node in (n1, n2, n3):
        assert cli_json("balance", bob, data_dir=node.data_dir)["balance"] == 12.5
        assert cli_json("pending", data_dir=node.data_dir) == []
        assert cli_json("validate", data_dir=node.data_dir)["valid"] is True
    for node in (n1, n2, n3):
        assert node.stop() == 0
        node.wait_for("node_stopped", timeout=5)  # the reader thread may still be catching up


def test_peers_json_survives_kill_and_peers_are_redialled(tmp_path: Path, daemons: list[Daemon]) -> None:
    a = Daemon("a", tmp_path).start()
    daemons.append(a)
    b = Daemon("b", tmp_path, peers=(a.address,)).start()
    daemons.append(b)
    a_id = a.status()["node_id"]
    b.wait_for("peer_connected", peer=a_id)
    poll(
        lambda: (
            a_id in (b.data_dir / "peers.json").read_text() if (b.data_dir / "peers.json").exists() else False
        ),
        what="peers.json with a",
    )
    b.kill()
    # Restart b with no configured peers: it must redial a from peers.json.
    b.config.write_text(b.config.read_text().replace(f'peers = ["{a.address}"]', "peers = []"))
    b.start()
    b.wait_for("peer_connected", peer=a_id)
    peers = cli_json("peers", data_dir=b.data_dir)
    assert [p["node_id"] for p in peers if p["connected"]] == [a_id]
    assert b.stop() == 0


def test_sigterm_and_stop_exit_cleanly(tmp_path: Path, daemons: list[Daemon]) -> None:
    a = Daemon("a", tmp_path).start()
    b = Daemon("b", tmp_path, peers=(a.address,)).start()
    daemons += [a, b]
    b.wait_for("peer_connected")
    result = cli("stop", data_dir=a.data_dir)
    # `stop` returns once the node has let go of its data dir: `stop && run` never finds it busy.
    assert result.stdout.strip() == "node stopped"
    with (a.data_dir / LOCK_NAME).open("ab") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if still held
    assert a.proc is not None and a.proc.wait(5) == 0
    a.wait_for("node_stopped", timeout=5)
    assert b.stop(timeout=5) == 0
    assert not (b.data_dir / "control.sock").exists()


def test_sigint_exits_cleanly(tmp_path: Path, daemons: list[Daemon]) -> None:
    """Ctrl+C on ``trionode run`` is a clean stop, as SIGTERM is."""
    a = Daemon("a", tmp_path).start()
    b = Daemon("b", tmp_path, peers=(a.address,)).start()
    daemons += [a, b]
    b.wait_for("peer_connected")
    assert b.proc is not None
    b.proc.send_signal(signal.SIGINT)
    assert b.proc.wait(5) == 0
    b.wait_for("node_stopped", timeout=5)  # the reader thread may still be catching up
    assert b.matching("signal_received", signal="SIGINT")
    assert not (b.data_dir / "control.sock").exists()
    gone = a.wait_for("peer_disconnected", timeout=5)
    assert gone["reason"] == "peer_error:shutdown"  # b said goodbye: a clean shutdown, not a reset
    assert a.stop(timeout=5) == 0
