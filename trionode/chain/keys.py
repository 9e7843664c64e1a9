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


# Encodings of the Ed25519 points of small order (1, 2, 4, 8), sign bit cleared, canonical
# and not (libsodium's blocklist; protocol.md 9.2 lists them, and a test keeps the two equal).
# A "key" among them has no secret: the identity point, for one, verifies an all-zero-scalar
# signature of any message, and OpenSSL accepts that. Such keys sign nothing here.
SMALL_ORDER_KEYS: Final = frozenset(
    bytes.fromhex(h)
    for h in (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    )
)


def is_weak(public_key: bytes) -> bool:
    """True for a public key of small order: anyone can sign for it."""
    return (
        len(public_key) == PUBKEY_LEN and public_key[:31] + bytes([public_key[31] & 0x7F]) in SMALL_ORDER_KEYS
    )


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True if ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``
    (never for a key of small order, whatever the signature).

    Consensus (protocol.md 9.2): past the blocklist this is OpenSSL's verification, cofactorless
    ([S]B - [k]A must encode to R byte for byte, so a non-canonical R or one with a small-order
    part fails) with S >= L refused; tests pin each, so a change of library cannot go unnoticed.
    """
    if is_weak(public_key):
        return False
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
