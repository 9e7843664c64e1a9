"""Hypothesis strategies for valid messages, and a few fixed ones for unit tests."""

import hashlib
from typing import Any

from hypothesis import strategies as st

from trionode.chain.amounts import MAX_MONEY
from trionode.chain.block import Block, BlockHeader
from trionode.chain.keys import KeyPair
from trionode.chain.merkle import merkle_root
from trionode.chain.transaction import Transaction, coinbase, sign_transaction
from trionode.wire.addresses import format_address
from trionode.wire.identity import NodeIdentity
from trionode.wire.messages import (
    Error,
    Heartbeat,
    Hello,
    HelloProof,
    Message,
    NewBlock,
    NewTransaction,
    PeerDiscovery,
    PeerInfo,
    RequestChain,
    ResponseChain,
)

UINT64 = 2**64 - 1
KEYS = [KeyPair(hashlib.sha256(f"wire test key {i}".encode()).digest()) for i in range(4)]

uint64s = st.integers(0, UINT64)
hashes = st.binary(min_size=32, max_size=32)
node_ids = st.binary(min_size=16, max_size=16)
works = st.integers(0, 2**256 - 1)
times = st.floats(0, 4e9, allow_nan=False, allow_infinity=False)


@st.composite
def transactions(draw: st.DrawFn) -> Transaction:
    """Real signed transactions (fixed keys: key generation is the slow part), or coinbases."""
    recipient = draw(st.binary(min_size=20, max_size=20))
    amount = draw(st.integers(0, MAX_MONEY))
    nonce = draw(uint64s)
    timestamp = draw(uint64s)
    if draw(st.booleans()):
        return coinbase(recipient, amount, nonce, timestamp)
    key = draw(st.sampled_from(KEYS))
    return sign_transaction(key, draw(hashes), recipient, amount, nonce, timestamp)


@st.composite
def blocks(draw: st.DrawFn, max_txs: int = 4) -> Block:
    txs = draw(st.lists(transactions(), max_size=max_txs))
    header = BlockHeader(
        draw(st.integers(0, 2**32 - 1)),
        draw(uint64s),
        draw(hashes),
        draw(uint64s),
        merkle_root([tx.txid for tx in txs]),
        draw(st.integers(0, 2**256 - 1)),
        draw(uint64s),
    )
    return Block(header, txs)


_labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_dns = (
    st.lists(_labels, min_size=1, max_size=4).map(".".join).filter(lambda s: not s.split(".")[-1].isdigit())
)
hosts = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str), _dns)
addresses = st.builds(format_address, hosts, st.integers(1, 65535))
peer_infos = st.builds(PeerInfo, addresses, node_ids, times)

hellos = st.builds(
    Hello,
    st.integers(-(2**63), UINT64),
    hashes,
    node_ids,
    st.integers(0, 65535),
    uint64s,
    hashes,
    works,
    st.text(max_size=64),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=16, max_size=16),
)
hello_proofs = st.builds(HelloProof, st.binary(min_size=64, max_size=64))
heartbeats = st.builds(Heartbeat, node_ids, uint64s, hashes, works, uint64s, st.booleans())
errors = st.builds(Error, st.text(max_size=64), st.text(max_size=1024))
request_chains = st.builds(RequestChain, st.lists(hashes, max_size=101), st.integers(1, 500))
response_chains = st.builds(ResponseChain, st.lists(blocks(max_txs=2), max_size=3))
peer_discoveries = st.builds(PeerDiscovery, st.booleans(), st.lists(peer_infos, max_size=20))
new_transactions = st.builds(NewTransaction, transactions())
new_blocks = st.builds(NewBlock, blocks())

messages: st.SearchStrategy[Message] = st.one_of(
    hellos,
    hello_proofs,
    heartbeats,
    errors,
    request_chains,
    response_chains,
    peer_discoveries,
    new_transactions,
    new_blocks,
)

# Fixed values for unit tests: two node identities whose ids are their keys' (protocol.md 5).
IDENTITY = NodeIdentity(KEYS[2])
OTHER_IDENTITY = NodeIdentity(KEYS[3])
NODE = IDENTITY.node_id
OTHER_NODE = OTHER_IDENTITY.node_id
NETWORK = hashlib.sha256(b"wire test network").digest()
TIP = hashlib.sha256(b"wire test tip").digest()
TX = sign_transaction(KEYS[0], NETWORK, KEYS[1].address, 5, 0, 1_700_000_000_000)
CB = coinbase(KEYS[0].address, 50, 1, 1_700_000_000_000)
BLOCK = Block(
    BlockHeader(1, 1, TIP, 1_700_000_000_000, merkle_root([CB.txid, TX.txid]), 2**248 - 1, 7), [CB, TX]
)


def hello(**changes: Any) -> Hello:
    values: dict[str, Any] = {
        "version": 1,
        "network": NETWORK,
        "node_id": NODE,
        "listen_port": 5001,
        "height": 1,
        "tip": TIP,
        "work": 2**40 + 1,
        "agent": "trionode/test",
        "key": IDENTITY.key.public_key,
        "challenge": bytes(range(100, 116)),
    }
    values.update(changes)
    return Hello(**values)


def one_of_each() -> list[Message]:
    """One valid message of each of the nine types."""
    return [
        hello(),
        HelloProof(bytes(range(64))),
        NewTransaction(TX),
        NewBlock(BLOCK),
        RequestChain([TIP, NETWORK], 500),
        ResponseChain([BLOCK, BLOCK]),
        PeerDiscovery(True, [PeerInfo("127.0.0.1:5002", OTHER_NODE, 1_700_000_000.5)]),
        Heartbeat(NODE, 1, TIP, 2**70, 99, False),
        Error("wrong_network", "not ours"),
    ]
