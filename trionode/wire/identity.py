"""Node identities that can be proven: a node id is derived from an Ed25519 key, and the
handshake makes each side sign the other's fresh challenge with it (protocol.md section 5).

Without this a node id was only claimed, so a stranger could say "I am your peer X" and, by
the duplicate-connection rule, push the real X out. Now a Hello whose ``node_id`` is not
``node_id_of(key)``, or whose sender cannot sign our challenge with that key, is refused.
"""

import hashlib
from typing import Final

from trionode.chain.encoding import packb
from trionode.chain.keys import KeyPair, verify
from trionode.wire.fields import NODE_ID_BYTES

CHALLENGE_BYTES: Final = 16
# Domain tags: a node id is never an address prefix, and a proof is never a transaction.
NODE_ID_TAG: Final = b"trionode-node-id"
PROOF_TAG: Final = "trionode-hello-v1"


def node_id_of(public_key: bytes) -> bytes:
    """The node id a public key stands for: SHA-256 of the tag and the key, first 16 bytes."""
    return hashlib.sha256(NODE_ID_TAG + public_key).digest()[:NODE_ID_BYTES]


def proof_bytes(network: bytes, challenge: bytes, prover: bytes, verifier: bytes) -> bytes:
    """What a ``HelloProof`` signs: the verifier's challenge, bound to both node ids and the
    network, so a proof made for one connection (or one peer) is worthless on another."""
    return packb([PROOF_TAG, network, challenge, prover, verifier])


class NodeIdentity:
    """A node's key and the node id it proves."""

    __slots__ = ("key", "node_id")

    def __init__(self, key: KeyPair) -> None:
        self.key = key
        self.node_id = node_id_of(key.public_key)

    def prove(self, network: bytes, challenge: bytes, verifier: bytes) -> bytes:
        return self.key.sign(proof_bytes(network, challenge, self.node_id, verifier))


def proof_valid(
    public_key: bytes, signature: bytes, network: bytes, challenge: bytes, prover: bytes, verifier: bytes
) -> bool:
    """True if ``signature`` proves ``public_key``'s holder answered ``challenge``."""
    return verify(public_key, signature, proof_bytes(network, challenge, prover, verifier))
