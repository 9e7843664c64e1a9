"""trionode's wire protocol and consensus encodings, written again from protocol.md alone.

The hostile peer must not share a bug with the node it attacks, so nothing here imports
trionode: frames, envelopes and payloads are built with ``msgpack`` and ``struct``;
transactions, Merkle roots, block headers, proof of work and the genesis block with
``hashlib`` and ``cryptography``. ``test_encoder.py`` holds this module to the hex examples
of protocol.md section 11, so it is right where it is meant to be right; everything a test
breaks on purpose is broken explicitly by that test.
"""

import hashlib
import os
import struct
import time
from dataclasses import dataclass, field, replace
from typing import Any, Final

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# Section 1: frame bodies are 1..MAX_FRAME bytes after a 4-byte big-endian length.
MAX_FRAME: Final = 4 * 1024 * 1024
LENGTH: Final = struct.Struct(">I")
# Section 9: 1 coin is 10**8 units; the genesis block is fixed at 2024-01-01T00:00:00Z.
COIN: Final = 100_000_000
GENESIS_TIMESTAMP_MS: Final = 1_704_067_200_000
# Section 9.3: the 124-byte header layout the block hash is computed over.
HEADER_LAYOUT: Final = struct.Struct(">IQ32sQ32s32sQ")
SIGNING_TAG: Final = "trionode-tx-v1"
GENESIS_TAG: Final = "trionode-genesis-v1"
AGENT: Final = "hostile/1.0"
# Section 10: blocks may be at most 2 hours ahead of the receiver's clock.
MAX_FUTURE_MS: Final = 2 * 60 * 60 * 1000


def pack(obj: Any) -> bytes:
    """Canonical msgpack (section 2): shortest ints, str for text, bin for bytes, float64."""
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def frame(body: bytes) -> bytes:
    """A frame with any body, including ones the protocol forbids (empty, oversized)."""
    return LENGTH.pack(len(body)) + body


def new_node_id() -> str:
    return os.urandom(16).hex()


def now_ms() -> int:
    return int(time.time() * 1000)


def envelope_body(kind: str, payload: Any, sender: str, ts: float | None = None) -> bytes:
    envelope = {"type": kind, "sender": sender, "ts": float(time.time() if ts is None else ts)}
    envelope["payload"] = payload
    return pack(envelope)


def message(kind: str, payload: Any, sender: str, ts: float | None = None) -> bytes:
    """A whole frame: length prefix and envelope (section 3)."""
    return frame(envelope_body(kind, payload, sender, ts))


def unpack(body: bytes) -> Any:
    """Decode what the node sends us (we trust it to be valid; the tests check that it is)."""
    return msgpack.unpackb(body, raw=False, strict_map_key=False)


