"""Field validation of every payload: each bad value is a ProtocolError naming its field."""

from typing import Any

import pytest

from trionode.wire.errors import BAD_FIELD, MISSING_FIELD, ProtocolError
from trionode.wire.messages import MESSAGE_TYPES, Hello, Message, PeerDiscovery, PeerInfo, RequestChain

from .factories import BLOCK, TX, one_of_each

VALID = {m.TYPE: m for m in one_of_each()}

NOT_INT: list[Any] = [None, True, False, 1.5, "1", b"\x01", [1], {"a": 1}]
NOT_UINT = [*NOT_INT, -1]
NOT_BOOL: list[Any] = [None, 0, 1, 1.5, "true", b"\x01", [], {}]
NOT_HASH: list[Any] = [
    None,
    1,
    True,
    b"\x00" * 32,
    [],
    {},
    "",
    "ab" * 31,
    "ab" * 33,
    "AB" * 32,
    "g" * 64,
    "0x" + "ab" * 31,
    " " + "a" * 63,
    "a" * 63 + "\n",
    "ab" * 31 + "a b",
]
NOT_NODE_ID: list[Any] = [
    None,
    1,
    b"\x00" * 16,
    "",
    "ab" * 15,
    "ab" * 17,
    "AB" * 16,
    "g" * 32,
    " " + "a" * 31,
    "ab" * 32,
]
NOT_WORK: list[Any] = [
    None,
    0,
    1,
    True,
    b"\x01",
    "",
    "0x1",
    "A",
    "g",
    "-1",
    "+1",
    " 1",
    "1_0",
    "1" * 65,
    ["1"],
]
NOT_TIME: list[Any] = [None, True, "1", b"1", -1, -0.5, float("nan"), float("inf"), float("-inf"), [], {}]


def not_str(max_chars: int) -> list[Any]:
    return [None, 1, True, 1.5, b"x", [], {}, "x" * (max_chars + 1)]


# (type, field, bad values): every top-level field of every payload.
CASES: list[tuple[str, str, list[Any]]] = [
    ("Hello", "version", NOT_INT),
    ("Hello", "network", NOT_HASH),
    ("Hello", "node_id", NOT_NODE_ID),
    ("Hello", "listen_port", [*NOT_UINT, 65536]),
    ("Hello", "height", NOT_UINT),
    ("Hello", "tip", NOT_HASH),
    ("Hello", "work", NOT_WORK),
    ("Hello", "agent", not_str(64)),
    ("Hello", "key", [*NOT_HASH, "ab" * 31]),
    ("Hello", "challenge", [*NOT_NODE_ID, "ab" * 15]),
    ("HelloProof", "signature", [None, 1, b"x" * 64, "ab" * 63, "ab" * 65, "AB" * 64, "g" * 128]),
    ("NewTransaction", "tx", [None, 1, "x", {}, [], TX.to_wire()[:5], [*TX.to_wire(), 1]]),
    ("NewBlock", "block", [None, 1, "x", {}, [], BLOCK.to_wire()[:1], [*BLOCK.to_wire(), []]]),
    ("RequestChain", "locator", [None, 1, "x", {}, b"", ["ab" * 32] * 102]),
    ("RequestChain", "limit", [*NOT_UINT, 0, 501]),
    ("ResponseChain", "blocks", [None, 1, "x", {}, b"", [BLOCK.to_wire()] * 501]),
    ("PeerDiscovery", "request", NOT_BOOL),
    (
        "PeerDiscovery",
        "peers",
        [None, 1, "x", {}, b"", [VALID["PeerDiscovery"].to_payload()["peers"][0]] * 1001],
    ),
    ("Heartbeat", "node_id", NOT_NODE_ID),
    ("Heartbeat", "height", NOT_UINT),
    ("Heartbeat", "tip", NOT_HASH),
    ("Heartbeat", "work", NOT_WORK),
    ("Heartbeat", "nonce", NOT_UINT),
    ("Heartbeat", "echo", NOT_BOOL),
    ("Error", "code", not_str(64)),
    ("Error", "reason", not_str(1024)),
]


