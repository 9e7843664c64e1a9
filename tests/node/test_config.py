"""Config loading: defaults, overrides, the shipped files, and one-line errors naming file and key."""

import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trionode.chain.amounts import COIN
from trionode.chain.params import ChainParams
from trionode.node.config import (
    ConfigError,
    NodeConfig,
    default_outbound_target,
    default_workers,
    format_hostport,
    load_config,
    parse_hostport,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def load_text(tmp_path: Path, text: str, **overrides: Any) -> NodeConfig:
    return load_config(write(tmp_path, text), overrides)


# --- defaults ------------------------------------------------------------------------------


def test_defaults_without_a_file() -> None:
    config = load_config(None)
    assert config.config_path is None
    assert config.data_dir == Path("./data")
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 5001)
    assert config.listen == "127.0.0.1:5001"
    assert config.peers == ()
    assert config.max_peers == 10
    assert config.discover is True
    assert config.heartbeat_interval == 30.0
    assert config.peer_timeout == 300.0
    assert config.sync_interval == 60.0
    assert config.ban_time == 86400.0
    assert config.outbound_target == 8
    assert config.chain == ChainParams(difficulty=2, mining_reward=50 * COIN)
    assert config.chain.retarget_interval == 0
    assert config.chain.target_block_time == 60
    assert config.mining_enabled is False
    assert config.mining_address == ""
    assert config.mining_workers == default_workers() >= 1
    assert config.log_level == "info"
    assert config.log_file is None


def test_empty_file_is_all_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    assert load_config(path) == NodeConfig(config_path=path)
    assert load_config(None) == NodeConfig()


def test_default_toml_matches_the_defaults() -> None:
    path = CONFIGS / "default.toml"
    assert load_config(path) == NodeConfig(config_path=path)


def test_default_toml_shows_every_key() -> None:
    text = (CONFIGS / "default.toml").read_text()
    for key in ["data_dir", "listen", "peers", "max_peers", "discover", "heartbeat_interval"]:
        assert f"\n{key} = " in text
    for key in ["peer_timeout", "sync_interval", "ban_time", "difficulty", "mining_reward"]:
        assert f"\n{key} = " in text
    for key in ["retarget_interval", "target_block_time", "enabled", "address", "level", "file"]:
        assert f"\n{key} = " in text
    for key in ["outbound_target", "workers"]:  # defaults computed at run time
        assert f"\n# {key} = " in text


@pytest.mark.parametrize(("max_peers", "expected"), [(1, 1), (2, 1), (3, 2), (9, 8), (10, 8), (50, 8)])
def test_outbound_target_default_follows_max_peers(tmp_path: Path, max_peers: int, expected: int) -> None:
    assert default_outbound_target(max_peers) == expected
    config = load_text(tmp_path, f"[p2p]\nmax_peers = {max_peers}\n")
    assert config.outbound_target == expected


# --- every key read from a file ------------------------------------------------------------

FULL = """
[node]
data_dir = "/srv/trionode"
[p2p]
listen = "[::]:0"
peers = ["Example.COM:6000", "10.0.0.2:5002", "[2001:DB8::1]:5003", "example.com:6000"]
max_peers = 4
discover = false
heartbeat_interval = 0.5
peer_timeout = 10
sync_interval = 2.5
ban_time = 60
outbound_target = 3
[chain]
difficulty = 0
mining_reward = "12.5"
retarget_interval = 10
target_block_time = 5
[mining]
enabled = true
address = "ABCDEF0123456789abcdef0123456789ABCDEF01"
workers = 3
[log]
level = "DEBUG"
file = "logs/node.jsonl"
"""


def test_every_key_from_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    config = load_config(path)
    assert config == NodeConfig(
        config_path=path,
        data_dir=Path("/srv/trionode"),
        listen_host="::",
        listen_port=0,
        peers=(("example.com", 6000), ("10.0.0.2", 5002), ("2001:db8::1", 5003)),
        max_peers=4,
        discover=False,
        heartbeat_interval=0.5,
        peer_timeout=10.0,
        sync_interval=2.5,
        ban_time=60.0,
        outbound_target=3,
        chain=ChainParams(
            difficulty=0, mining_reward=1_250_000_000, retarget_interval=10, target_block_time=5
        ),
        mining_enabled=True,
        mining_address="abcdef0123456789abcdef0123456789abcdef01",
        mining_workers=3,
        log_level="debug",
        log_file=Path("logs/node.jsonl"),
    )
    assert config.listen == "[::]:0"
    assert config.listen_from == f"p2p.listen in {path}"


