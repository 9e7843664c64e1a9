"""The node's configuration: a TOML file (INTERFACE.md) plus command-line flags, checked up front.

Every key of INTERFACE.md, plus documented extensions (see ``configs/default.toml``):
``[chain] retarget_interval`` and ``target_block_time``, ``[p2p] ban_time`` and
``outbound_target``, ``[mining] workers``. Unknown keys, wrong types and bad values raise
`ConfigError`, whose message is one line: ``FILE: SECTION.KEY: problem`` (``FILE: problem``
for an unreadable file or invalid TOML). Flags override the file; their errors name the flag:
``command line: --listen: problem``.
"""

import difflib
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeVar

from trionode.chain.amounts import DECIMALS, parse_coins
from trionode.chain.params import ChainParams
from trionode.node.logging import LEVELS
from trionode.wallet import is_address_text, is_wallet_name
from trionode.wire.addresses import format_address, parse_address

T = TypeVar("T")

DEFAULT_DATA_DIR: Final = Path("data")
# Loopback: a fresh node is unreachable from other machines until its owner says otherwise
# (``listen = "0.0.0.0:5001"`` or ``"[::]:5001"`` listens on all interfaces).
DEFAULT_LISTEN_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 5001
DEFAULT_MAX_PEERS: Final = 10
# Bitcoin's default of 8 outbound connections: enough paths that one liar cannot isolate us.
DEFAULT_OUTBOUND_TARGET: Final = 8
DEFAULT_HEARTBEAT_INTERVAL: Final = 30.0
DEFAULT_PEER_TIMEOUT: Final = 300.0
DEFAULT_SYNC_INTERVAL: Final = 60.0
# One day: long enough to stop a misbehaving peer, short enough to forgive a fixed bug.
DEFAULT_BAN_TIME: Final = 86400.0
DEFAULT_LOG_LEVEL: Final = "info"
# Difficulty is counted in hex digits of a 256-bit hash (pow.target_for_difficulty).
MAX_DIFFICULTY: Final = 63
MAX_PORT: Final = 65535
# One DNS label (RFC 1123: letters, digits, inner hyphens), plus "_": not in host names, but
# resolvers accept it and container names (``my_node``) use it.
_DNS_LABEL: Final = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
# RFC 1035's limit on a whole name.
_MAX_DNS_NAME: Final = 253
# ASCII digits only: str.isdigit() would accept "²".
_PORT_TEXT: Final = re.compile(r"[0-9]{1,5}")
# A bad value is quoted in the error message; a huge one must not flood the terminal.
_SHOW_LIMIT: Final = 60
_NO_OVERRIDES: Final[Mapping[str, Any]] = MappingProxyType({})
KNOWN_KEYS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "node": ("data_dir",),
        "p2p": (
            "listen",
            "peers",
            "max_peers",
            "discover",
            "heartbeat_interval",
            "peer_timeout",
            "sync_interval",
            "ban_time",
            "outbound_target",
        ),
        "chain": ("difficulty", "mining_reward", "retarget_interval", "target_block_time"),
        "mining": ("enabled", "address", "workers"),
        "log": ("level", "file"),
    }
)
# Command-line flags and the override keys the CLI passes for them.
FLAGS: Final[Mapping[str, str]] = MappingProxyType(
    {"data_dir": "--data-dir", "listen": "--listen", "peers": "--peer", "log_level": "--log-level"}
)


def default_outbound_target(max_peers: int) -> int:
    """8, but leaving at least one slot for inbound peers so that dialling nodes can meet."""
    return max(1, min(DEFAULT_OUTBOUND_TARGET, max_peers - 1))


def max_outbound_target(max_peers: int) -> int:
    """The largest ``outbound_target`` a config file may set: fewer than ``max_peers``.

    A node whose outbound connections may take every slot refuses everyone who dials it once
    its dials succeed; if all nodes did that, none could be reached. With ``max_peers = 1``
    the one slot is both, as the default has it.
    """
    return max(1, max_peers - 1)


