"""Block headers and blocks, with their canonical encodings.

The block hash is SHA-256 over a fixed 124-byte header layout (protocol.md, "Block header"),
so any language reproduces it with a few big-endian writes; the nonce is last, which lets a
miner hash the first 116 bytes once and only the nonce per attempt.
On the wire a block is ``[header_array, [tx_array, ...]]`` (see ``to_wire``).
"""

import hashlib
import struct
from typing import Any, Final, cast

from trionode.chain.encoding import want_bytes, want_list, want_uint
from trionode.chain.errors import DecodeError
from trionode.chain.transaction import Transaction

HEADER_VERSION: Final = 1
HEADER_FIELDS: Final = 7
_LAYOUT: Final = struct.Struct(">IQ32sQ32s32sQ")
HEADER_BYTES: Final = _LAYOUT.size  # 124
PREFIX_BYTES: Final = HEADER_BYTES - 8
# A block may not list more transactions than fit in a frame even in the tightest encoding.
MAX_BLOCK_TXS: Final = 20_000


class BlockHeader:
    __slots__ = (
        "block_hash",
        "height",
        "merkle_root",
        "nonce",
        "prev_hash",
        "target",
        "timestamp",
        "version",
    )

    def __init__(
        self,
        version: int,
        height: int,
        prev_hash: bytes,
        timestamp: int,
        merkle_root: bytes,
        target: int,
        nonce: int,
    ) -> None:
        self.version = version
        self.height = height
        self.prev_hash = prev_hash
        self.timestamp = timestamp
        self.merkle_root = merkle_root
        self.target = target
        self.nonce = nonce
        self.block_hash = hashlib.sha256(self.serialize()).digest()

    def serialize(self) -> bytes:
        return _LAYOUT.pack(
            self.version,
            self.height,
            self.prev_hash,
            self.timestamp,
            self.merkle_root,
            self.target.to_bytes(32, "big"),
            self.nonce,
        )

    def prefix(self) -> bytes:
        """The header bytes before the nonce: what a miner hashes once."""
        return self.serialize()[:PREFIX_BYTES]

    def with_nonce(self, nonce: int) -> "BlockHeader":
        return BlockHeader(
            self.version,
            self.height,
            self.prev_hash,
            self.timestamp,
            self.merkle_root,
            self.target,
            nonce,
        )

    @classmethod
    def deserialize(cls, data: bytes) -> "BlockHeader":
        version, height, prev, ts, root, target, nonce = _LAYOUT.unpack(data)
        return cls(version, height, prev, ts, root, int.from_bytes(target, "big"), nonce)

    def to_wire(self) -> list[Any]:
        return [
            self.version,
            self.height,
            self.prev_hash,
            self.timestamp,
            self.merkle_root,
            self.target.to_bytes(32, "big"),
            self.nonce,
        ]

    @classmethod
    def from_wire(cls, value: Any, field: str = "header") -> "BlockHeader":
        items = want_list(value, field, HEADER_FIELDS)
        return cls(
            want_uint(items[0], f"{field}.version", 0xFFFFFFFF),
            want_uint(items[1], f"{field}.height"),
            want_bytes(items[2], f"{field}.prev_hash", 32),
            want_uint(items[3], f"{field}.timestamp"),
            want_bytes(items[4], f"{field}.merkle_root", 32),
            int.from_bytes(want_bytes(items[5], f"{field}.target", 32), "big"),
            want_uint(items[6], f"{field}.nonce"),
        )


class Block:
    __slots__ = ("header", "txs")

    def __init__(self, header: BlockHeader, txs: list[Transaction]) -> None:
        self.header = header
        self.txs = txs

    @property
    def block_hash(self) -> bytes:
        return self.header.block_hash

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def prev_hash(self) -> bytes:
        return self.header.prev_hash

    def __repr__(self) -> str:
        return f"Block({self.height}, {self.block_hash.hex()[:16]}, txs={len(self.txs)})"

    def to_wire(self) -> list[Any]:
        return [self.header.to_wire(), [tx.to_wire() for tx in self.txs]]

    @classmethod
    def from_wire(cls, value: Any, field: str = "block") -> "Block":
        items = want_list(value, field, 2)
        header = BlockHeader.from_wire(items[0], f"{field}.header")
        raw_txs = items[1]
        if not isinstance(raw_txs, (list, tuple)):
            raise DecodeError(f"{field}.txs", "expected array")
        if len(raw_txs) > MAX_BLOCK_TXS:
            raise DecodeError(f"{field}.txs", f"at most {MAX_BLOCK_TXS} transactions")
        fast = Transaction.from_wire_fast
        decoded = [fast(t) for t in raw_txs]
        # all(): a Transaction is always true, so only a None (bad entry) is false.
        if all(decoded):
            return cls(header, cast(list[Transaction], decoded))
        # Decode again the slow way, for the field name of the first bad entry.
        return cls(header, [Transaction.from_wire(t, f"{field}.txs[{i}]") for i, t in enumerate(raw_txs)])

    def size(self) -> int:
        """The consensus size: 124 header bytes plus each transaction's canonical encoding."""
        return HEADER_BYTES + sum(len(tx.encoded) for tx in self.txs)

    def to_json(self) -> dict[str, Any]:
        from trionode.chain.pow import difficulty_of

        h = self.header
        return {
            "height": h.height,
            "hash": h.block_hash.hex(),
            "prev_hash": h.prev_hash.hex(),
            "timestamp": h.timestamp,
            "merkle_root": h.merkle_root.hex(),
            "target": f"{h.target:064x}",
            "difficulty": difficulty_of(h.target),
            "nonce": h.nonce,
            "transactions": [tx.to_json() for tx in self.txs],
        }