def test_where_the_listen_address_came_from(tmp_path: Path) -> None:
    """A failure to listen names the setting to change (the CLI appends it)."""
    path = write(tmp_path, '[p2p]\nlisten = "127.0.0.1:6001"\n')
    assert load_config(path).listen_from == f"p2p.listen in {path}"
    assert load_config(path, {"listen": "127.0.0.1:6002"}).listen_from == "--listen"
    assert load_config(write(tmp_path, "[p2p]\nmax_peers = 3\n")).listen_from == ""
    assert load_config(None).listen_from == ""


@pytest.mark.parametrize(("max_peers", "highest"), [(1, 1), (2, 1), (3, 2), (10, 9)])
def test_outbound_target_leaves_inbound_room(tmp_path: Path, max_peers: int, highest: int) -> None:
    """Fewer than max_peers (1 when max_peers is 1): outbound dials cannot take every slot."""
    config = load_text(tmp_path, f"[p2p]\nmax_peers = {max_peers}\noutbound_target = {highest}\n")
    assert config.outbound_target == highest
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, f"[p2p]\nmax_peers = {max_peers}\noutbound_target = {highest + 1}\n")
    assert info.value.key == "p2p.outbound_target"
    assert f"expected an integer 1..{highest} " in info.value.problem


def test_relative_and_home_paths(tmp_path: Path) -> None:
    config = load_text(tmp_path, '[node]\ndata_dir = "~/chain"\n[log]\nfile = "x.log"\n')
    assert config.data_dir == Path.home() / "chain"
    assert config.log_file == Path("x.log")  # relative to the working directory, not the file
    assert load_text(tmp_path, '[node]\ndata_dir = "data/n1"\n').data_dir == Path("data/n1")


@pytest.mark.parametrize(
    ("toml", "units"),
    [
        ("50", 50 * COIN),
        ("12.5", 1_250_000_000),
        ('"12.5"', 1_250_000_000),
        ("0.00000001", 1),
        ('"7"', 7 * COIN),
    ],
)
def test_mining_reward_forms(tmp_path: Path, toml: str, units: int) -> None:
    assert load_text(tmp_path, f"[chain]\nmining_reward = {toml}\n").chain.mining_reward == units


@given(st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(10**6), places=8))
def test_mining_reward_exact_as_float_and_string(
    tmp_path_factory: pytest.TempPathFactory, value: Decimal
) -> None:
    tmp_path = tmp_path_factory.mktemp("reward")
    text = f"{value:f}"
    expected = int(value * COIN)
    assert load_text(tmp_path, f"[chain]\nmining_reward = {text}\n").chain.mining_reward == expected
    assert load_text(tmp_path, f'[chain]\nmining_reward = "{text}"\n').chain.mining_reward == expected


# --- overrides -----------------------------------------------------------------------------


def test_overrides_beat_the_file(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        '[node]\ndata_dir = "a"\n[p2p]\nlisten = "127.0.0.1:5001"\npeers = ["127.0.0.1:5002"]\n[log]\nlevel = "info"\n',
        data_dir="b",
        listen="0.0.0.0:6001",
        peers=["127.0.0.1:5003", "127.0.0.1:5002", "127.0.0.1:5003"],
        log_level="warning",
    )
    assert config.data_dir == Path("b")
    assert (config.listen_host, config.listen_port) == ("0.0.0.0", 6001)
    assert config.peers == (("127.0.0.1", 5002), ("127.0.0.1", 5003))
    assert config.log_level == "warning"


def test_overrides_without_a_file() -> None:
    config = load_config(None, {"data_dir": Path("/tmp/x"), "peers": ["[::1]:5002"], "listen": None})
    assert config.data_dir == Path("/tmp/x")
    assert config.peers == (("::1", 5002),)
    assert config.listen == "127.0.0.1:5001"