class FrameReader:
    """Splits a byte stream into decoded envelopes; ``pending`` is an incomplete tail."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self.buffer += data
        out: list[dict[str, Any]] = []
        while len(self.buffer) >= LENGTH.size:
            (length,) = LENGTH.unpack_from(self.buffer)
            if len(self.buffer) < LENGTH.size + length:
                break
            body = bytes(self.buffer[LENGTH.size : LENGTH.size + length])
            del self.buffer[: LENGTH.size + length]
            out.append(unpack(body))
        return out


# ----------------------------------------------------------------- keys and transactions


class Key:
    """An Ed25519 key; the address is the first 20 bytes of SHA-256 of the raw public key."""

    def __init__(self, seed: bytes | None = None) -> None:
        self.private = Ed25519PrivateKey.from_private_bytes(seed or os.urandom(32))
        self.public = self.private.public_key().public_bytes_raw()
        self.address = hashlib.sha256(self.public).digest()[:20]

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)


def signing_bytes(network: bytes, sender: bytes, recipient: bytes, amount: int, nonce: int, ts: int) -> bytes:
    return pack([SIGNING_TAG, network, sender, recipient, amount, nonce, ts])


def transaction(
    key: Key, network: bytes, recipient: bytes, amount: int, nonce: int, ts: int | None = None
) -> list[Any]:
    """A signed transaction array (section 9.1): [sender, recipient, amount, nonce, ts, sig]."""
    ts = now_ms() if ts is None else ts
    signature = key.sign(signing_bytes(network, key.public, recipient, amount, nonce, ts))
    return [key.public, recipient, amount, nonce, ts, signature]


def coinbase(recipient: bytes, amount: int, height: int, ts: int) -> list[Any]:
    return ["network", recipient, amount, height, ts, b""]


def txid(tx: list[Any]) -> bytes:
    return hashlib.sha256(pack(tx)).digest()


def merkle_root(txids: list[bytes]) -> bytes:
    """Section 9.5: inner node SHA-256(01 || left || right); an odd last node moves up."""
    if not txids:
        return bytes(32)
    level = list(txids)
    while len(level) > 1:
        nxt = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


# ----------------------------------------------------------------- blocks


def target_for(difficulty: int) -> int:
    return (1 << (256 - 4 * difficulty)) - 1


def work_of(target: int) -> int:
    return (1 << 256) // (target + 1)


@dataclass(frozen=True)
class Header:
    version: int
    height: int
    prev: bytes
    timestamp: int
    merkle: bytes
    target: int
    nonce: int

    def raw(self) -> bytes:
        return HEADER_LAYOUT.pack(
            self.version,
            self.height,
            self.prev,
            self.timestamp,
            self.merkle,
            self.target.to_bytes(32, "big"),
            self.nonce,
        )

    @property
    def hash(self) -> bytes:
        return hashlib.sha256(self.raw()).digest()

    def meets_target(self) -> bool:
        return int.from_bytes(self.hash, "big") <= self.target

    def wire(self) -> list[Any]:
        return [
            self.version,
            self.height,
            self.prev,
            self.timestamp,
            self.merkle,
            self.target.to_bytes(32, "big"),
            self.nonce,
        ]

    @classmethod
    def from_wire(cls, raw: list[Any]) -> "Header":
        version, height, prev, ts, merkle, target, nonce = raw
        return cls(version, height, prev, ts, merkle, int.from_bytes(target, "big"), nonce)


def solve(header: Header) -> Header:
    """The first nonce from 0 whose hash meets the target."""
    nonce = 0
    while True:
        candidate = replace(header, nonce=nonce)
        if candidate.meets_target():
            return candidate
        nonce += 1


def unsolve(header: Header) -> Header:
    """A nonce whose hash does NOT meet the target (bad proof of work)."""
    nonce = 0
    while True:
        candidate = replace(header, nonce=nonce)
        if not candidate.meets_target():
            return candidate
        nonce += 1


@dataclass
class Block:
    header: Header
    txs: list[list[Any]]

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def height(self) -> int:
        return self.header.height

    def wire(self) -> list[Any]:
        return [self.header.wire(), self.txs]

    @classmethod
    def from_wire(cls, raw: list[Any]) -> "Block":
        return cls(Header.from_wire(raw[0]), raw[1])


@dataclass(frozen=True)
class Params:
    """A network's [chain] section; its genesis hash is the network id (section 9.7)."""

    difficulty: int = 1
    mining_reward: int = 50 * COIN
    retarget_interval: int = 0
    target_block_time: int = 60

    @property
    def target(self) -> int:
        return target_for(self.difficulty)

    @property
    def genesis(self) -> Header:
        params = pack(
            [GENESIS_TAG, self.difficulty, self.mining_reward, self.retarget_interval, self.target_block_time]
        )
        return Header(1, 0, hashlib.sha256(params).digest(), GENESIS_TIMESTAMP_MS, bytes(32), self.target, 0)

    @property
    def network(self) -> bytes:
        return self.genesis.hash


