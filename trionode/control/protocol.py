"""Control frames: the wire's framing and msgpack limits, with a request/response body.

Request ``{"verb": str, "args": map}``; response ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": str}`` (one line, shown to the user as is).
"""

from typing import Any, Final

from trionode.wire.codec import pack
from trionode.wire.framing import encode_frame

SOCKET_NAME: Final = "control.sock"


class ControlError(Exception):
    """An expected failure of a verb (unknown wallet, balance too low): one line, exit 1."""


def encode(body: dict[str, Any]) -> bytes:
    return encode_frame(pack(body))
