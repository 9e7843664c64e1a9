"""Real ``trionode run`` subprocesses on 127.0.0.1 with temporary data dirs.

Each daemon's stdout (JSON lines) is read by a thread into a list; tests wait for a log line
with a timeout instead of sleeping.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from trionode.control.client import NodeNotRunning
from trionode.control.client import call as control_call

PYTHON = sys.executable
CHAIN = "[chain]\ndifficulty = 1\nmining_reward = 50\n"


def cli(
    *args: str, data_dir: Path | None = None, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a CLI verb; ``--data-dir`` goes first when given."""
    cmd = [PYTHON, "-m", "trionode"]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    result = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def cli_json(*args: str, data_dir: Path) -> Any:
    return json.loads(cli(*args, "--json", data_dir=data_dir).stdout)


# Quick heartbeats and sync rounds, so tests see them within seconds; ``timings=""`` leaves
# the node's defaults (30 s and 60 s).
TEST_TIMINGS: Final = "heartbeat_interval = 1\nsync_interval = 5"


class Daemon:
    def __init__(
        self,
        name: str,
        root: Path,
        peers: tuple[str, ...] = (),
        extra: str = "",
        port: int = 0,
        run_args: tuple[str, ...] = (),
        timings: str = TEST_TIMINGS,
    ) -> None:
        self.name = name
        self.run_args = run_args  # more `trionode run` flags (e.g. --peer)
        self.data_dir = root / name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config = root / f"{name}.toml"
        peer_list = ", ".join(f'"{p}"' for p in peers)
        self.config.write_text(
            f'[node]\ndata_dir = "{self.data_dir}"\n\n'
            f'[p2p]\nlisten = "127.0.0.1:{port}"\npeers = [{peer_list}]\n'
            f"{timings}\n{extra}\n\n{CHAIN}"
        )
        self.events: list[dict[str, Any]] = []
        self.by_event: dict[str, list[dict[str, Any]]] = {}  # the same events, by name
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self._changed = threading.Condition()
        self.address = ""

    @classmethod
    def from_config(cls, name: str, root: Path, text: str) -> "Daemon":
        """A daemon run from the given config text instead of a generated one."""
        daemon = cls(name, root)
        daemon.config.write_text(text)
        daemon.data_dir = Path(tomllib.loads(text)["node"]["data_dir"])
        return daemon

    def start(self, wait: bool = True, log_level: str = "debug") -> "Daemon":
        """Run the daemon; ``log_level`` overrides the config's (benchmarks log less than tests)."""
        with self._changed:
            self.events.clear()
            self.by_event.clear()
        self.proc = subprocess.Popen(
            self.command(log_level),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        if wait:
            self.address = self.wait_for("listening")["address"]
        return self

    def command(self, log_level: str) -> list[str]:
        """The ``trionode run`` command line this daemon starts with."""
        return [
            PYTHON,
            "-m",
            "trionode",
            "run",
            "--config",
            str(self.config),
            "--log-level",
            log_level,
            *self.run_args,
        ]

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._changed:
                self.lines.append(line)
                try:
                    event = json.loads(line)
                except ValueError:
                    event = None
                if isinstance(event, dict):
                    self.events.append(event)
                    self.by_event.setdefault(str(event.get("event")), []).append(event)
                self._changed.notify_all()

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    def matching(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        with self._changed:
            return [e for e in self.by_event.get(event, ()) if all(e.get(k) == v for k, v in fields.items())]

    def wait_for(self, event: str, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
        found: dict[str, Any] = self.wait_until(
            lambda: next(iter(self.matching(event, **fields)), None), timeout, f"{event} {fields}"
        )
        return found

    def wait_until(self, probe: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                self._changed.release()
                try:
                    value = probe()
                finally:
                    self._changed.acquire()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "".join(self.lines[-20:])
                    raise AssertionError(f"{self.name}: no {what} within {timeout} s; last output:\n{tail}")
                self._changed.wait(min(left, 0.5))

    def call(self, verb: str, **args: Any) -> Any:
        """A control verb straight over the control socket (no CLI process to start).

        The socket opens just after the ``listening`` line: a running daemon gets a moment."""
        deadline = time.monotonic() + 10
        while True:
            try:
                return control_call(self.data_dir, verb, **args)
            except NodeNotRunning:
                if self.proc is None or self.proc.poll() is not None or time.monotonic() > deadline:
                    raise
            time.sleep(0.02)

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = cli_json("status", data_dir=self.data_dir)
        return result

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def free_ports(count: int) -> list[int]:
    """Loopback ports that are free now, for configs that name fixed ports."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def poll(probe: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Wait for a condition read through the CLI (no log line to wait on); fails loudly."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.1)


def hard(daemon: Daemon) -> Daemon:
    """``daemon`` on a network of difficulty 8: a block takes billions of hashes, so mining
    there goes on until it is stopped."""
    daemon.config.write_text(daemon.config.read_text().replace(CHAIN, CHAIN.replace("= 1", "= 8", 1)))
    return daemon