def payload_of(type_name: str) -> dict[str, Any]:
    return VALID[type_name].to_payload()


def assert_error(type_name: str, payload: dict[Any, Any], code: str, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        MESSAGE_TYPES[type_name].from_payload(payload)
    assert (info.value.code, info.value.field) == (code, field)
    assert field in str(info.value)


@pytest.mark.parametrize("message", one_of_each(), ids=lambda m: m.TYPE)
def test_valid_payload_round_trips(message: Message) -> None:
    again = type(message).from_payload(message.to_payload())
    assert again.to_payload() == message.to_payload()
    assert type(again) is type(message)


@pytest.mark.parametrize("message", one_of_each(), ids=lambda m: m.TYPE)
def test_unknown_fields_are_ignored(message: Message) -> None:
    payload = {**message.to_payload(), "zz_future": [1, {"x": b"y"}], "another": None}
    assert type(message).from_payload(payload).to_payload() == message.to_payload()


@pytest.mark.parametrize(("type_name", "field"), [(t, f) for t, f, _ in CASES])
def test_missing_field(type_name: str, field: str) -> None:
    payload = payload_of(type_name)
    del payload[field]
    assert_error(type_name, payload, MISSING_FIELD, f"payload.{field}")


@pytest.mark.parametrize(
    ("type_name", "field", "value"),
    [(t, f, v) for t, f, values in CASES for v in values],
    ids=lambda x: repr(x)[:20],
)
def test_bad_field_value(type_name: str, field: str, value: Any) -> None:
    payload = payload_of(type_name)
    payload[field] = value
    assert_error(type_name, payload, BAD_FIELD, f"payload.{field}")


def test_boundary_values_are_accepted() -> None:
    hello = payload_of("Hello")
    for key, value in [("listen_port", 0), ("listen_port", 65535), ("height", 2**64 - 1), ("version", -5)]:
        assert getattr(Hello.from_payload({**hello, key: value}), key) == value
    assert Hello.from_payload({**hello, "work": "f" * 64}).work == 2**256 - 1
    assert Hello.from_payload({**hello, "work": "000a"}).work == 10
    assert Hello.from_payload({**hello, "agent": "é" * 64}).agent == "é" * 64
    chain = RequestChain.from_payload({"locator": ["ab" * 32] * 101, "limit": 1})
    assert len(chain.locator) == 101
    assert RequestChain.from_payload({"locator": [], "limit": 500}).locator == []


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda tx: tx.__setitem__(2, -1), "payload.tx.amount"),
        (lambda tx: tx.__setitem__(2, 2**63), "payload.tx.amount"),
        (lambda tx: tx.__setitem__(3, "1"), "payload.tx.nonce"),
        (lambda tx: tx.__setitem__(0, b"\x00" * 31), "payload.tx.sender"),
        (lambda tx: tx.__setitem__(0, "other"), "payload.tx.sender"),
        (lambda tx: tx.__setitem__(1, "ab" * 10), "payload.tx.recipient"),
        (lambda tx: tx.__setitem__(5, b"\x00" * 63), "payload.tx.signature"),
        (lambda tx: tx.__setitem__(4, 1.0), "payload.tx.timestamp"),
    ],
)
def test_transaction_fields_are_named(mutate: Any, field: str) -> None:
    tx = TX.to_wire()
    mutate(tx)
    assert_error("NewTransaction", {"tx": tx}, BAD_FIELD, field)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b[0].__setitem__(6, -1), "payload.block.header.nonce"),
        (lambda b: b[0].__setitem__(2, b"\x00"), "payload.block.header.prev_hash"),
        (lambda b: b[0].__setitem__(0, 2**32), "payload.block.header.version"),
        (lambda b: b[0].pop(), "payload.block.header"),
        (lambda b: b.__setitem__(1, {}), "payload.block.txs"),
        (lambda b: b[1][1].__setitem__(2, "x"), "payload.block.txs[1].amount"),
        (lambda b: b[1].__setitem__(0, None), "payload.block.txs[0]"),
    ],
)
def test_block_fields_are_named(mutate: Any, field: str) -> None:
    block = BLOCK.to_wire()
    mutate(block)
    assert_error("NewBlock", {"block": block}, BAD_FIELD, field)


