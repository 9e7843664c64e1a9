"""Real ``trionode run`` daemons for the hostile suite, with the config each test needs.

Builds on ``tests/integration/daemon.py`` (JSON log lines read by a thread, ``wait_for``),
adding the chain difficulty, mining, fixed ports, extra ``[p2p]`` keys and a command prefix
(``ip netns exec NS``). State is read through the control socket, the way the CLI reads it.
"""

import socket
from pathlib import Path
from typing import Any

from tests.hostile.encoder import COIN, Params
from tests.hostile.peer import Peer
from tests.integration.daemon import Daemon
from trionode.control.client import NodeNotRunning, call
from trionode.control.protocol import ControlError

# Difficulty 1: a block costs 16 hashes on average, so hostile peers mine instantly.
PARAMS = Params(difficulty=1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


class Node(Daemon):
    def __init__(
        self,
        name: str,
        root: Path,
        params: Params,
        *,
        listen: str = "127.0.0.1:0",
        peers: tuple[str, ...] = (),
        p2p: dict[str, Any] | None = None,
        mining: dict[str, Any] | None = None,
        prefix: tuple[str, ...] = (),
        log_level: str = "debug",
    ) -> None:
        super().__init__(name, root)
        self.params = params
        self.prefix = prefix
        self.log_level = log_level
        self.kills = 0
        self.listen = listen
        self.peers = peers
        self.p2p: dict[str, Any] = {"heartbeat_interval": 1, "sync_interval": 5, **(p2p or {})}
        self.mining: dict[str, Any] = dict(mining or {})
        self.log_file = root / f"{name}.log"  # kept for post-mortems of a failed run
        self.write_config()

    def write_config(self) -> None:
        """(Re)write the TOML; a restart picks up changes (``mining`` on or off, say)."""
        lines = [
            "[node]",
            f'data_dir = "{self.data_dir}"',
            "",
            "[p2p]",
            f'listen = "{self.listen}"',
            f"peers = {toml_value(list(self.peers))}",
            *(f"{key} = {toml_value(value)}" for key, value in self.p2p.items()),
            "",
            "[chain]",
            f"difficulty = {self.params.difficulty}",
            f"mining_reward = {self.params.mining_reward // COIN}",
            "",
            "[mining]",
            *(f"{key} = {toml_value(value)}" for key, value in self.mining.items()),
            "",
            "[log]",
            f'file = "{self.log_file}"',
        ]
        self.config.write_text("\n".join(lines) + "\n")

    def command(self, log_level: str) -> list[str]:
        return [*self.prefix, *super().command(log_level)]  # (a prefix: ip netns exec NS)

    def start(self, wait: bool = True, log_level: str | None = None) -> "Node":
        super().start(wait=wait, log_level=log_level or self.log_level)
        if wait:
            # The control socket comes up just after the listener (a stale one, left by a
            # kill -9, is replaced then): wait until it answers.
            self.wait_until(lambda: self._answers() or not self.alive, what="control.sock")
        return self

    def _answers(self) -> bool:
        try:
            self.control("status")
        except (NodeNotRunning, ControlError, OSError):
            return False
        return True

    def kill9(self) -> None:
        """``kill -9``: no goodbye, no flush."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.kills += 1

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def control(self, verb: str, **args: Any) -> Any:
        return call(self.data_dir, verb, **args)

    def snapshot(self) -> tuple[str, int, list[str]]:
        """(tip, height, pending txids): what an attack must leave untouched."""
        status = self.control("status")
        pending = sorted(tx["txid"] for tx in self.control("pending"))
        return status["tip"], status["height"], pending

    def node_id(self) -> str:
        return str(self.control("status")["node_id"])

    def peer(self, **kwargs: Any) -> Peer:
        return Peer(self.address, self.params, **kwargs)

    def wait_gone(self, timeout: float = 15.0) -> int:
        """Wait until the process has exited (after a ``stop`` verb, for example)."""
        assert self.proc is not None
        return self.proc.wait(timeout)