@dataclass
class ChainView:
    """A main chain as the hostile peer knows it (hashes, headers), to build blocks on."""

    params: Params
    headers: list[Header] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.headers:
            self.headers = [self.params.genesis]

    @property
    def tip(self) -> Header:
        return self.headers[-1]

    @property
    def height(self) -> int:
        return len(self.headers) - 1

    @property
    def work(self) -> int:
        return sum(work_of(h.target) for h in self.headers)

    def locator(self) -> list[bytes]:
        """Section 4: the last 10 one by one, then doubling steps, ending with genesis."""
        heights: list[int] = []
        step, h = 1, self.height
        while h > 0:
            heights.append(h)
            if len(heights) >= 10:
                step *= 2
            h -= step
        heights.append(0)
        return [self.headers[i].hash for i in heights]

    def fork(self, height: int) -> "ChainView":
        return ChainView(self.params, self.headers[: height + 1])

    def add(self, block: Block) -> None:
        assert block.header.prev == self.tip.hash, "not a child of our tip"
        self.headers.append(block.header)

    def next_timestamp(self) -> int:
        return max(now_ms(), max(h.timestamp for h in self.headers[-11:]) + 1)

    def make_block(
        self,
        txs: list[list[Any]] | None = None,
        *,
        reward_to: bytes | None = None,
        reward: int | None = None,
        extra_coinbase: bool = False,
        timestamp: int | None = None,
        **header: Any,
    ) -> Block:
        """A child of our tip (not added to the view: call ``add`` once the node took it).

        ``header`` overrides header fields (``merkle``, ``target``, ``version``, ``height``,
        ``prev``); ``pow_ok=False`` gives a nonce that misses the target.
        """
        height = header.get("height", self.height + 1)
        ts = self.next_timestamp() if timestamp is None else timestamp
        to = reward_to if reward_to is not None else os.urandom(20)
        amount = self.params.mining_reward if reward is None else reward
        body = [coinbase(to, amount, height, ts)]
        if extra_coinbase:
            body.append(coinbase(os.urandom(20), amount, height, ts))
        return self.seal(body + (txs or []), timestamp=ts, **header)

    def seal(self, body: list[list[Any]], *, pow_ok: bool = True, **fields: Any) -> Block:
        """A block of exactly ``body`` on our tip, with its Merkle root and proof of work."""
        header = Header(
            version=1,
            height=self.height + 1,
            prev=self.tip.hash,
            timestamp=self.next_timestamp(),
            merkle=merkle_root([txid(tx) for tx in body]),
            target=self.params.target,
            nonce=0,
        )
        header = replace(header, **fields)
        return Block(solve(header) if pow_ok else unsolve(header), body)


# ----------------------------------------------------------------- payloads (section 4)


# Section 5.1: node ids are derived from node keys, and HelloProof signs the other's challenge.
NODE_ID_TAG: Final = b"trionode-node-id"
PROOF_TAG: Final = "trionode-hello-v1"


def node_id_of(public_key: bytes) -> str:
    return hashlib.sha256(NODE_ID_TAG + public_key).digest()[:16].hex()


def hello_proof(
    key: "Key", network: bytes, role: str, dialer: dict[str, Any], listener: dict[str, Any]
) -> dict[str, Any]:
    """A HelloProof payload (section 5.1): ``key`` signs its ``role`` ("dialer" or "listener")
    and both Hellos' node ids, keys and challenges (``dialer``, ``listener``: Hello payloads)."""
    fields = [bytes.fromhex(h[name]) for h in (dialer, listener) for name in ("node_id", "key", "challenge")]
    return {"signature": key.sign(pack([PROOF_TAG, role, network, *fields])).hex()}


def hello(
    params: Params,
    node_id: str,
    *,
    key: bytes,
    challenge: bytes,
    listen_port: int = 0,
    height: int = 0,
    tip: bytes | None = None,
    work: int | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "version": 1,
        "network": params.network.hex(),
        "node_id": node_id,
        "listen_port": listen_port,
        "height": height,
        "tip": (tip or params.network).hex(),
        "work": format(work if work is not None else work_of(params.target), "x"),
        "agent": AGENT,
        "key": key.hex(),
        "challenge": challenge.hex(),
    }
    payload.update(overrides)
    return payload


def heartbeat(
    params: Params,
    node_id: str,
    nonce: int,
    echo: bool,
    *,
    height: int = 0,
    tip: bytes | None = None,
    work: int | None = None,
) -> dict[str, Any]:
    return {
        "node_id": node_id,
        "height": height,
        "tip": (tip or params.network).hex(),
        "work": format(work if work is not None else work_of(params.target) * (height + 1), "x"),
        "nonce": nonce,
        "echo": echo,
    }


def request_chain(locator: list[bytes], limit: int = 500) -> dict[str, Any]:
    return {"locator": [h.hex() for h in locator], "limit": limit}


def peer_entry(address: str, node_id: str | None = None, last_seen: float | None = None) -> dict[str, Any]:
    return {
        "address": address,
        "node_id": node_id or new_node_id(),
        "last_seen": float(time.time() if last_seen is None else last_seen),
    }
