"""SQLite block store: every block once (header, body, height, parent, cumulative work,
status), the tip, and the mempool.

WAL journal with ``synchronous=NORMAL``: a process killed at any moment (``kill -9``) leaves the
last committed state, because SQLite's commit is atomic; only a power loss can lose the last
commits, never corrupt the file. A tip change is a single row update inside the same
transaction as the blocks it needs, so a crash mid-reorg leaves the old tip or the new one.
"""

import sqlite3
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Final, NamedTuple

from trionode.chain.block import Block, BlockHeader
from trionode.chain.encoding import packb, unpackb
from trionode.chain.errors import ValidationError
from trionode.chain.transaction import Transaction

SCHEMA_VERSION: Final = 1
STATUS_STORED: Final = 0  # context-free valid, not (yet) connected
STATUS_VALID: Final = 1  # has been on the main chain
STATUS_INVALID: Final = 2  # broke a state rule when connected
# What decoding a damaged row raises: msgpack and int() raise ValueError subclasses, the header
# layout struct.error, our decoders ValidationError. The store turns them into StoreError.
_DAMAGED: Final = (ValueError, TypeError, struct.error, ValidationError)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    hash BLOB PRIMARY KEY,
    prev BLOB NOT NULL,
    height INTEGER NOT NULL,
    work TEXT NOT NULL,
    status INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    header BLOB NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS mempool (txid BLOB PRIMARY KEY, seq INTEGER NOT NULL, body BLOB NOT NULL);
"""


class StoreError(Exception):
    """The store cannot be opened or is inconsistent; the message says what to do."""


class StoredBlock(NamedTuple):
    block_hash: bytes
    prev: bytes
    height: int
    work: int
    status: int
    seq: int
    header: BlockHeader


class Store:
    def __init__(self, path: Path | str, *, readonly: bool = False) -> None:
        """Open (or create) the store; ``readonly`` for a reader beside the owning node.

        A read-only store (``trionode validate`` reads the running node's store from a worker
        thread) can neither write nor create anything, so the chain owner stays the only writer.
        """
        self.path = str(path)
        self.damaged_mempool_rows = 0  # unreadable pending transactions dropped at load
        try:
            if readonly:
                uri = f"{Path(self.path).resolve().as_uri()}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            else:
                self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            ok = self._db.execute("PRAGMA quick_check").fetchone()[0]
            if ok != "ok":
                raise StoreError(f"{self.path}: integrity check failed: {ok}")
            if not readonly:
                self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open the chain store: {exc}") from exc
        self._in_tx = False
        try:
            version = self.get_meta("schema")
        except sqlite3.DatabaseError:
            version = None  # no meta table: only possible read-only, where nothing is created
        if version is None and readonly:
            self._db.close()
            raise StoreError(f"{self.path}: not a chain store (no schema version)")
        if version is None:
            self.set_meta("schema", str(SCHEMA_VERSION).encode())
            self.commit()
        elif int(version) != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: store schema {int(version)}, this trionode reads {SCHEMA_VERSION}"
            )

    def close(self) -> None:
        if self._in_tx:
            self.commit()
        self._db.close()

    def _begin(self) -> None:
        if not self._in_tx:
            self._db.execute("BEGIN IMMEDIATE")
            self._in_tx = True

    def commit(self) -> None:
        if self._in_tx:
            self._db.execute("COMMIT")
            self._in_tx = False

    def rollback(self) -> None:
        if self._in_tx:
            self._db.execute("ROLLBACK")
            self._in_tx = False

    def get_meta(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def set_meta(self, key: str, value: bytes) -> None:
        self._begin()
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def put_block(self, block: Block, work: int, status: int, seq: int) -> None:
        self._begin()
        h = block.header
        body = packb([tx.to_wire() for tx in block.txs])
        self._db.execute(
            "INSERT OR IGNORE INTO blocks (hash, prev, height, work, status, seq, header, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (h.block_hash, h.prev_hash, h.height, f"{work:x}", status, seq, h.serialize(), body),
        )

    def set_status(self, block_hash: bytes, status: int) -> None:
        self._begin()
        self._db.execute("UPDATE blocks SET status = ? WHERE hash = ?", (status, block_hash))

    def get_block(self, block_hash: bytes) -> Block | None:
        row = self._db.execute("SELECT header, body FROM blocks WHERE hash = ?", (block_hash,)).fetchone()
        if row is None:
            return None
        try:
            header = BlockHeader.deserialize(bytes(row[0]))
            txs = [Transaction.from_wire(t) for t in unpackb(bytes(row[1]))]
        except _DAMAGED as exc:
            raise StoreError(f"{self.path}: block {block_hash.hex()} is damaged: {exc}") from exc
        return Block(header, txs)

    def iter_index(self) -> Iterator[StoredBlock]:
        """Every stored block's metadata, parents before children."""
        for row in self._db.execute(
            "SELECT hash, prev, height, work, status, seq, header FROM blocks ORDER BY height, seq"
        ):
            try:
                header = BlockHeader.deserialize(bytes(row[6]))
                work = int(row[3], 16)
            except _DAMAGED as exc:
                raise StoreError(
                    f"{self.path}: index row of {bytes(row[0]).hex()} is damaged: {exc}"
                ) from exc
            yield StoredBlock(bytes(row[0]), bytes(row[1]), row[2], work, row[4], row[5], header)

    def mempool_load(self) -> list[Transaction]:
        """The persisted pending transactions; an unreadable row is deleted and counted.

        A pending transaction is not part of the chain: losing one that no longer decodes costs
        less than a node that will not start, and its sender can send it again.
        """
        txs: list[Transaction] = []
        for txid, body in self._db.execute("SELECT txid, body FROM mempool ORDER BY seq").fetchall():
            try:
                txs.append(Transaction.from_wire(unpackb(bytes(body))))
            except _DAMAGED:
                self._begin()
                self._db.execute("DELETE FROM mempool WHERE txid = ?", (txid,))
                self.damaged_mempool_rows += 1
        return txs

    def mempool_next_seq(self) -> int:
        row = self._db.execute("SELECT max(seq) FROM mempool").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def mempool_put(self, tx: Transaction, seq: int) -> None:
        self._begin()
        self._db.execute(
            "INSERT OR IGNORE INTO mempool (txid, seq, body) VALUES (?, ?, ?)",
            (tx.txid, seq, tx.encoded),
        )

    def mempool_delete(self, txid: bytes) -> None:
        self._begin()
        self._db.execute("DELETE FROM mempool WHERE txid = ?", (txid,))
