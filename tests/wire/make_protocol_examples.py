"""Build the hex examples of protocol.md from fixed keys and times, and print or write them.

    python tests/wire/make_protocol_examples.py            # print every example as markdown
    python tests/wire/make_protocol_examples.py --write    # refresh the hex blocks in protocol.md

Ed25519 signatures are deterministic, so the same seeds always give the same bytes;
``test_protocol_doc.py`` rebuilds them and fails if protocol.md differs.
"""

import argparse
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from trionode.chain.amounts import COIN
from trionode.chain.block import HEADER_VERSION, Block, BlockHeader
from trionode.chain.keys import KeyPair
from trionode.chain.merkle import merkle_root
from trionode.chain.params import GENESIS_TIMESTAMP_MS, ChainParams
from trionode.chain.pow import meets_target, work_for_target
from trionode.chain.transaction import coinbase, sign_transaction
from trionode.wire.errors import WRONG_NETWORK
from trionode.wire.identity import DIALER, NodeIdentity, Side, proof_bytes
from trionode.wire.messages import (
    PROTOCOL_VERSION,
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
    encode_message,
)

PROTOCOL_MD: Final = Path(__file__).resolve().parents[2] / "protocol.md"
# The line that names the hex block after it: Example `frame-hello` (any text after).
EXAMPLE_LINE: Final = re.compile(r"^Example `([a-z0-9-]+)`")
HEX_FENCE: Final = "```hex"
BYTES_PER_LINE: Final = 32


