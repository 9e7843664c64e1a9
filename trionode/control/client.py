"""The CLI side of the control socket: plain blocking sockets, no trio needed."""

import errno
import socket
from pathlib import Path
from typing import Any

from trionode.control.protocol import SOCKET_NAME, ControlError, encode, from_wire
from trionode.wire.codec import unpack_map
from trionode.wire.errors import ProtocolError
from trionode.wire.framing import FrameDecoder


class NodeNotRunning(Exception):
    """No node answers on this data dir's control socket."""


class ControlClient:
    def __init__(self, data_dir: Path, timeout: float | None = None) -> None:
        self.path = data_dir / SOCKET_NAME
        self.data_dir = data_dir
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(self.path))
        except OSError as exc:
            self._sock.close()
            if exc.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK):
                raise NodeNotRunning(f"no node is running on data dir {data_dir}") from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise NodeNotRunning(
                    f"{self.path}: permission denied (the node belongs to another user)"
                ) from None
            raise NodeNotRunning(f"{self.path}: cannot connect: {exc.strerror or exc}") from None
        self._decoder = FrameDecoder()
        self._pending: list[bytes] = []

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "ControlClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, verb: str, **args: Any) -> Any:
        """Run a verb; return its result or raise ``ControlError`` with the node's message."""
        try:
            self._sock.sendall(encode({"verb": verb, "args": args}))
            while not self._pending:
                data = self._sock.recv(1 << 20)
                if not data:
                    raise ControlError("the node closed the control connection")
                self._pending.extend(self._decoder.feed(data))
        except (ConnectionError, BrokenPipeError) as exc:
            raise ControlError(f"control connection lost: {exc}") from None
        except ProtocolError as exc:
            raise ControlError(f"bad reply from the node: {exc}") from None
        reply = unpack_map(self._pending.pop(0))
        if not reply.get("ok"):
            raise ControlError(str(reply.get("error", "unknown error")))
        return from_wire(reply.get("result"))


def call(data_dir: Path, verb: str, **args: Any) -> Any:
    with ControlClient(data_dir) as client:
        return client.call(verb, **args)
