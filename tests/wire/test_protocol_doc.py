"""protocol.md's hex examples decode to what they claim, and match what the code builds today."""

import hashlib
from pathlib import Path

import pytest

from trionode.chain import keys
from trionode.chain.block import HEADER_BYTES, BlockHeader
from trionode.chain.keys import KeyPair, address_of, verify
from trionode.chain.ledger import Ledger
from trionode.chain.params import MEDIAN_TIME_SPAN, ChainParams
from trionode.chain.validation import (
    check_block_body,
    check_header_context,
    check_signatures,
    median_time_past,
)
from trionode.wire.codec import BUDGET_FROM, BYTES_PER_CONTAINER, CONTAINER_SLACK
from trionode.wire.errors import ERROR_CODES, PROTOCOL_ERROR_CODES
from trionode.wire.framing import FrameDecoder
from trionode.wire.identity import DIALER, proof_bytes
from trionode.wire.messages import (
    MESSAGE_TYPES,
    Envelope,
    Error,
    Heartbeat,
    Hello,
    HelloProof,
    NewBlock,
    NewTransaction,
    PeerDiscovery,
    RequestChain,
    ResponseChain,
    decode_message,
)

from .make_protocol_examples import NODE_A, PROTOCOL_MD, SIDE_A, SIDE_B, TS, build_examples, parse_doc

DOC = parse_doc(PROTOCOL_MD.read_text())
PARAMS = ChainParams()  # the defaults: difficulty 2, mining reward 50 coins
FRAME_TYPES = {
    "frame-hello": "Hello",
    "frame-hello-proof": "HelloProof",
    "frame-new-transaction": "NewTransaction",
    "frame-new-block": "NewBlock",
    "frame-request-chain": "RequestChain",
    "frame-response-chain": "ResponseChain",
    "frame-peer-discovery": "PeerDiscovery",
    "frame-heartbeat": "Heartbeat",
    "frame-error": "Error",
}


def frame(name: str) -> Envelope:
    (body,) = FrameDecoder().feed(DOC[name])
    env = decode_message(body)
    assert (env.type, env.sender, env.ts) == (FRAME_TYPES[name], NODE_A, TS)
    return env


def test_the_doc_has_a_frame_of_every_type() -> None:
    assert set(FRAME_TYPES.values()) == set(MESSAGE_TYPES)
    assert set(FRAME_TYPES) <= set(DOC)


@pytest.mark.parametrize("name", sorted(build_examples()))
def test_doc_example_matches_the_code(name: str) -> None:
    assert name in DOC, f"protocol.md lacks example {name}: run make_protocol_examples.py --write"
    assert DOC[name] == build_examples()[name].data, f"{name} drifted: run make_protocol_examples.py --write"


def test_no_unknown_examples_in_the_doc() -> None:
    assert set(DOC) == set(build_examples())


def test_the_doc_itself_is_where_the_test_reads() -> None:
    assert Path(__file__).resolve().parents[2] / "protocol.md" == PROTOCOL_MD


def test_node_identity_examples() -> None:
    key = DOC["node-a-key"]
    assert DOC["node-a-id"] == hashlib.sha256(b"trionode-node-id" + key).digest()[:16] == NODE_A
    hello = frame("frame-hello").message
    assert isinstance(hello, Hello) and hello.key == key
    proof = frame("frame-hello-proof").message
    assert isinstance(proof, HelloProof)
    assert verify(key, proof.signature, DOC["hello-proof-bytes"])
    assert DOC["hello-proof-bytes"] == proof_bytes(DIALER, PARAMS.network, SIDE_A, SIDE_B)
    assert SIDE_A.key == key and SIDE_A.challenge == hello.challenge


def test_genesis_examples() -> None:
    header = DOC["genesis-header"]
    assert len(header) == HEADER_BYTES == 124
    assert hashlib.sha256(DOC["genesis-params"]).digest() == header[12:44]  # prev_hash
    assert DOC["genesis-hash"] == hashlib.sha256(header).digest() == PARAMS.network
    assert BlockHeader.deserialize(header).serialize() == PARAMS.genesis.header.serialize()


def test_key_and_transaction_examples() -> None:
    tx = frame("frame-new-transaction").message
    assert isinstance(tx, NewTransaction)
    assert tx.tx.sender == DOC["alice-public-key"]
    assert address_of(DOC["alice-public-key"]) == DOC["alice-address"]
    assert tx.tx.encoded == DOC["tx-canonical"]
    assert tx.tx.txid == DOC["txid"] == hashlib.sha256(DOC["tx-canonical"]).digest()
    assert tx.tx.signing_bytes(PARAMS.network) == DOC["tx-signing-bytes"]
    assert verify(tx.tx.sender, tx.tx.signature, DOC["tx-signing-bytes"])
    assert tx.tx.signature_valid(PARAMS.network)


