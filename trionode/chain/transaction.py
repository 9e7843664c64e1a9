"""Signed transactions of the account model, and the coinbase that pays the miner.

Canonical encoding (protocol.md, "Transaction"): a msgpack array
``[sender, recipient, amount, nonce, timestamp, signature]``; the txid is SHA-256 of those bytes.
The signature covers the same fields without itself, prefixed by a domain tag and the network
(genesis hash), so a transaction cannot be replayed on another network.
"""

import hashlib
from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec

from trionode.chain import keys
from trionode.chain.amounts import MAX_MONEY
from trionode.chain.encoding import UINT64_MAX, UInt64, packb, want_bytes, want_list, want_uint
from trionode.chain.errors import DecodeError

# The coinbase's sender, as the seed names it; it is unsigned and mints the block reward.
COINBASE_SENDER: Final = "network"
SIGNING_TAG: Final = "trionode-tx-v1"
TX_FIELDS: Final = 6
_sha256 = hashlib.sha256
# A coinbase has no signature; every other transaction a 64-byte Ed25519 one.
_SIGNATURE_LENS: Final = frozenset((0, keys.SIGNATURE_LEN))
_force_setattr = msgspec.structs.force_setattr

if TYPE_CHECKING:
    _Sender = bytes
    _Recipient = bytes
    _Amount = int
    _UInt64 = int
    _Signature = bytes
    _Cache = msgspec.UnsetType | tuple[bytes, bytes]
else:
    # What the compiled decoder (``trionode.wire.fastpath``) checks while it builds a
    # Transaction from a wire array. The sender stays unchecked there (the wire spells it as
    # 32-byte bin or the str "network", a union msgspec cannot express) and so does a
    # signature's exact length (0 or 64): the fast path checks both after decoding.
    _Sender = Any
    _Recipient = Annotated[bytes, msgspec.Meta(min_length=keys.ADDRESS_LEN, max_length=keys.ADDRESS_LEN)]
    _Amount = Annotated[int, msgspec.Meta(ge=0, le=MAX_MONEY)]
    _UInt64 = UInt64
    _Signature = Annotated[bytes, msgspec.Meta(max_length=keys.SIGNATURE_LEN)]
    # What the decoder sees of the cache: UNSET only. No msgpack value decodes to UnsetType,
    # so a 7th wire element is always refused; were it ``tuple[bytes, bytes]`` here, a peer
    # could append ``[encoded, txid]`` and choose a transaction's id. ``_fill`` sets the
    # tuple with force_setattr, which does not check types.
    _Cache = msgspec.UnsetType


class Transaction(
    msgspec.Struct, array_like=True, frozen=True, gc=False, eq=False, forbid_unknown_fields=True
):
    """An immutable transaction; ``encoded`` and ``txid`` are computed on first use, once.

    A msgspec Struct laid out as the wire array, so a received block's transactions are built
    by compiled code without a Python call each; their ids are hashed only when something
    needs them (a block that fails its header checks, or a copy of a block already known,
    never does). ``_cache`` holds ``(encoded, txid)`` once computed; the decoder knows it
    only as UnsetType, which no msgpack value decodes to, so a 7-element wire array is
    refused rather than read into it (tests/wire/test_fastpath.py, "forged cache"). Build
    a changed transaction with the constructor, never ``msgspec.structs.replace``, which
    would copy a computed id that no longer matches its fields; encode it with ``encoded``
    (or ``to_wire``), never msgspec's encoder, which would write the cache too.
    """

    sender: _Sender  # the 32-byte public key, or b"" for a coinbase
    recipient: _Recipient
    amount: _Amount
    nonce: _UInt64
    timestamp: _UInt64  # UNIX ms
    signature: _Signature
    _cache: _Cache = msgspec.UNSET

    def _fill(self) -> tuple[bytes, bytes]:
        # to_wire's list, inlined: this runs once for every transaction a node sees.
        encoded = packb(
            [
                self.sender or COINBASE_SENDER,
                self.recipient,
                self.amount,
                self.nonce,
                self.timestamp,
                self.signature,
            ]
        )
        cache = (encoded, _sha256(encoded).digest())
        _force_setattr(self, "_cache", cache)
        return cache

    @property
    def encoded(self) -> bytes:
        """The canonical msgpack array (protocol.md 9.1)."""
        cache = self._cache
        return (self._fill() if cache is msgspec.UNSET else cache)[0]

    @property
    def txid(self) -> bytes:
        """SHA-256 of ``encoded``."""
        cache = self._cache
        return (self._fill() if cache is msgspec.UNSET else cache)[1]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Transaction) and other.txid == self.txid

    def __ne__(self, other: object) -> bool:
        # Needed: with eq=False, msgspec's own __ne__ would compare identities.
        return not self.__eq__(other)

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

        One check per field and no helper calls or field names; ``from_wire`` takes the slow
        path, which names the offending field, on None.
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
                    return cls(s, r, a, n, t, sig)
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
