"""The scripted hostile peer: speaks trionode's protocol byte by byte from the outside.

Two drivers over the same encoder (``encoder.py``, which imports nothing of trionode):

- ``Peer``: a blocking TCP socket for real daemons. A reader thread collects everything the
  node sends and, unless told not to, answers its heartbeats (a daemon with a 1 s heartbeat
  drops a silent peer after 3 s). ``read=False`` gives a peer that never reads at all.
- ``TrioPeer``: any trio stream (memory streams under ``MockClock`` for timing tests); it
  reads only when the test awaits it.

Both have ``send_and_ping``: send a message, then a Heartbeat, and wait for its echo. The
node handles one connection's messages in order, so once the echo is back the message has
been processed, and whatever it caused (a relay, a log line, a ban) has happened: no sleeps.
"""

import os
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import trio

from tests.hostile.encoder import FrameReader, Key, Params, heartbeat, hello, hello_proof, message, node_id_of

# Bad inputs sent, by kind; the session writes them into the report (conftest.py).
TALLY: Final[Counter[str]] = Counter()
# Lines the report shows about the run (a fault run's seed, to replay it).
NOTES: Final[list[str]] = []
# How long a test waits for an answer from a daemon before failing.
WAIT: Final = 15.0


class PeerClosed(Exception):
    """The node closed the connection while we waited for something else."""


def count(kind: str, n: int = 1) -> None:
    TALLY[kind] += n


def note(line: str) -> None:
    NOTES.append(line)


def _nonce() -> int:
    return random.getrandbits(63)


def is_echo(env: dict[str, Any], nonce: int) -> bool:
    payload = env.get("payload", {})
    return env.get("type") == "Heartbeat" and payload.get("echo") is True and payload.get("nonce") == nonce


