"""Every error a user can cause is one line on stderr with a documented exit code, no traceback.

README, "CLI reference": exit 1 for an expected failure (no node, unknown wallet, balance too
low, unreachable peer, port or data dir in use), exit 2 for a bad config or command line.
"""

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon import CHAIN, Daemon, cli, cli_json


def fails(*args: str, code: int, data_dir: Path | None = None) -> str:
    """Run the CLI, expect ``code`` and exactly one ``trionode: ...`` line on stderr; return it."""
    result = cli(*args, data_dir=data_dir, check=False)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("trionode"), lines[0]
    assert result.returncode == code, (result.returncode, result.stderr)
    return lines[0]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One running node with wallets alice (no coins) and bob."""
    daemon = Daemon("node", tmp_path_factory.mktemp("errors")).start()
    try:
        cli("wallet", "new", "alice", data_dir=daemon.data_dir)
        cli("wallet", "new", "bob", data_dir=daemon.data_dir)
        yield daemon
    finally:
        daemon.kill()


@pytest.fixture
def foreign_server() -> Iterator[tuple[socket.socket, list[bytes]]]:
    """A loopback listener that is not trionode: each connection gets ``replies[0]`` (if any)
    and is closed. Returns the listening socket and the list to put the reply in."""
    listener = socket.create_server(("127.0.0.1", 0))
    replies: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # the listener was closed: the test is over
                return
            with conn:
                if replies:
                    conn.sendall(replies[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener, replies
    finally:
        listener.close()
        thread.join(5)


def closed_port() -> int:
    """A loopback port nobody listens on (just released by us)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ----------------------------------------------------------------- bad config or command line: 2


def test_unknown_config_key_names_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text("[p2p]\nlisten_on = '127.0.0.1:5001'\n")
    line = fails("run", "--config", str(config), code=2)
    assert str(config) in line and "p2p.listen_on" in line and "did you mean listen" in line