def test_absent_flags_change_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    flags = {"data_dir": None, "listen": None, "peers": None, "log_level": None}
    assert load_config(path, flags) == load_config(path)
    assert load_config(path, {"peers": []}) == load_config(path)


def test_unknown_override_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown override 'max_peers'"):
        load_config(None, {"max_peers": 3})


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            {"listen": "nowhere"},
            'command line: --listen: expected HOST:PORT, got "nowhere" (no ":PORT")',
        ),
        (
            {"listen": "127.0.0.1:99999"},
            'command line: --listen: expected HOST:PORT, got "127.0.0.1:99999" (port must be 0..65535)',
        ),
        (
            {"peers": ["127.0.0.1:5002", "h:0"]},
            'command line: --peer: expected HOST:PORT, got "h:0" (port must be 1..65535)',
        ),
        (
            {"log_level": "loud"},
            'command line: --log-level: expected one of debug, info, warning, error, critical, got "loud"',
        ),
        ({"data_dir": ""}, 'command line: --data-dir: expected a directory path, got ""'),
    ],
)
def test_override_errors(flags: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, flags)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


# --- the shipped three-node network ----------------------------------------------------------


def test_three_node_network() -> None:
    configs = [load_config(CONFIGS / f"node{i}.toml") for i in (1, 2, 3)]
    ports = {5001, 5002, 5003}
    for i, config in enumerate(configs, start=1):
        assert config.data_dir == Path(f"data/node{i}")
        assert (config.listen_host, config.listen_port) == ("127.0.0.1", 5000 + i)
        assert set(config.peers) == {("127.0.0.1", port) for port in ports - {5000 + i}}
        assert config.chain == configs[0].chain
    assert len({config.chain.network for config in configs}) == 1


def test_shipped_files_have_a_comment_for_each_key() -> None:
    for name in ["node1", "node2", "node3", "default"]:
        lines = (CONFIGS / f"{name}.toml").read_text().splitlines()
        for index, line in enumerate(lines):
            if "=" in line and not line.startswith("#"):
                assert lines[index - 1].startswith("#"), f"{name}.toml: {line}"


# --- errors: one line, file, key, problem -------------------------------------------------------

