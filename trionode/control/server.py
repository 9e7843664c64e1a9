"""Serves control verbs on ``<data_dir>/control.sock`` (mode 0600: the owner only).

The socket is bound under a temporary name, restricted to 0600, then renamed into place, so
there is no moment when another user could connect. Nothing on the P2P port answers control.
"""

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import trio

from trionode.control.protocol import SOCKET_NAME, ControlError, encode
from trionode.control.verbs import VERBS
from trionode.wire.codec import unpack_map
from trionode.wire.errors import ProtocolError
from trionode.wire.framing import FrameDecoder

if TYPE_CHECKING:
    from trionode.node.app import Node

# An idle control client is dropped after this long.
IDLE_TIMEOUT: Final = 300.0
# Unix socket paths are limited to 108 bytes on Linux.
MAX_SOCKET_PATH: Final = 107


def _temp_socket(path: Path) -> Path:
    """Where the socket is bound before it is renamed into place (so it appears at 0600)."""
    return path.with_name(f".{SOCKET_NAME}.{os.getpid()}")


def socket_path_problem(data_dir: Path) -> str | None:
    """Why a node in ``data_dir`` could not open its control socket, or None."""
    longest = _temp_socket(data_dir.absolute() / SOCKET_NAME)
    if len(os.fsencode(longest)) > MAX_SOCKET_PATH:
        return (
            f"{data_dir.absolute()}: the data dir path is too long for the control socket "
            f"(Unix socket paths are limited to {MAX_SOCKET_PATH} bytes); use a shorter data_dir"
        )
    return None


async def serve_control(
    node: "Node", *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the control verbs on ``<data_dir>/control.sock`` (``socket_path_problem`` first)."""
    path = node.data_dir / SOCKET_NAME
    path.unlink(missing_ok=True)  # a stale socket: the data dir LOCK says no node owns it
    temp = _temp_socket(path)
    temp.unlink(missing_ok=True)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(str(temp.absolute()))
    os.chmod(temp, 0o600)
    os.rename(temp, path)
    sock.listen(16)
    listener = trio.SocketListener(sock)
    task_status.started()

    async def handle(stream: trio.abc.Stream) -> None:
        try:
            await _serve_client(node, stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, ProtocolError):
            pass
        finally:
            await stream.aclose()

    await trio.serve_listeners(handle, [listener])


async def _serve_client(node: "Node", stream: trio.abc.Stream) -> None:
    decoder = FrameDecoder()
    early: list[bytes] = []  # bytes that arrived while a verb ran (a pipelined request)
    while True:
        if early:
            data = early.pop()
        else:
            with trio.fail_after(IDLE_TIMEOUT):
                data = bytes(await stream.receive_some(65536))
        if not data:
            return
        for body in decoder.feed(data):
            request = unpack_map(body)
            reply = await _dispatch_unless_hung_up(node, request, stream, early)
            if reply is None:
                return  # the client left (Ctrl+C on `trionode mine`): its verb was cancelled
            try:
                data = encode(reply)
            except (OverflowError, ValueError, TypeError) as exc:  # a bug, not the node's end
                node.log.error("control_failed", verb=request.get("verb"), exc_info=exc)
                data = encode({"ok": False, "error": f"internal error: cannot encode the reply: {exc}"})
            await stream.send_all(data)
            if request.get("verb") == "stop":
                node.stop()


async def _dispatch_unless_hung_up(
    node: "Node", request: dict[Any, Any], stream: trio.abc.Stream, early: list[bytes]
) -> dict[str, Any] | None:
    """Run the verb, cancelling it if the client closes first (None then): a ``mine`` or
    ``sync`` nobody waits for any more stops instead of mining on for no one."""
    reply: dict[str, Any] | None = None

    async def run(cancel: trio.CancelScope) -> None:
        nonlocal reply
        reply = await _dispatch(node, request)
        cancel.cancel()

    async def watch(cancel: trio.CancelScope) -> None:
        try:
            data = await stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if data:
            early.append(bytes(data))  # not a hang-up: keep it for the next request, stop watching
            return
        cancel.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, nursery.cancel_scope)
        nursery.start_soon(watch, nursery.cancel_scope)
    return reply


async def _dispatch(node: "Node", request: dict[Any, Any]) -> dict[str, Any]:
    verb = request.get("verb")
    args = request.get("args") or {}
    handler = VERBS.get(verb) if isinstance(verb, str) else None
    if handler is None or not isinstance(args, dict):
        return {"ok": False, "error": f"unknown control verb {verb!r}"}
    try:
        return {"ok": True, "result": await handler(node, args)}
    except ControlError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:  # a bug must not take the node down through its control socket
        node.log.error("control_failed", verb=verb, exc_info=exc)
        return {"ok": False, "error": f"internal error in {verb}: {type(exc).__name__}: {exc}"}