def test_wrong_type_in_config(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text("[chain]\ndifficulty = 'two'\n")
    line = fails("--config", str(config), "status", code=2)
    assert "chain.difficulty" in line


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text("[p2p\n")
    assert "invalid TOML" in fails("run", "--config", str(config), code=2)
    missing = tmp_path / "missing.toml"
    assert "cannot read the file" in fails("run", "--config", str(missing), code=2)


def test_mining_to_a_wallet_that_does_not_exist(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text(f'[node]\ndata_dir = "{tmp_path / "d"}"\n[mining]\nenabled = true\naddress = "miner"\n')
    line = fails("run", "--config", str(config), code=2)
    assert line.startswith(f"trionode: {config}: mining.address: unknown wallet 'miner'"), line


def test_bad_flags(tmp_path: Path) -> None:
    assert "--listen" in fails("run", "--data-dir", str(tmp_path), "--listen", "localhost", code=2)
    assert "--limit" in fails("chain", "--limit", "-1", data_dir=tmp_path, code=2)


def test_bad_arguments_of_verbs_are_usage_errors(node: Daemon, tmp_path: Path) -> None:
    for address in ("127.0.0.1", "127.0.0.1:99999", "[::1"):
        assert "connect: bad address" in fails("connect", address, data_dir=node.data_dir, code=2)
    assert "bad wallet name" in fails("wallet", "new", "a/b", data_dir=tmp_path, code=2)
    devnet = tmp_path / "devnet"
    assert "--nodes must be 1..32" in fails("devnet", "--nodes", "0", "--dir", str(devnet), code=2)


def test_bad_amount(node: Daemon) -> None:
    assert "--amount" in fails(
        "send", "--from", "alice", "--to", "bob", "--amount", "ten", data_dir=node.data_dir, code=2
    )
    assert "--amount" in fails(
        "send", "--from", "alice", "--to", "bob", "--amount", "0", data_dir=node.data_dir, code=2
    )


def test_bad_amounts_and_names_are_usage_errors_even_without_a_node(tmp_path: Path) -> None:
    """Checked before the node is asked: the same exit 2 whether or not a node runs."""
    for amount in ("1.123456789", "nan", "-1", "ten", "0"):
        line = fails(
            "send", "--from", "alice", "--to", "bob", f"--amount={amount}", data_dir=tmp_path, code=2
        )
        assert line.startswith("trionode: --amount: "), line
    line = fails("send", "--from", "a/b", "--to", "bob", "--amount", "1", data_dir=tmp_path, code=2)
    assert "bad wallet name 'a/b'" in line
    assert "bad wallet name" in fails("balance", "c/d", data_dir=tmp_path, code=2)
    assert "bad wallet name" in fails("mine", "--to", "c/d", data_dir=tmp_path, code=2)
    # A wallet that does not exist is named as such, not hidden behind "no node is running".
    line = fails("send", "--from", "carol", "--to", "bob", "--amount", "1", data_dir=tmp_path, code=1)
    assert "unknown wallet 'carol'" in line


def test_config_listen_port_out_of_range_says_it_once(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('[p2p]\nlisten = "127.0.0.1:99999"\n')
    line = fails("--config", str(config), "status", code=2)
    assert (
        line
        == f'trionode: {config}: p2p.listen: expected HOST:PORT, got "127.0.0.1:99999" (port must be 0..65535)'
    )


def test_outbound_target_must_leave_room_for_inbound(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text("[p2p]\nmax_peers = 4\noutbound_target = 4\n")
    line = fails("--config", str(config), "status", code=2)  # status: no node runs, whatever happens
    assert line.startswith(f"trionode: {config}: p2p.outbound_target: expected an integer 1..3 "), line


# ----------------------------------------------------------------- expected failures: 1


def test_no_node_running(tmp_path: Path) -> None:
    line = fails("status", data_dir=tmp_path, code=1)
    assert (
        line
        == f"trionode: no node is running on data dir {tmp_path} (start one with: trionode --data-dir {tmp_path} run)"
    )
    config = tmp_path / "node.toml"
    config.write_text(f'[node]\ndata_dir = "{tmp_path / "n1"}"\n')
    line = fails("--config", str(config), "peers", code=1)
    assert line.endswith(f"(start one with: trionode --config {config} run)")


def test_port_in_use_names_where_the_address_came_from(node: Daemon, tmp_path: Path) -> None:
    line = fails("run", "--data-dir", str(tmp_path / "other"), "--listen", node.address, code=1)
    assert line == f"trionode: cannot listen on {node.address}: port {node.port} is in use (from --listen)"
    out = cli("run", "--data-dir", str(tmp_path / "other"), "--listen", node.address, check=False).stdout
    assert "node_stopped" not in out  # it never started, so it does not claim to have stopped
    config = tmp_path / "node.toml"
    config.write_text(f'[node]\ndata_dir = "{tmp_path / "other"}"\n[p2p]\nlisten = "{node.address}"\n')
    line = fails("run", "--config", str(config), code=1)
    assert line == (
        f"trionode: cannot listen on {node.address}: port {node.port} is in use (from p2p.listen in {config})"
    )


def test_an_address_that_cannot_be_bound_names_the_setting(tmp_path: Path) -> None:
    line = fails("run", "--data-dir", str(tmp_path / "d"), "--listen", "192.0.2.1:5001", code=1)
    assert line.startswith("trionode: cannot listen on 192.0.2.1:5001: ") and line.endswith("(from --listen)")
    config = tmp_path / "node.toml"
    config.write_text(f'[node]\ndata_dir = "{tmp_path / "d"}"\n[p2p]\nlisten = "192.0.2.1:5001"\n')
    line = fails("run", "--config", str(config), code=1)
    assert line.startswith("trionode: cannot listen on 192.0.2.1:5001: ")
    assert line.endswith(f"(from p2p.listen in {config})")


def test_a_data_dir_too_long_for_the_control_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    line = fails("run", "--data-dir", str(deep), "--listen", "127.0.0.1:0", code=1)
    assert "too long for the control socket" in line and "data_dir" in line
    assert not (deep / "chain.db").exists()  # refused before anything was written


def test_data_dir_in_use(node: Daemon) -> None:
    line = fails("run", "--data-dir", str(node.data_dir), "--listen", "127.0.0.1:0", code=1)
    assert line == f"trionode: {node.data_dir}: another trionode is running on this data dir"


def test_unknown_wallet(node: Daemon) -> None:
    line = fails("send", "--from", "carol", "--to", "bob", "--amount", "1", data_dir=node.data_dir, code=1)
    assert (
        "unknown wallet 'carol'" in line and f"trionode --data-dir {node.data_dir} wallet new carol" in line
    )
    assert "unknown wallet 'erin'" in fails("wallet", "show", "erin", data_dir=node.data_dir, code=1)


def test_an_empty_wallet_list_says_how_to_create_one_in_that_data_dir(tmp_path: Path) -> None:
    """Not an error (exit 0), but its hint must name the same node: without the selector,
    `trionode wallet new NAME` would create the wallet in ./data."""
    result = cli("wallet", "list", data_dir=tmp_path)
    assert result.stdout == (
        f"no wallets in {tmp_path / 'wallets'} (create one with: trionode --data-dir {tmp_path} wallet new NAME)\n"
    )
    config = tmp_path / "node.toml"
    config.write_text(f'[node]\ndata_dir = "{tmp_path / "n1"}"\n')
    result = cli("--config", str(config), "wallet", "list")
    assert result.stdout.endswith(f"(create one with: trionode --config {config} wallet new NAME)\n")


def test_an_unknown_recipient_is_not_offered_a_new_wallet(node: Daemon) -> None:
    """`--to bob` where bob lives in another data dir: creating a second bob is not the fix."""
    wallets = node.data_dir / "wallets"
    for args in (
        ("send", "--from", "alice", "--to", "carol", "--amount", "1"),
        ("balance", "carol"),
        ("mine", "--to", "carol"),
    ):
        line = fails(*args, data_dir=node.data_dir, code=1)
        assert line == (
            f"trionode: 'carol' is neither a wallet in {wallets} nor a 40-hex-digit address "
            "(give carol's address: trionode --data-dir DIR wallet show carol)"
        ), line
    line = fails("send", "--from", "alice", "--to", "6a83", "--amount", "1", data_dir=node.data_dir, code=1)
    assert line == (
        f"trionode: '6a83' is neither a wallet in {wallets} nor a 40-hex-digit address (it has 4 hex digits)"
    )
    assert not (wallets / "carol.json").exists()


def test_not_enough_balance(node: Daemon) -> None:
    line = fails("send", "--from", "alice", "--to", "bob", "--amount", "5", data_dir=node.data_dir, code=1)
    assert line == "trionode: balance too low: alice can spend 0 (confirmed 0), asked 5"


def test_peer_unreachable(node: Daemon) -> None:
    port = closed_port()
    line = fails("connect", f"127.0.0.1:{port}", data_dir=node.data_dir, code=1)
    assert line == f"trionode: cannot reach 127.0.0.1:{port}: Connection refused"
    assert 'no ":PORT"' in fails("connect", "nonsense", data_dir=node.data_dir, code=2)


def test_connect_to_something_that_is_not_trionode(
    node: Daemon, foreign_server: tuple[socket.socket, list[bytes]]
) -> None:
    listener, replies = foreign_server
    address = f"127.0.0.1:{listener.getsockname()[1]}"
    line = fails("connect", address, data_dir=node.data_dir, code=1)  # accepts, then hangs up
    assert line.startswith(f"trionode: {address}: "), line
    assert line.endswith(" (wrong port, or another program listens there)"), line
    replies.append(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")  # a web server
    line = fails("connect", address, data_dir=node.data_dir, code=1)
    assert line == (
        f"trionode: {address} is not a trionode node (it sent something that is not a trionode frame)"
    )


def test_peer_on_another_network(node: Daemon, tmp_path: Path) -> None:
    foreign = Daemon("foreign", tmp_path)
    foreign.config.write_text(
        foreign.config.read_text().replace(CHAIN, CHAIN.replace("difficulty = 1", "difficulty = 3"))
    )
    foreign.start()
    try:
        line = fails("connect", foreign.address, data_dir=node.data_dir, code=1)
        assert (
            line
            == f"trionode: {foreign.address}: peer is on a different network (its genesis differs from ours)"
        )
    finally:
        foreign.kill()


def test_unwritable_places(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert "Not a directory" in fails("wallet", "new", "alice", data_dir=a_file / "sub", code=1)
    config = tmp_path / "node.toml"
    config.write_text(f'[node]\ndata_dir = "{tmp_path / "d"}"\n[log]\nfile = "{a_file / "x.log"}"\n')
    assert "cannot open the log file" in fails("run", "--config", str(config), code=1)


def test_devnet_refuses_a_foreign_dir(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    line = fails("devnet", "--dir", str(tmp_path), code=2)
    assert "not made by trionode devnet" in line
    assert "--nodes must be" in fails("devnet", "--nodes", "0", "--dir", str(tmp_path / "new"), code=2)


def test_a_working_command_still_works(node: Daemon) -> None:
    """The fixture node is healthy: the failures above are the commands', not the node's."""
    assert cli_json("status", data_dir=node.data_dir)["height"] == 0
