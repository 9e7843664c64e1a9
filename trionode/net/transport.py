"""Transports: how a node listens and dials, supplied from outside the node.

The node never calls ``trio.serve_tcp`` or ``trio.open_tcp_stream`` itself: ``TcpTransport``
does, and the simulator supplies a transport of in-memory streams instead, so the same node
code runs on real sockets or in a deterministic simulated network.
"""

import errno
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from trionode.wire.addresses import format_address as format_address  # re-exported

# A connection handler gets the stream and the remote "host:port" it came from.
Handler = Callable[[trio.abc.Stream, str], Awaitable[None]]


class Transport(Protocol):
    async def listen(
        self,
        host: str,
        port: int,
        handler: Handler,
        handler_nursery: trio.Nursery,
        *,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept connections forever, running ``handler`` for each in ``handler_nursery``;
        report the bound "host:port" through ``task_status``."""

    async def dial(self, host: str, port: int) -> trio.abc.Stream:
        """Open a stream to a listener; raise ``OSError`` when unreachable."""


class ListenError(Exception):
    """The listen address cannot be used (port in use, bad host); the message says which."""


def _remote_of(stream: trio.abc.Stream) -> str:
    sock = getattr(stream, "socket", None)
    try:
        host, port = sock.getpeername()[:2] if sock is not None else ("?", 0)
    except OSError:
        return "?:0"
    return format_address(str(host), int(port))


class TcpTransport:
    """Real TCP. trio's ``SocketStream`` sets ``TCP_NODELAY``: frames leave at once."""

    async def listen(
        self,
        host: str,
        port: int,
        handler: Handler,
        handler_nursery: trio.Nursery,
        *,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            listeners = await trio.open_tcp_listeners(port, host=host or None)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ListenError(
                    f"cannot listen on {format_address(host, port)}: port {port} is in use"
                ) from exc
            raise ListenError(
                f"cannot listen on {format_address(host, port)}: {exc.strerror or exc} "
                "(check [p2p] listen or --listen)"
            ) from exc
        sockname = listeners[0].socket.getsockname()
        bound = format_address(str(sockname[0]), int(sockname[1]))

        async def serve(stream: trio.abc.Stream) -> None:
            await handler(stream, _remote_of(stream))

        # The sockets already listen, so connections arriving now wait in the backlog.
        task_status.started(bound)
        await trio.serve_listeners(serve, listeners, handler_nursery=handler_nursery)

    async def dial(self, host: str, port: int) -> trio.abc.Stream:
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            raise _why(exc) from exc
        stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        return stream


def _why(exc: OSError) -> OSError:
    """trio's "all attempts to connect to H:P failed" with the first attempt's reason as its
    strerror ("Connection refused"): what the CLI and the ``dial_failed`` log line show."""
    group = exc.__cause__
    for inner in group.exceptions if isinstance(group, BaseExceptionGroup) else ():
        if isinstance(inner, OSError) and inner.errno:
            return OSError(inner.errno, os.strerror(inner.errno))
    return exc