class Peer:
    """A hostile (or honest) peer on a real socket; see the module docstring."""

    def __init__(
        self,
        address: str,
        params: Params,
        *,
        key: Key | None = None,
        node_id: str | None = None,
        auto_echo: bool = True,
        read: bool = True,
        rcvbuf: int | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        """``key`` is the peer's node key (a new one by default) and its node id is the key's,
        unless ``node_id`` claims another one (an impostor, who cannot prove it)."""
        self.params = params
        self.key = key or Key()
        self.node_id = node_id or node_id_of(self.key.public)
        self.challenge = os.urandom(16)
        self.sent_hello: dict[str, Any] = {}
        self.auto_echo = auto_echo
        self.echo_offset = 0  # answer heartbeats with this added to the nonce (0: honestly)
        if sock is None:
            host, port = address.rsplit(":", 1)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(WAIT)
            sock.connect((host.strip("[]"), int(port)))
            sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        local_host, local_port = sock.getsockname()[:2]
        # Our end as the node logs it (``handshake_failed``'s address).
        self.local = f"{local_host}:{local_port}"
        self.inbox: list[dict[str, Any]] = []
        self.closed = False
        self.bytes_sent = 0
        self.height = 0
        self.tip: bytes | None = None
        self.work: int | None = None
        self._send_lock = threading.RLock()
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None
        if read:
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()

    # ------------------------------------------------------------- sending

    def send_raw(self, data: bytes, bad: str | None = None) -> None:
        """Send bytes as they are; ``bad`` names the kind of bad input for the report."""
        if bad is not None:
            count(bad)
        with self._send_lock:
            self.sock.sendall(data)
            self.bytes_sent += len(data)

    def send(self, kind: str, payload: Any, *, sender: str | None = None, bad: str | None = None) -> None:
        if kind == "Hello":
            self.sent_hello = payload  # what our proof will sign
        self.send_raw(message(kind, payload, sender or self.node_id), bad)

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Nothing else is sent meanwhile (no heartbeat echo inside a frame we split)."""
        with self._send_lock:
            yield

    def hello_payload(self, **overrides: Any) -> dict[str, Any]:
        payload = hello(
            self.params,
            self.node_id,
            key=self.key.public,
            challenge=self.challenge,
            height=self.height,
            tip=self.tip,
            work=self.work,
        )
        payload.update(overrides)
        return payload

    def proof_for(self, their_hello: dict[str, Any]) -> dict[str, Any]:
        """Our HelloProof, as the dialler, for the exchange of our last Hello and theirs."""
        return hello_proof(self.key, self.params.network, "dialer", self.sent_hello, their_hello)

    def handshake(self, **overrides: Any) -> dict[str, Any]:
        """Send our Hello; on the node's Hello and HelloProof, send our proof; return its Hello."""
        self.send("Hello", self.hello_payload(**overrides))
        payload: dict[str, Any] = self.expect("Hello")["payload"]
        self.expect("HelloProof")
        self.send("HelloProof", self.proof_for(payload))
        return payload

    def handshake_unread(self) -> dict[str, Any]:
        """The handshake of a peer without a reader thread (one that will stop reading)."""
        assert self._reader is None, "only for Peer(read=False)"
        self.send("Hello", self.hello_payload())
        reader = FrameReader()
        theirs: dict[str, Any] = {}
        self.sock.settimeout(WAIT)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    raise PeerClosed("closed during the handshake")
                for env in reader.feed(data):
                    self.inbox.append(env)
                    if env.get("type") == "Hello":
                        theirs = dict(env["payload"])
                    elif env.get("type") == "HelloProof":
                        self.send("HelloProof", self.proof_for(theirs))
                        return theirs
        finally:
            self.sock.settimeout(None)

    def _heartbeat(self, nonce: int, echo: bool) -> dict[str, Any]:
        return heartbeat(
            self.params, self.node_id, nonce, echo, height=self.height, tip=self.tip, work=self.work
        )

    def ping(self, timeout: float = WAIT) -> float:
        """Heartbeat the node and wait for the echo with our nonce; the round trip in seconds."""
        nonce = _nonce()
        start = time.monotonic()
        self.send("Heartbeat", self._heartbeat(nonce, False))
        self.wait_for(lambda env: is_echo(env, nonce), timeout, f"echo of heartbeat {nonce}")
        return time.monotonic() - start

    def send_and_ping(
        self, kind: str, payload: Any, *, bad: str | None = None, timeout: float = WAIT
    ) -> None:
        self.send(kind, payload, bad=bad)
        self.ping(timeout)

    # ------------------------------------------------------------- receiving

    def _read(self) -> None:
        reader = FrameReader()
        try:
            while True:
                data = self.sock.recv(1 << 20)
                if not data:
                    break
                for env in reader.feed(data):
                    payload = env.get("payload", {})
                    if self.auto_echo and env.get("type") == "Heartbeat" and payload.get("echo") is False:
                        nonce = (payload["nonce"] + self.echo_offset) % 2**64
                        try:
                            self.send("Heartbeat", self._heartbeat(nonce, True))
                        except OSError:
                            pass
                    with self._cond:
                        self.inbox.append(env)
                        self._cond.notify_all()
        except OSError:
            pass
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = WAIT, what: str = "message"
    ) -> dict[str, Any]:
        """The first message received so far (or within ``timeout``) that matches."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for env in self.inbox:
                    if predicate(env):
                        return env
                if self.closed:
                    raise PeerClosed(f"connection closed while waiting for {what}; got {self.summary()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {what} within {timeout} s; got {self.summary()}")
                self._cond.wait(left)

    def expect(self, kind: str, timeout: float = WAIT) -> dict[str, Any]:
        return self.wait_for(lambda env: env.get("type") == kind, timeout, kind)

    def nth(self, kind: str, n: int, timeout: float = WAIT) -> dict[str, Any]:
        """The ``n``-th (from 0) message of ``kind``, waiting for it."""
        self.wait_for(lambda env: len(self.received(kind)) > n, timeout, f"{kind} #{n}")
        return self.received(kind)[n]

    def wait_closed(self, timeout: float = WAIT) -> float:
        """Wait until the node closes the connection; returns how long that took."""
        start = time.monotonic()
        with self._cond:
            if not self._cond.wait_for(lambda: self.closed, timeout):
                raise TimeoutError(f"the node did not close the connection within {timeout} s")
        return time.monotonic() - start

    def received(self, kind: str) -> list[dict[str, Any]]:
        with self._cond:
            return [env for env in self.inbox if env.get("type") == kind]

    def errors(self) -> list[str]:
        """Codes of the Error messages the node sent us."""
        return [env["payload"]["code"] for env in self.received("Error")]

    def summary(self) -> str:
        return ", ".join(str(env.get("type")) for env in self.inbox[-8:]) or "nothing"

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def __enter__(self) -> "Peer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TrioPeer:
    """The same peer over a trio stream; it reads only inside the awaits below."""

    def __init__(
        self, stream: trio.abc.Stream, params: Params, *, key: Key | None = None, node_id: str | None = None
    ) -> None:
        self.stream = stream
        self.params = params
        self.key = key or Key()
        self.node_id = node_id or node_id_of(self.key.public)
        self.auto_echo = True
        self.echo_offset = 0
        self.last_sent = 0.0  # trio time of our last frame
        self.inbox: list[dict[str, Any]] = []
        self.closed = False
        self._reader = FrameReader()
        self._queue: list[dict[str, Any]] = []

    async def send_raw(self, data: bytes, bad: str | None = None) -> None:
        if bad is not None:
            count(bad)
        await self.stream.send_all(data)
        self.last_sent = trio.current_time()

    async def send(
        self, kind: str, payload: Any, *, sender: str | None = None, bad: str | None = None
    ) -> None:
        await self.send_raw(message(kind, payload, sender or self.node_id), bad)

    async def handshake(self, **overrides: Any) -> dict[str, Any]:
        """Hello, then the node's Hello and HelloProof, then our proof; the node's Hello."""
        ours = hello(self.params, self.node_id, key=self.key.public, challenge=os.urandom(16), **overrides)
        await self.send("Hello", ours)
        payload: dict[str, Any] = (await self.expect("Hello"))["payload"]
        await self.expect("HelloProof")
        await self.send("HelloProof", hello_proof(self.key, self.params.network, "dialer", ours, payload))
        return payload

    async def recv(self) -> dict[str, Any] | None:
        """The next message, answering heartbeats on the way if ``auto_echo``; None at EOF."""
        while not self._queue:
            if self.closed:
                return None
            try:
                data = await self.stream.receive_some(1 << 20)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self.closed = True
                return None
            self._queue.extend(self._reader.feed(bytes(data)))
        env = self._queue.pop(0)
        self.inbox.append(env)
        payload = env.get("payload", {})
        if self.auto_echo and env.get("type") == "Heartbeat" and payload.get("echo") is False:
            nonce = (payload["nonce"] + self.echo_offset) % 2**64
            await self.send("Heartbeat", heartbeat(self.params, self.node_id, nonce, True))
        return env

    async def expect(self, kind: str) -> dict[str, Any]:
        while True:
            env = await self.recv()
            if env is None:
                raise PeerClosed(f"connection closed while waiting for {kind}")
            if env.get("type") == kind:
                return env

    async def ping(self) -> None:
        nonce = _nonce()
        await self.send("Heartbeat", heartbeat(self.params, self.node_id, nonce, False))
        while True:
            env = await self.recv()
            if env is None:
                raise PeerClosed(f"connection closed while waiting for the echo of {nonce}")
            if is_echo(env, nonce):
                return

    async def send_and_ping(self, kind: str, payload: Any, *, bad: str | None = None) -> None:
        await self.send(kind, payload, bad=bad)
        await self.ping()

    async def wait_closed(self) -> list[dict[str, Any]]:
        """Read until EOF; returns everything received on the way."""
        got: list[dict[str, Any]] = []
        while (env := await self.recv()) is not None:
            got.append(env)
        return got

    def errors(self) -> list[str]:
        return [env["payload"]["code"] for env in self.inbox if env.get("type") == "Error"]