def test_block_one_is_a_valid_child_of_genesis_and_funds_the_transaction() -> None:
    msg = frame("frame-new-block").message
    assert isinstance(msg, NewBlock)
    block, genesis = msg.block, PARAMS.genesis
    assert block.header.serialize() == DOC["block-1-header"]
    assert block.block_hash == DOC["block-1-hash"]
    check_block_body(block, PARAMS)
    check_signatures(block.txs[1:], PARAMS.network)
    check_header_context(
        block.header, genesis.header, [genesis.header.timestamp], PARAMS.initial_target, 2**62
    )
    ledger = Ledger()
    ledger.apply_block(block)
    tx = frame("frame-new-transaction").message
    assert isinstance(tx, NewTransaction)
    ledger.apply_transaction(tx.tx)  # Alice can pay Bob after block 1


def test_the_other_frames() -> None:
    block_hash = DOC["block-1-hash"]
    hello = frame("frame-hello").message
    assert isinstance(hello, Hello)
    assert (hello.version, hello.network, hello.node_id) == (1, PARAMS.network, NODE_A)
    assert (hello.height, hello.tip, hello.work, hello.listen_port) == (1, block_hash, 512, 5001)
    request = frame("frame-request-chain").message
    assert request == RequestChain([PARAMS.network], 500)
    response = frame("frame-response-chain").message
    assert isinstance(response, ResponseChain)
    assert [b.block_hash for b in response.blocks] == [block_hash]
    peers = frame("frame-peer-discovery").message
    assert isinstance(peers, PeerDiscovery) and not peers.request
    assert [p.address for p in peers.peers] == ["127.0.0.1:5002", "[::1]:5003"]
    heartbeat = frame("frame-heartbeat").message
    assert heartbeat == Heartbeat(NODE_A, 1, block_hash, 512, 0x5EED, False)
    error = frame("frame-error").message
    assert isinstance(error, Error) and error.code == "wrong_network"


def test_the_annotated_heartbeat_length() -> None:
    length = DOC["frame-heartbeat"][:4]
    assert (
        f"{length.hex(' ')}                        frame length: {int.from_bytes(length, 'big')} bytes"
        in (PROTOCOL_MD.read_text())
    )


def test_the_prose_names_the_example_sender_and_seeds() -> None:
    text = PROTOCOL_MD.read_text()
    assert f"sent by node A (`{NODE_A.hex()}`, below) at `ts` {TS}" in text
    alice = KeyPair(hashlib.sha256(b"trionode example key alice").digest())
    assert "SHA-256 of the ASCII text `trionode example key alice`" in text
    assert alice.public_key == DOC["alice-public-key"]


def _table_codes(heading: str) -> set[str]:
    """The backticked first-column codes of the table that follows ``heading`` in protocol.md."""
    lines = PROTOCOL_MD.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    codes: set[str] = set()
    in_table = False
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            in_table = True
            first = line.split("|")[1].strip()
            if first.startswith("`") and first.endswith("`"):
                codes.add(first.strip("`"))
        elif in_table:
            break
    return codes


def test_the_docs_error_code_tables_are_the_codes_the_code_uses() -> None:
    assert _table_codes("Codes of the `Error` message") == set(ERROR_CODES)
    assert _table_codes("Causes of a protocol error") == set(PROTOCOL_ERROR_CODES)


def _section(heading: str) -> str:
    """protocol.md from the line starting with ``heading`` to the next heading."""
    lines = PROTOCOL_MD.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
    return "\n".join(lines[start:end])


def test_the_docs_small_order_keys_are_the_ones_refused() -> None:
    listed = {bytes.fromhex(code) for code in _table_codes("**Small-order keys**")}
    assert listed == keys.SMALL_ORDER_KEYS
    assert "with the top bit of its last byte (the sign of x) cleared" in _section("### 9.2")
    for key in listed:  # ...so each is refused with that bit set too
        assert keys.is_weak(key) and keys.is_weak(key[:31] + bytes([key[31] | 0x80]))
        assert not verify(key, bytes([1]) + bytes(63), b"any message")


def test_the_docs_median_time_past_is_the_codes() -> None:
    (row,) = [line for line in _section("## 10.").splitlines() if line.startswith("| `time_too_old`")]
    assert "the element at index floor(n/2) (from 0) of the n sorted timestamps" in row
    assert f"n = min({MEDIAN_TIME_SPAN}, its height)" in row
    for n in range(1, MEDIAN_TIME_SPAN + 1):
        times = [(i * 7919) % 1009 for i in range(n)]  # unsorted, distinct
        assert median_time_past(times) == sorted(times)[n // 2]


def test_the_docs_container_budget_is_the_codes() -> None:
    assert (BYTES_PER_CONTAINER, CONTAINER_SLACK, BUDGET_FROM) == (32, 8, 65_536)
    assert "a body of L >= 65,536 bytes: more than floor(L/32) + 8 maps and arrays" in _section("## 2.")
