"""Ed25519 keys and addresses.

An address is the first 20 bytes of SHA-256 of the 32-byte raw public key, written as 40
lowercase hex characters. Short enough to type, long enough that finding a second key for an
address costs 2**160 work.
"""

import hashlib
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

PUBKEY_LEN: Final = 32
SIGNATURE_LEN: Final = 64
ADDRESS_LEN: Final = 20


def address_of(public_key: bytes) -> bytes:
    """The address that receives coins for this public key."""
    return hashlib.sha256(public_key).digest()[:ADDRESS_LEN]


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True if ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


class KeyPair:
    """A private key with its public key and address computed once."""

    __slots__ = ("_private", "address", "public_key", "seed")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self.seed = seed
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key = self._private.public_key().public_bytes_raw()
        self.address = address_of(self.public_key)

    @classmethod
    def generate(cls) -> "KeyPair":
        return cls(Ed25519PrivateKey.generate().private_bytes_raw())

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)