ERRORS = [
    ('[p2p]\nmax_peers = "ten"', "p2p.max_peers", 'expected an integer >= 1, got "ten"'),
    ("[p2p]\nmax_peers = true", "p2p.max_peers", "expected an integer >= 1, got true"),
    ("[p2p]\nmax_peers = 0", "p2p.max_peers", "expected an integer >= 1, got 0"),
    ("[p2p]\nmax_peers = 10.0", "p2p.max_peers", "expected an integer >= 1, got 10.0"),
    ('[p2p]\nlisten = "localhost"', "p2p.listen", 'got "localhost" (no ":PORT")'),
    ('[p2p]\nlisten = "::1:5001"', "p2p.listen", "needs brackets"),
    ('[p2p]\nlisten = "1.2.3.4:65536"', "p2p.listen", "port must be 0..65535"),
    ('[p2p]\nlisten = "1.2.3.999:1"', "p2p.listen", "not an IPv4 address"),
    ('[p2p]\nlisten = "bad!host:1"', "p2p.listen", "not a host name"),
    ('[p2p]\nlisten = "[::g]:1"', "p2p.listen", "not an IPv6 address"),
    ("[p2p]\nlisten = 5001", "p2p.listen", "expected HOST:PORT with a port 0..65535, got 5001"),
    (
        '[p2p]\npeers = ["127.0.0.1:5002", "127.0.0.1:0"]',
        "p2p.peers[1]",
        'got "127.0.0.1:0" (port must be 1..65535)',
    ),
    ("[p2p]\npeers = [5002]", "p2p.peers[0]", "expected HOST:PORT with a port 1..65535, got 5002"),
    ('[p2p]\npeers = "127.0.0.1:5002"', "p2p.peers", 'expected a list of "HOST:PORT" strings'),
    ('[p2p]\ndiscover = "yes"', "p2p.discover", 'expected true or false, got "yes"'),
    ("[p2p]\nheartbeat_interval = -1", "p2p.heartbeat_interval", "expected a number of seconds > 0, got -1"),
    ("[p2p]\nheartbeat_interval = inf", "p2p.heartbeat_interval", "got inf"),
    ("[p2p]\nheartbeat_interval = nan", "p2p.heartbeat_interval", "got nan"),
    ('[p2p]\nheartbeat_interval = "30"', "p2p.heartbeat_interval", 'got "30"'),
    ("[p2p]\npeer_timeout = 0", "p2p.peer_timeout", "expected a number of seconds > 0, got 0"),
    ("[p2p]\nsync_interval = false", "p2p.sync_interval", "got false"),
    ("[p2p]\nban_time = -5.5", "p2p.ban_time", "got -5.5"),
    (
        "[p2p]\noutbound_target = 11",
        "p2p.outbound_target",
        "expected an integer 1..9 (fewer than p2p.max_peers = 10, so that inbound peers have room), got 11",
    ),
    ("[p2p]\nmax_peers = 4\noutbound_target = 4", "p2p.outbound_target", "expected an integer 1..3 "),
    ("[p2p]\nmax_peers = 1\noutbound_target = 2", "p2p.outbound_target", "1..1 (p2p.max_peers = 1)"),
    ("[p2p]\nmax_peers = 3\noutbound_target = 0", "p2p.outbound_target", "expected an integer 1..2"),
    (
        '[p2p]\nlisten = "127.0.0.1:99999"',
        "p2p.listen",
        'expected HOST:PORT, got "127.0.0.1:99999" (port must be 0..65535)',
    ),
    ("[chain]\ndifficulty = 64", "chain.difficulty", "expected an integer 0..63, got 64"),
    ("[chain]\ndifficulty = -1", "chain.difficulty", "got -1"),
    ("[chain]\ndifficulty = 2.5", "chain.difficulty", "got 2.5"),
    (
        "[chain]\nmining_reward = 0",
        "chain.mining_reward",
        "expected a number of coins > 0 with at most 8 decimals, got 0",
    ),
    ("[chain]\nmining_reward = -5", "chain.mining_reward", "got -5"),
    ('[chain]\nmining_reward = "abc"', "chain.mining_reward", "not a number"),
    ('[chain]\nmining_reward = "0.000000001"', "chain.mining_reward", "more than 8 decimals"),
    ("[chain]\nmining_reward = 1e-9", "chain.mining_reward", "more than 8 decimals"),
    ("[chain]\nmining_reward = true", "chain.mining_reward", "got true"),
    ("[chain]\nmining_reward = nan", "chain.mining_reward", "got nan"),
    ("[chain]\nmining_reward = 1e30", "chain.mining_reward", "out of range"),
    (
        "[chain]\nretarget_interval = 1",
        "chain.retarget_interval",
        "expected 0 (off) or an integer >= 2, got 1",
    ),
    ("[chain]\nretarget_interval = -2", "chain.retarget_interval", "got -2"),
    ("[chain]\ntarget_block_time = 0", "chain.target_block_time", "expected an integer >= 1, got 0"),
    ("[chain]\ntarget_block_time = 1.5", "chain.target_block_time", "got 1.5"),
    ("[mining]\nenabled = 1", "mining.enabled", "expected true or false, got 1"),
    (
        '[mining]\naddress = "bad name!"',
        "mining.address",
        'a 40-hex-character address, or "", got "bad name!"',
    ),
    ("[mining]\naddress = 5", "mining.address", "got 5"),
    ("[mining]\nworkers = 0", "mining.workers", "expected an integer >= 1, got 0"),
    (
        '[log]\nlevel = "verbose"',
        "log.level",
        'expected one of debug, info, warning, error, critical, got "verbose"',
    ),
    ("[log]\nfile = 5", "log.file", 'expected a file path, or "" for none, got 5'),
    ('[node]\ndata_dir = ""', "node.data_dir", 'expected a directory path, got ""'),
    ("[node]\ndata_dir = 2024-01-01", "node.data_dir", 'got "2024-01-01"'),
    ("[foo]\nx = 1", "foo", "unknown section (known: node, p2p, chain, mining, log)"),
    ("[p2p]\nmaxpeers = 3", "p2p.maxpeers", "unknown key (did you mean max_peers?)"),
    ("[log]\nzzz = 3", "log.zzz", "unknown key (known: level, file)"),
    ("p2p = 5", "p2p", "expected a table [p2p], got 5"),
    ("[p2p]\nlisten = [1, 2, 3]", "p2p.listen", "got [1, 2, 3]"),
]


