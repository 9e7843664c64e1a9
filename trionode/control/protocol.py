"""Control frames: the wire's framing and msgpack limits, with a request/response body.

Request ``{"verb": str, "args": map}``; response ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": str}`` (one line, shown to the user as is).
"""

from typing import Any, Final

from trionode.wire.codec import pack
from trionode.wire.framing import encode_frame

SOCKET_NAME: Final = "control.sock"
# The data dir's lock file, flock-held by the running node and released as the last step of
# its shutdown: `trionode stop` waits for it, so that `stop && run` finds the data dir free.
LOCK_NAME: Final = "LOCK"


class ControlError(Exception):
    """An expected failure of a verb (unknown wallet, balance too low): one line, exit 1."""


# msgpack integers stop at 64 bits, but cumulative work (ours, or any peer's claim: up to
# 2**256) does not: such an int travels as {BIG_INT: "decimal"} and the client restores it.
BIG_INT: Final = "__int__"
_INT_RANGE: Final = range(-(2**63), 2**64)


def to_wire(value: Any) -> Any:
    """``value`` with every int msgpack cannot carry replaced by ``{BIG_INT: str}``."""
    if type(value) is int:
        return value if value in _INT_RANGE else {BIG_INT: str(value)}
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    return value


def from_wire(value: Any) -> Any:
    """The inverse of ``to_wire``."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get(BIG_INT), str):
            return int(value[BIG_INT])
        return {k: from_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_wire(v) for v in value]
    return value


def encode(body: dict[str, Any]) -> bytes:
    return encode_frame(pack(to_wire(body)))