def test_response_chain_names_the_block() -> None:
    blocks = [BLOCK.to_wire(), BLOCK.to_wire()]
    blocks[1][1][0][3] = True
    assert_error("ResponseChain", {"blocks": blocks}, BAD_FIELD, "payload.blocks[1].txs[0].nonce")


def test_locator_entries_are_named() -> None:
    assert_error(
        "RequestChain", {"locator": ["ab" * 32, "AB" * 32], "limit": 5}, BAD_FIELD, "payload.locator[1]"
    )


PEER = PeerInfo("127.0.0.1:5002", bytes(16), 5.0).to_wire()


@pytest.mark.parametrize(
    ("entry", "code", "field"),
    [
        (None, BAD_FIELD, "payload.peers[1]"),
        ([], BAD_FIELD, "payload.peers[1]"),
        ({**PEER, "address": "localhost"}, BAD_FIELD, "payload.peers[1].address"),
        ({**PEER, "address": "::1:5001"}, BAD_FIELD, "payload.peers[1].address"),
        ({**PEER, "address": "host:0"}, BAD_FIELD, "payload.peers[1].address"),
        ({**PEER, "address": "a" * 250 + ".com:1"}, BAD_FIELD, "payload.peers[1].address"),
        ({**PEER, "address": 5}, BAD_FIELD, "payload.peers[1].address"),
        ({**PEER, "node_id": "AB" * 16}, BAD_FIELD, "payload.peers[1].node_id"),
        ({**PEER, "last_seen": "now"}, BAD_FIELD, "payload.peers[1].last_seen"),
        (
            {"address": PEER["address"], "node_id": PEER["node_id"]},
            MISSING_FIELD,
            "payload.peers[1].last_seen",
        ),
        ({"address": PEER["address"], "last_seen": 1.0}, MISSING_FIELD, "payload.peers[1].node_id"),
        ({"node_id": PEER["node_id"], "last_seen": 1.0}, MISSING_FIELD, "payload.peers[1].address"),
    ],
)
def test_peer_entries_are_checked(entry: Any, code: str, field: str) -> None:
    assert_error("PeerDiscovery", {"request": False, "peers": [PEER, entry]}, code, field)


def test_peer_entries_ignore_unknown_keys_and_accept_int_time() -> None:
    msg = PeerDiscovery.from_payload({"request": True, "peers": [{**PEER, "last_seen": 7, "extra": 1}]})
    assert msg.peers == [PeerInfo("127.0.0.1:5002", bytes(16), 7.0)]
    assert isinstance(msg.peers[0].last_seen, float)


def test_error_may_carry_addresses_to_try_instead() -> None:
    from trionode.wire.payloads import Error, PeerInfo

    peers = (PeerInfo("10.0.0.2:5001", bytes(range(16)), 1_800_000_000.0),)
    refusal = Error("too_many_peers", "no inbound slots free", peers)
    payload = refusal.to_payload()
    assert payload["peers"] == [peers[0].to_wire()]
    assert Error.from_payload(payload) == refusal
    assert "peers" not in Error("banned", "x").to_payload()  # optional: absent when empty
    with pytest.raises(ProtocolError) as bad:
        Error.from_payload({"code": "too_many_peers", "reason": "", "peers": [{"address": "nope"}]})
    assert bad.value.field.startswith("payload.peers[0]")