@pytest.mark.parametrize(("toml", "key", "problem"), ERRORS)
def test_errors_name_file_and_key(tmp_path: Path, toml: str, key: str, problem: str) -> None:
    path = write(tmp_path, toml + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: ")
    assert problem in message
    assert "\n" not in message
    assert (info.value.source, info.value.key) == (str(path), key)


def test_example_message_from_the_brief(tmp_path: Path) -> None:
    path = tmp_path / "configs" / "node1.toml"
    path.parent.mkdir()
    path.write_text('[p2p]\nmax_peers = "ten"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f'{path}: p2p.max_peers: expected an integer >= 1, got "ten"'


def test_long_values_are_shortened(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, f'[p2p]\nlisten = "{"x" * 500}"\n')
    assert len(str(info.value)) < 250
    assert '..."' not in str(info.value) and "..." in str(info.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"[p2p\nmax_peers = 1\n", "invalid TOML: "),
        (b"[p2p]\nmax_peers = 1\nmax_peers = 2\n", "invalid TOML: "),
        (b"[p2p]\nlisten = '\xff'\n", "invalid TOML: not UTF-8 text"),
    ],
)
def test_invalid_toml(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: {problem}")
    assert "\n" not in str(info.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.toml")
    assert str(info.value) == f"{tmp_path / 'missing.toml'}: cannot read the file: No such file or directory"
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value) == f"{tmp_path}: cannot read the file: Is a directory"


# --- HOST:PORT ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5001", ("127.0.0.1", 5001)),
        ("localhost:1", ("localhost", 1)),
        ("my_node:5001", ("my_node", 5001)),
        ("Node-1.Example.org:65535", ("node-1.example.org", 65535)),
        ("[::1]:5001", ("::1", 5001)),
        ("[2001:0db8:0000::1]:80", ("2001:db8::1", 80)),
        ("[fe80::1%eth0]:5001", ("fe80::1%eth0", 5001)),
    ],
)
def test_parse_hostport(text: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        ":5001",
        "host",
        "host:",
        "host:x",
        "host:-1",
        "host:+1",
        "host: 1",
        "host:١٢",
        "host:0",
        "host:65536",
        "host:123456",
        "1.2.3.4:00080",  # one spelling per address: no leading zeros
        "::1:5001",
        "[::1]5001",
        "[::1:5001",
        "[1.2.3.4]:1",
        "-host:1",
        "host-:1",
        "a..b:1",
        "trailing.dot.:1",
        "sp ace:1",
        "256.1.1.1:1",
        "01.2.3.4:1",
        "1.2.3:1",
        f"{'a' * 64}.com:1",
        f"{'a.' * 127}a:1",
    ],
)
def test_parse_hostport_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hostport(text)


def test_port_zero_only_for_listening() -> None:
    assert parse_hostport("0.0.0.0:0", allow_port_zero=True) == ("0.0.0.0", 0)
    with pytest.raises(ValueError, match=r"port must be 1\.\.65535"):
        parse_hostport("0.0.0.0:0")


dns_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
dns_names = (
    st.lists(dns_label, min_size=1, max_size=4)
    .map(".".join)
    .filter(lambda name: not name.split(".")[-1].isdecimal())  # a numeric last label is an IPv4
)
hosts = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    dns_names,
)


@given(hosts, st.integers(1, 65535))
def test_hostport_round_trip(host: str, port: int) -> None:
    text = format_hostport(host, port)
    assert parse_hostport(text) == (host, port)
    assert format_hostport(*parse_hostport(text)) == text


@given(st.text(max_size=30))
def test_parse_hostport_never_crashes(text: str) -> None:
    try:
        host, port = parse_hostport(text, allow_port_zero=True)
    except ValueError:
        return
    assert 0 <= port <= 65535 and host
    assert not math.isnan(port)