def default_workers() -> int:
    """The CPUs this process may run on: one proof-of-work worker process each."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class NodeConfig:
    """Everything a node needs to start; every field has its documented default."""

    config_path: Path | None = None
    data_dir: Path = DEFAULT_DATA_DIR
    listen_host: str = DEFAULT_LISTEN_HOST
    listen_port: int = DEFAULT_PORT  # 0: any free port
    peers: tuple[tuple[str, int], ...] = ()
    max_peers: int = DEFAULT_MAX_PEERS
    discover: bool = True
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    peer_timeout: float = DEFAULT_PEER_TIMEOUT
    sync_interval: float = DEFAULT_SYNC_INTERVAL
    ban_time: float = DEFAULT_BAN_TIME
    outbound_target: int = DEFAULT_OUTBOUND_TARGET  # 1..max_peers (a file: max_outbound_target)
    chain: ChainParams = field(default_factory=ChainParams)
    mining_enabled: bool = False
    mining_address: str = ""  # wallet name or hex address; "" if none configured
    mining_workers: int = field(default_factory=default_workers)
    log_level: str = DEFAULT_LOG_LEVEL
    log_file: Path | None = None
    # Where the listen address was set ("--listen", "p2p.listen in FILE"; "" for the
    # default), so that a failure to listen can point at it.
    listen_from: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.outbound_target <= self.max_peers:
            raise ValueError("outbound_target must be 1..max_peers")

    @property
    def listen(self) -> str:
        """``HOST:PORT`` as configured (``status``'s ``listen`` shows the bound port)."""
        return format_hostport(self.listen_host, self.listen_port)


class ConfigError(Exception):
    """A bad config file or flag; ``str()`` is one line: source, key, problem."""

    def __init__(self, source: str, key: str | None, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = " ".join(problem.split())
        super().__init__(": ".join(part for part in (source, key, self.problem) if part))


def parse_hostport(text: str, *, allow_port_zero: bool = False) -> tuple[str, int]:
    """``HOST:PORT`` as config files and flags write it (``trionode.wire.addresses`` parses).

    Port 0 ("any free port") only with ``allow_port_zero`` (listening); a zone id is allowed
    for a local IPv6 address. ValueError (``AddressError``) with a short reason otherwise.
    """
    return parse_address(text, allow_port_zero=allow_port_zero, allow_zone=True)


format_hostport = format_address


class _Invalid(Exception):
    """A value's problem, before we know which file and key to blame."""

    def __init__(self, expected: str, detail: str | None = None) -> None:
        super().__init__(expected)
        self.expected = expected
        self.detail = detail
        self.index: int | None = None  # set for one bad item of a list
        self.item: Any = None

    def at(self, index: int, item: Any) -> "_Invalid":
        self.index, self.item = index, item
        return self

    def where(self, key: str) -> str:
        return key if self.index is None else f"{key}[{self.index}]"

    def describe(self, value: Any) -> str:
        shown = _show(value if self.index is None else self.item)
        text = f"{self.expected}, got {shown}"
        return f"{text} ({self.detail})" if self.detail else text


def load_config(path: Path | None, overrides: Mapping[str, Any] = _NO_OVERRIDES) -> NodeConfig:
    """The config of ``path`` (defaults if None) with the CLI's ``overrides`` applied.

    ``overrides`` keys are those of `FLAGS`; a None value means "flag not given". ``peers``
    is added to the file's list, without duplicates.
    """
    doc = _read_toml(path) if path is not None else {}
    file = _FileReader(str(path) if path is not None else "defaults", doc)
    max_peers = file.get("p2p", "max_peers", DEFAULT_MAX_PEERS, _int_range(1))
    listen = file.get("p2p", "listen", (DEFAULT_LISTEN_HOST, DEFAULT_PORT), _listen)
    listen_from = f"p2p.listen in {path}" if "listen" in doc.get("p2p", {}) else ""
    no_peers: tuple[tuple[str, int], ...] = ()
    peers = file.get("p2p", "peers", no_peers, _peer_list)
    data_dir = file.get("node", "data_dir", DEFAULT_DATA_DIR, _path)
    log_level = file.get("log", "level", DEFAULT_LOG_LEVEL, _level)
    for key, value in overrides.items():
        if key not in FLAGS:
            raise ValueError(f"unknown override {key!r}")
        if value is None:
            continue
        try:
            if key == "data_dir":
                data_dir = _path(str(value))
            elif key == "listen":
                listen, listen_from = _listen(value), FLAGS[key]
            elif key == "peers":
                peers = _dedup(peers + _peer_list(list(value)))
            else:
                log_level = _level(value)
        except _Invalid as exc:
            raise ConfigError("command line", FLAGS[key], exc.describe(value)) from None
    return NodeConfig(
        config_path=path,
        data_dir=data_dir,
        listen_host=listen[0],
        listen_port=listen[1],
        peers=peers,
        max_peers=max_peers,
        discover=file.get("p2p", "discover", True, _bool),
        heartbeat_interval=file.get("p2p", "heartbeat_interval", DEFAULT_HEARTBEAT_INTERVAL, _seconds),
        peer_timeout=file.get("p2p", "peer_timeout", DEFAULT_PEER_TIMEOUT, _seconds),
        sync_interval=file.get("p2p", "sync_interval", DEFAULT_SYNC_INTERVAL, _seconds),
        ban_time=file.get("p2p", "ban_time", DEFAULT_BAN_TIME, _seconds),
        outbound_target=file.get(
            "p2p",
            "outbound_target",
            default_outbound_target(max_peers),
            _int_range(
                1,
                max_outbound_target(max_peers),
                f"fewer than p2p.max_peers = {max_peers}, so that inbound peers have room"
                if max_peers > 1
                else "p2p.max_peers = 1",
            ),
        ),
        chain=ChainParams(
            difficulty=file.get("chain", "difficulty", 2, _int_range(0, MAX_DIFFICULTY)),
            mining_reward=file.get("chain", "mining_reward", parse_coins(50), _coins),
            retarget_interval=file.get("chain", "retarget_interval", 0, _retarget_interval),
            target_block_time=file.get("chain", "target_block_time", 60, _int_range(1)),
        ),
        mining_enabled=file.get("mining", "enabled", False, _bool),
        mining_address=file.get("mining", "address", "", _reward_address),
        mining_workers=file.get("mining", "workers", None, _int_range(1)) or default_workers(),
        log_level=log_level,
        log_file=file.get("log", "file", None, _optional_path),
        listen_from=listen_from,
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), None, "invalid TOML: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), None, f"invalid TOML: {exc}") from None


class _FileReader:
    """Typed access to a parsed TOML document; rejects unknown sections and keys up front."""

    def __init__(self, source: str, doc: dict[str, Any]) -> None:
        self.source = source
        self.doc = doc
        for section, table in doc.items():
            if section not in KNOWN_KEYS:
                raise ConfigError(source, section, f"unknown section{_suggest(section, KNOWN_KEYS)}")
            if not isinstance(table, dict):
                raise ConfigError(source, section, f"expected a table [{section}], got {_show(table)}")
            for key in table:
                if key not in KNOWN_KEYS[section]:
                    hint = _suggest(key, KNOWN_KEYS[section])
                    raise ConfigError(source, f"{section}.{key}", f"unknown key{hint}")

    def get(self, section: str, key: str, default: T, convert: Callable[[Any], T]) -> T:
        table = self.doc.get(section, {})
        if key not in table:
            return default
        value = table[key]
        try:
            return convert(value)
        except _Invalid as exc:
            raise ConfigError(self.source, exc.where(f"{section}.{key}"), exc.describe(value)) from None


def _suggest(name: str, known: Mapping[str, Any] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return f" (did you mean {close[0]}?)"
    return f" (known: {', '.join(known)})"


def _show(value: Any) -> str:
    """A value as the user wrote it, on one short line."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = repr(value)
    else:
        text = json.dumps(value, default=str)
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 3] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # TOML true is not 1


def _int_range(low: int, high: int | None = None, why: str | None = None) -> Callable[[Any], int]:
    expected = f"an integer >= {low}" if high is None else f"an integer {low}..{high}"
    if why:
        expected += f" ({why})"

    def convert(value: Any) -> int:
        if not _is_int(value) or value < low or (high is not None and value > high):
            raise _Invalid(f"expected {expected}")
        return int(value)

    return convert


def _retarget_interval(value: Any) -> int:
    if not _is_int(value) or value < 0 or value == 1:
        raise _Invalid("expected 0 (off) or an integer >= 2")
    return int(value)


def _seconds(value: Any) -> float:
    if not (_is_int(value) or isinstance(value, float)) or not math.isfinite(value) or value <= 0:
        raise _Invalid("expected a number of seconds > 0")
    return float(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("expected true or false")
    return value


def _coins(value: Any) -> int:
    """Coins as a TOML integer, float or string ("12.5"), exactly in units."""
    expected = f"expected a number of coins > 0 with at most {DECIMALS} decimals"
    if not isinstance(value, int | float | str) or isinstance(value, bool):
        raise _Invalid(expected)
    try:
        # str(float) is its shortest repr: the decimal the user wrote, so 12.5 stays exact.
        units = parse_coins(value)
    except ValueError as exc:
        raise _Invalid(expected, str(exc)) from None
    if units <= 0:
        raise _Invalid(expected)
    return units


def _path(value: Any) -> Path:
    if not isinstance(value, str) or not value:
        raise _Invalid("expected a directory path")
    return Path(value).expanduser()


def _optional_path(value: Any) -> Path | None:
    if not isinstance(value, str):
        raise _Invalid('expected a file path, or "" for none')
    return Path(value).expanduser() if value else None


def _level(value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in LEVELS:
        raise _Invalid(f"expected one of {', '.join(LEVELS)}")
    return value.lower()


def _hostport(value: Any, *, listen: bool) -> tuple[str, int]:
    if not isinstance(value, str):
        raise _Invalid(f"expected HOST:PORT with a port {0 if listen else 1}..{MAX_PORT}")
    try:
        return parse_hostport(value, allow_port_zero=listen)
    except ValueError as exc:
        # The parser's reason says what is wrong (the port range too, when that is it).
        raise _Invalid("expected HOST:PORT", str(exc)) from None


def _listen(value: Any) -> tuple[str, int]:
    return _hostport(value, listen=True)


def _peer_list(value: Any) -> tuple[tuple[str, int], ...]:
    if not isinstance(value, list):
        raise _Invalid('expected a list of "HOST:PORT" strings')
    peers = []
    for index, item in enumerate(value):
        try:
            peers.append(_hostport(item, listen=False))
        except _Invalid as exc:
            raise exc.at(index, item) from None
    return _dedup(tuple(peers))


def _dedup(peers: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    return tuple(dict.fromkeys(peers))


def _reward_address(value: Any) -> str:
    if not isinstance(value, str) or not (value == "" or is_address_text(value) or is_wallet_name(value)):
        raise _Invalid('expected a wallet name, a 40-hex-character address, or ""')
    return value.lower() if is_address_text(value) else value
