"""The hostile peer's own encoder reproduces every hex example of protocol.md section 11.

The encoder was written from the document, not from trionode's code; matching the examples
byte for byte shows that both read the document the same way, so when the node refuses
something the hostile peer sends, it is the deliberate fault and not an encoding slip.
"""

import hashlib
import re
from pathlib import Path

import pytest

from tests.hostile import encoder as e

PROTOCOL_MD = Path(__file__).resolve().parents[2] / "protocol.md"
# Node keys from fixed seeds (protocol.md section 11); node ids derived as section 5.1 says.
NODE_A_KEY = e.Key(hashlib.sha256(b"trionode example node a").digest())
NODE_B_KEY = e.Key(hashlib.sha256(b"trionode example node b").digest())
NODE_A = e.node_id_of(NODE_A_KEY.public)
NODE_B = e.node_id_of(NODE_B_KEY.public)
# The two Hellos of the example handshake (A dialled B); only ids, keys and challenges matter
# to the proof.
HELLO_A = {
    "node_id": NODE_A,
    "key": NODE_A_KEY.public.hex(),
    "challenge": hashlib.sha256(b"trionode example challenge a").digest()[:16].hex(),
}
HELLO_B = {
    "node_id": NODE_B,
    "key": NODE_B_KEY.public.hex(),
    "challenge": hashlib.sha256(b"trionode example challenge b").digest()[:16].hex(),
}
TS = 1_704_067_260.25
DEFAULT = e.Params(difficulty=2)


def examples() -> dict[str, bytes]:
    text = PROTOCOL_MD.read_text()
    found = re.findall(r"Example `([a-z0-9-]+)`[^\n]*\n\n```hex\n(.*?)```", text, re.S)
    return {name: bytes.fromhex("".join(body.split())) for name, body in found}


DOC = examples()
ALICE = e.Key(hashlib.sha256(b"trionode example key alice").digest())
BOB = e.Key(hashlib.sha256(b"trionode example key bob").digest())


def block_1() -> e.Block:
    ts = e.GENESIS_TIMESTAMP_MS + 60_000
    view = e.ChainView(DEFAULT)
    return view.make_block(reward_to=ALICE.address, timestamp=ts)


def alice_tx() -> list[object]:
    return e.transaction(ALICE, DEFAULT.network, BOB.address, 10 * e.COIN, 0, 1704067290000)


def test_the_document_has_the_examples() -> None:
    assert len(DOC) >= 18


def test_every_example_of_the_document_is_checked() -> None:
    """A new example in protocol.md needs a check here before the suite passes again."""
    source = Path(__file__).read_text()
    checked = set(re.findall(r'DOC\["([a-z0-9-]+)"\]', source)) | {name for name, _ in FRAMES}
    assert sorted(set(DOC) - checked) == []


def test_genesis() -> None:
    genesis = DEFAULT.genesis
    assert genesis.raw() == DOC["genesis-header"]
    assert genesis.hash == DOC["genesis-hash"] == DEFAULT.network
    assert hashlib.sha256(DOC["genesis-params"]).digest() == genesis.prev


def test_keys_transaction_and_txid() -> None:
    assert ALICE.public == DOC["alice-public-key"]
    assert ALICE.address == DOC["alice-address"]
    tx = alice_tx()
    assert (
        e.signing_bytes(DEFAULT.network, ALICE.public, BOB.address, 10 * e.COIN, 0, 1704067290000)
        == (DOC["tx-signing-bytes"])
    )
    assert e.pack(tx) == DOC["tx-canonical"]
    assert e.txid(tx) == DOC["txid"]


def test_block_header_hash_and_proof_of_work() -> None:
    block = block_1()
    assert block.header.raw() == DOC["block-1-header"]
    assert block.hash == DOC["block-1-hash"]
    assert block.header.meets_target()
    assert not e.unsolve(block.header).meets_target()


FRAMES = [
    ("frame-hello", "Hello"),
    ("frame-hello-proof", "HelloProof"),
    ("frame-new-transaction", "NewTransaction"),
    ("frame-new-block", "NewBlock"),
    ("frame-request-chain", "RequestChain"),
    ("frame-response-chain", "ResponseChain"),
    ("frame-peer-discovery", "PeerDiscovery"),
    ("frame-heartbeat", "Heartbeat"),
    ("frame-error", "Error"),
]


@pytest.mark.parametrize(("name", "kind"), FRAMES)
def test_frames(name: str, kind: str) -> None:
    block = block_1()
    payloads = {
        "Hello": e.hello(
            DEFAULT,
            NODE_A,
            key=NODE_A_KEY.public,
            challenge=hashlib.sha256(b"trionode example challenge a").digest()[:16],
            listen_port=5001,
            height=1,
            tip=block.hash,
            work=0x200,
            agent="trionode/0.1.0",
        ),
        "HelloProof": e.hello_proof(NODE_A_KEY, DEFAULT.network, "dialer", HELLO_A, HELLO_B),
        "NewTransaction": {"tx": alice_tx()},
        "NewBlock": {"block": block.wire()},
        "RequestChain": e.request_chain([DEFAULT.network]),
        "ResponseChain": {"blocks": [block.wire()]},
        "PeerDiscovery": {
            "request": False,
            "peers": [
                e.peer_entry("127.0.0.1:5002", NODE_B, TS - 30.0),
                e.peer_entry(
                    "[::1]:5003", hashlib.sha256(b"trionode example node c").digest()[:16].hex(), TS - 90.5
                ),
            ],
        },
        "Heartbeat": e.heartbeat(DEFAULT, NODE_A, 0x5EED, False, height=1, tip=block.hash, work=0x200),
        "Error": {"code": "wrong_network", "reason": f"this node is on network {'ab' * 32}"},
    }
    assert e.message(kind, payloads[kind], NODE_A, TS) == DOC[name]
    (decoded,) = e.FrameReader().feed(DOC[name])
    assert decoded["type"] == kind and decoded["sender"] == NODE_A


def test_locator_shape() -> None:
    view = e.ChainView(e.Params())
    for _ in range(30):
        view.add(view.make_block())
    locator = view.locator()
    assert locator[:10] == [h.hash for h in reversed(view.headers[-10:])]
    assert locator[-1] == view.params.network
    assert len(locator) < 20


def test_node_identity() -> None:
    assert NODE_A_KEY.public == DOC["node-a-key"]
    assert bytes.fromhex(NODE_A) == DOC["node-a-id"]


def test_hello_proof_bytes() -> None:
    """What node A signs, dialling B (section 5.1): the signature is A's key over exactly these."""
    fields = [bytes.fromhex(h[name]) for h in (HELLO_A, HELLO_B) for name in ("node_id", "key", "challenge")]
    signed = e.pack([e.PROOF_TAG, "dialer", DEFAULT.network, *fields])
    assert signed == DOC["hello-proof-bytes"]
    proof = e.hello_proof(NODE_A_KEY, DEFAULT.network, "dialer", HELLO_A, HELLO_B)
    assert proof["signature"] == NODE_A_KEY.sign(signed).hex()
