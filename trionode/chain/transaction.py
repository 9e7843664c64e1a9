"""Signed transactions of the account model, and the coinbase that pays the miner.

Canonical encoding (protocol.md, "Transaction"): a msgpack array
``[sender, recipient, amount, nonce, timestamp, signature]``; the txid is SHA-256 of those bytes.
The signature covers the same fields without itself, prefixed by a domain tag and the network
(genesis hash), so a transaction cannot be replayed on another network.
"""

import hashlib
from typing import Any, Final, NamedTuple

from trionode.chain import keys
from trionode.chain.amounts import MAX_MONEY
from trionode.chain.encoding import UINT64_MAX, packb, want_bytes, want_list, want_uint
from trionode.chain.errors import DecodeError

# The coinbase's sender, as the seed names it; it is unsigned and mints the block reward.
COINBASE_SENDER: Final = "network"
SIGNING_TAG: Final = "trionode-tx-v1"
TX_FIELDS: Final = 6
_sha256 = hashlib.sha256
# Building the tuple directly skips NamedTuple's generated Python-level __new__.
_tuple_new = tuple.__new__
# A coinbase has no signature; every other transaction a 64-byte Ed25519 one.
_SIGNATURE_LENS: Final = frozenset((0, keys.SIGNATURE_LEN))


class _Fields(NamedTuple):
    sender: bytes
    recipient: bytes
    amount: int
    nonce: int
    timestamp: int
    signature: bytes
    encoded: bytes
    txid: bytes


class Transaction(_Fields):
    """An immutable transaction; ``txid`` and ``encoded`` are computed once at construction.

    A tuple underneath: construction is one C call and fields are C-level getters, which
    matters because every received block builds thousands of these.
    """

    __slots__ = ()

    def __new__(
        cls,
        sender: bytes,
        recipient: bytes,
        amount: int,
        nonce: int,
        timestamp: int,
        signature: bytes,
    ) -> "Transaction":
        """``sender`` is the 32-byte public key, or b"" for a coinbase; ``timestamp`` is UNIX ms."""
        encoded = packb([sender or COINBASE_SENDER, recipient, amount, nonce, timestamp, signature])
        return _tuple_new(
            cls, (sender, recipient, amount, nonce, timestamp, signature, encoded, _sha256(encoded).digest())
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Transaction) and other.txid == self.txid

    def __hash__(self) -> int:
        return hash(self.txid)

    def __repr__(self) -> str:
        return f"Transaction({self.txid.hex()[:16]}, amount={self.amount}, nonce={self.nonce})"

    @property
    def is_coinbase(self) -> bool:
        return self.sender == b""

    @property
    def sender_address(self) -> bytes:
        """Address of the sender; b"" for a coinbase."""
        return keys.address_of(self.sender) if self.sender else b""

    def to_wire(self) -> list[Any]:
        sender: bytes | str = self.sender if self.sender else COINBASE_SENDER
        return [sender, self.recipient, self.amount, self.nonce, self.timestamp, self.signature]

    @classmethod
    def from_wire(cls, value: Any, field: str = "tx") -> "Transaction":
        """Decode the canonical array; types and lengths are checked, rules are not."""
        tx = cls.from_wire_fast(value)
        if tx is not None:
            return tx
        items = want_list(value, field, TX_FIELDS)
        raw_sender = items[0]
        if raw_sender == COINBASE_SENDER:
            sender = b""
        else:
            if not isinstance(raw_sender, bytes):
                raise DecodeError(f"{field}.sender", 'expected 32-byte bin or "network"')
            sender = want_bytes(raw_sender, f"{field}.sender", keys.PUBKEY_LEN)
        recipient = want_bytes(items[1], f"{field}.recipient", keys.ADDRESS_LEN)
        amount = want_uint(items[2], f"{field}.amount", MAX_MONEY)
        nonce = want_uint(items[3], f"{field}.nonce")
        timestamp = want_uint(items[4], f"{field}.timestamp")
        signature = items[5]
        if not isinstance(signature, bytes):
            raise DecodeError(f"{field}.signature", "expected bin")
        if len(signature) not in (0, keys.SIGNATURE_LEN):
            raise DecodeError(f"{field}.signature", f"expected 64 bytes, got {len(signature)}")
        return cls(sender, recipient, amount, nonce, timestamp, signature)

    @classmethod
    def from_wire_fast(cls, value: Any) -> "Transaction | None":
        """The hot path of ``from_wire``: a well-formed array -> Transaction, anything else None.

        One check per field and no helper calls or field names; a decoded array is already
        the canonical list (``"network"`` spells the coinbase sender), so it is packed as it
        is. ``from_wire`` takes the slow path, which names the offending field, on None.
        """
        if type(value) is list and len(value) == TX_FIELDS:
            s, r, a, n, t, sig = value
            if (
                type(r) is bytes
                and len(r) == keys.ADDRESS_LEN
                and type(a) is int
                and 0 <= a <= MAX_MONEY
                and type(n) is int
                and 0 <= n <= UINT64_MAX
                and type(t) is int
                and 0 <= t <= UINT64_MAX
                and type(sig) is bytes
                and len(sig) in _SIGNATURE_LENS
            ):
                if type(s) is bytes and len(s) == keys.PUBKEY_LEN:
                    encoded = packb(value)
                    return _tuple_new(cls, (s, r, a, n, t, sig, encoded, _sha256(encoded).digest()))
                if s == COINBASE_SENDER:
                    return cls(b"", r, a, n, t, sig)
        return None

    def signing_bytes(self, network: bytes) -> bytes:
        return signing_bytes(network, self.sender, self.recipient, self.amount, self.nonce, self.timestamp)

    def signature_valid(self, network: bytes) -> bool:
        if self.is_coinbase or len(self.signature) != keys.SIGNATURE_LEN:
            return False
        return keys.verify(self.sender, self.signature, self.signing_bytes(network))

    def to_json(self) -> dict[str, Any]:
        """The CLI's view: hex strings, coins as JSON numbers."""
        from trionode.chain.amounts import coins_json

        return {
            "txid": self.txid.hex(),
            "sender": self.sender.hex() if self.sender else COINBASE_SENDER,
            "from": self.sender_address.hex() if self.sender else COINBASE_SENDER,
            "to": self.recipient.hex(),
            "amount": coins_json(self.amount),
            "nonce": self.nonce,
            "timestamp": self.timestamp,
            "signature": self.signature.hex(),
        }


def signing_bytes(
    network: bytes, sender: bytes, recipient: bytes, amount: int, nonce: int, timestamp: int
) -> bytes:
    """What the sender signs: domain tag, network, then the transaction's fields."""
    return packb([SIGNING_TAG, network, sender, recipient, amount, nonce, timestamp])


def sign_transaction(
    key: keys.KeyPair, network: bytes, recipient: bytes, amount: int, nonce: int, timestamp: int
) -> Transaction:
    signature = key.sign(signing_bytes(network, key.public_key, recipient, amount, nonce, timestamp))
    return Transaction(key.public_key, recipient, amount, nonce, timestamp, signature)


def coinbase(recipient: bytes, amount: int, height: int, timestamp: int) -> Transaction:
    """The reward transaction; its nonce is the block height so every coinbase has its own txid."""
    return Transaction(b"", recipient, amount, height, timestamp, b"")
