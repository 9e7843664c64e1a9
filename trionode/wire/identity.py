"""Node identities that can be proven: a node id is derived from an Ed25519 key, and the
handshake makes each side sign its role and the whole exchange, the other side's fresh
challenge included, with it (protocol.md section 5.1).

Without this a node id was only claimed, so a stranger could say "I am your peer X" and, by
the duplicate-connection rule, push the real X out. Now a Hello whose ``node_id`` is not
``node_id_of(key)``, or whose sender cannot sign our challenge with that key, is refused.
"""

import hashlib
from dataclasses import dataclass
from typing import Final

from trionode.chain.encoding import packb
from trionode.chain.keys import KeyPair, verify
from trionode.wire.fields import NODE_ID_BYTES

CHALLENGE_BYTES: Final = 16
# Domain tags: a node id is never an address prefix, and a proof is never a transaction.
NODE_ID_TAG: Final = b"trionode-node-id"
PROOF_TAG: Final = "trionode-hello-v1"
DIALER: Final = "dialer"
LISTENER: Final = "listener"
ROLES: Final = (DIALER, LISTENER)


def node_id_of(public_key: bytes) -> bytes:
    """The node id a public key stands for: SHA-256 of the tag and the key, first 16 bytes."""
    return hashlib.sha256(NODE_ID_TAG + public_key).digest()[:NODE_ID_BYTES]


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a handshake as its Hello announced it."""

    node_id: bytes
    key: bytes
    challenge: bytes


def proof_bytes(role: str, network: bytes, dialer: Side, listener: Side) -> bytes:
    """What a ``HelloProof`` signs: the prover's role ("dialer" or "listener") and the whole
    handshake transcript (both node ids, keys and challenges) on this network. A proof made on
    one connection is worthless on any other that does not carry the very same two Hellos, and
    a listener's proof never passes for a dialler's (protocol.md 5.1)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    return packb(
        [
            PROOF_TAG,
            role,
            network,
            dialer.node_id,
            dialer.key,
            dialer.challenge,
            listener.node_id,
            listener.key,
            listener.challenge,
        ]
    )


class NodeIdentity:
    """A node's key and the node id it proves."""

    __slots__ = ("key", "node_id")

    def __init__(self, key: KeyPair) -> None:
        self.key = key
        self.node_id = node_id_of(key.public_key)

    def prove(self, role: str, network: bytes, dialer: Side, listener: Side) -> bytes:
        return self.key.sign(proof_bytes(role, network, dialer, listener))


def proof_valid(
    public_key: bytes, signature: bytes, role: str, network: bytes, dialer: Side, listener: Side
) -> bool:
    """True if ``signature`` proves ``public_key``'s holder took part, as ``role``, in the
    handshake between ``dialer`` and ``listener``."""
    return verify(public_key, signature, proof_bytes(role, network, dialer, listener))
