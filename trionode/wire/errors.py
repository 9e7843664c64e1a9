"""The one exception for bad peer input, and the codes peers send each other.

``ProtocolError.code`` says what was wrong and ``field`` where (``payload.block.txs[3].amount``);
a connection that raises one is closed. The ``Error`` message codes are what a node tells its
peer before closing; protocol.md lists both sets.
"""

from typing import Final

# ProtocolError codes: what was wrong with a frame, an envelope or a payload.
FRAME_TOO_LARGE: Final = "frame_too_large"
EMPTY_FRAME: Final = "empty_frame"
BAD_MSGPACK: Final = "bad_msgpack"
TRAILING_DATA: Final = "trailing_data"
TOO_MANY_OBJECTS: Final = "too_many_objects"
NOT_A_MAP: Final = "not_a_map"
MISSING_FIELD: Final = "missing_field"
BAD_FIELD: Final = "bad_field"
DUPLICATE_HELLO: Final = "duplicate_hello"
PROTOCOL_ERROR_CODES: Final = frozenset(
    {
        FRAME_TOO_LARGE,
        EMPTY_FRAME,
        BAD_MSGPACK,
        TRAILING_DATA,
        TOO_MANY_OBJECTS,
        NOT_A_MAP,
        MISSING_FIELD,
        BAD_FIELD,
        DUPLICATE_HELLO,
    }
)

# Error message codes (the ``code`` of an ``Error`` payload) that trionode sends.
WRONG_NETWORK: Final = "wrong_network"
UNSUPPORTED_VERSION: Final = "unsupported_version"
SELF_CONNECTION: Final = "self_connection"
DUPLICATE_CONNECTION: Final = "duplicate_connection"
TOO_MANY_PEERS: Final = "too_many_peers"
PROTOCOL_ERROR: Final = "protocol_error"
HANDSHAKE_TIMEOUT_CODE: Final = "handshake_timeout"
BANNED: Final = "banned"
SHUTDOWN: Final = "shutdown"
MISBEHAVIOUR: Final = "misbehaviour"
TIMEOUT: Final = "timeout"
BAD_PROOF: Final = "bad_proof"  # the peer did not prove the node id it claims
DISCONNECT: Final = "disconnect"  # the operator ran `trionode disconnect`
ERROR_CODES: Final = frozenset(
    {
        WRONG_NETWORK,
        UNSUPPORTED_VERSION,
        SELF_CONNECTION,
        DUPLICATE_CONNECTION,
        TOO_MANY_PEERS,
        PROTOCOL_ERROR,
        HANDSHAKE_TIMEOUT_CODE,
        BANNED,
        SHUTDOWN,
        MISBEHAVIOUR,
        TIMEOUT,
        BAD_PROOF,
        DISCONNECT,
    }
)


class ProtocolError(Exception):
    """A peer sent something the protocol forbids; the connection must be closed.

    ``field`` is a dotted path into the envelope (``""`` for the frame or body as a whole).
    """

    def __init__(self, code: str, field: str, detail: str) -> None:
        super().__init__(f"{code} at {field}: {detail}" if field else f"{code}: {detail}")
        self.code = code
        self.field = field
        self.detail = detail


class MessageTooLarge(ValueError):
    """We tried to send a frame over the limit: a local bug or a response that must be cut."""