def seed(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


ALICE: Final = KeyPair(seed("trionode example key alice"))
BOB: Final = KeyPair(seed("trionode example key bob"))
# Node keys (section 5.1): the node ids are derived from them.
NODE_A_IDENTITY: Final = NodeIdentity(KeyPair(seed("trionode example node a")))
NODE_B_IDENTITY: Final = NodeIdentity(KeyPair(seed("trionode example node b")))
NODE_A: Final = NODE_A_IDENTITY.node_id
NODE_B: Final = NODE_B_IDENTITY.node_id
# Node A dialled node B: the two sides of the handshake its HelloProof signs.
CHALLENGE_A: Final = seed("trionode example challenge a")[:16]
CHALLENGE_B: Final = seed("trionode example challenge b")[:16]
SIDE_A: Final = Side(NODE_A, NODE_A_IDENTITY.key.public_key, CHALLENGE_A)
SIDE_B: Final = Side(NODE_B, NODE_B_IDENTITY.key.public_key, CHALLENGE_B)
TS: Final = 1_704_067_260.25  # 2024-01-01T00:01:00.25Z, one minute after genesis


@dataclass(frozen=True)
class Example:
    name: str
    data: bytes
    message: Message | None  # what a frame example decodes to


def block_one(params: ChainParams) -> Block:
    """A valid child of the default genesis: the coinbase pays Alice; nonce found by search."""
    genesis = params.genesis
    ts = GENESIS_TIMESTAMP_MS + 60_000
    cb = coinbase(ALICE.address, params.mining_reward, 1, ts)
    header = BlockHeader(
        HEADER_VERSION, 1, genesis.block_hash, ts, merkle_root([cb.txid]), params.initial_target, 0
    )
    nonce = 0
    while not meets_target(header.block_hash, header.target):
        nonce += 1
        header = header.with_nonce(nonce)
    return Block(header, [cb])


def build_examples() -> dict[str, Example]:
    params = ChainParams()
    network = params.network
    genesis = params.genesis
    block = block_one(params)
    work = work_for_target(genesis.header.target) + work_for_target(block.header.target)
    tx = sign_transaction(ALICE, network, BOB.address, 10 * COIN, 0, GENESIS_TIMESTAMP_MS + 90_000)
    messages: list[tuple[str, Message]] = [
        (
            "frame-hello",
            Hello(
                PROTOCOL_VERSION,
                network,
                NODE_A,
                5001,
                1,
                block.block_hash,
                work,
                "trionode/0.1.0",
                NODE_A_IDENTITY.key.public_key,
                CHALLENGE_A,
            ),
        ),
        ("frame-hello-proof", HelloProof(NODE_A_IDENTITY.prove(DIALER, network, SIDE_A, SIDE_B))),
        ("frame-new-transaction", NewTransaction(tx)),
        ("frame-new-block", NewBlock(block)),
        ("frame-request-chain", RequestChain([genesis.block_hash], 500)),
        ("frame-response-chain", ResponseChain([block])),
        (
            "frame-peer-discovery",
            PeerDiscovery(
                False,
                [
                    PeerInfo("127.0.0.1:5002", NODE_B, TS - 30.0),
                    PeerInfo("[::1]:5003", seed("trionode example node c")[:16], TS - 90.5),
                ],
            ),
        ),
        ("frame-heartbeat", Heartbeat(NODE_A, 1, block.block_hash, work, 0x5EED, False)),
        ("frame-error", Error(WRONG_NETWORK, f"this node is on network {'ab' * 32}")),
    ]
    examples = [Example(name, encode_message(msg, NODE_A, TS), msg) for name, msg in messages]
    examples += [
        Example("node-a-key", NODE_A_IDENTITY.key.public_key, None),
        Example("node-a-id", NODE_A, None),
        Example("hello-proof-bytes", proof_bytes(DIALER, network, SIDE_A, SIDE_B), None),
        Example("genesis-params", params.canonical(), None),
        Example("genesis-header", genesis.header.serialize(), None),
        Example("genesis-hash", genesis.block_hash, None),
        Example("alice-public-key", ALICE.public_key, None),
        Example("alice-address", ALICE.address, None),
        Example("tx-signing-bytes", tx.signing_bytes(network), None),
        Example("tx-canonical", tx.encoded, None),
        Example("txid", tx.txid, None),
        Example("block-1-header", block.header.serialize(), None),
        Example("block-1-hash", block.block_hash, None),
    ]
    return {e.name: e for e in examples}


def to_hex(data: bytes) -> str:
    lines = [data[i : i + BYTES_PER_LINE].hex(" ") for i in range(0, len(data), BYTES_PER_LINE)]
    return "\n".join(lines)


def parse_doc(text: str) -> dict[str, bytes]:
    """Every ``Example `name``` line followed by a ```hex block; whitespace in hex is ignored."""
    found: dict[str, bytes] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = EXAMPLE_LINE.match(line)
        if not match:
            continue
        name = match.group(1)
        if name in found:
            raise ValueError(f"example {name} appears twice")
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j >= len(lines) or lines[j].strip() != HEX_FENCE:
            raise ValueError(f"example {name}: no ```hex block after line {i + 1}")
        end = lines.index("```", j + 1)
        found[name] = bytes.fromhex("".join("".join(lines[j + 1 : end]).split()))
    return found


def rewrite_doc(text: str, examples: dict[str, Example]) -> str:
    """``text`` with each named hex block replaced by the freshly built bytes."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    current: str | None = None
    while i < len(lines):
        line = lines[i]
        match = EXAMPLE_LINE.match(line)
        if match:
            current = match.group(1)
        if line.strip() == HEX_FENCE and current is not None:
            end = lines.index("```", i + 1)
            out += [line, to_hex(examples[current].data), "```"]
            i = end + 1
            current = None
            continue
        out.append(line)
        i += 1
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help="refresh the hex blocks in protocol.md")
    args = parser.parse_args()
    examples = build_examples()
    if args.write:
        PROTOCOL_MD.write_text(rewrite_doc(PROTOCOL_MD.read_text(), examples))
        print(f"rewrote {len(parse_doc(PROTOCOL_MD.read_text()))} examples in {PROTOCOL_MD}")
        return 0
    for e in examples.values():
        print(f"Example `{e.name}` ({len(e.data)} bytes):\n\n{HEX_FENCE}\n{to_hex(e.data)}\n```\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
