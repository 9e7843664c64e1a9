"""BanList: misbehaviour points, bans and bans.json (protocol.md 8.5)."""

import json
from pathlib import Path

import pytest

from trionode.net.bans import (
    BAN_SCORE,
    MAX_SCORES,
    POINTS_INVALID_BLOCK,
    POINTS_INVALID_TX,
    POINTS_PROTOCOL,
    POINTS_UNDELIVERED,
    BanList,
    ban_key,
    is_loopback,
)

NOW = 1_800_000_000.0
DAY = 86_400.0
PEER = "ab" * 16


@pytest.mark.parametrize("host", ["127.0.0.1", "127.9.8.7", "::1", "[::1]", "localhost"])
def test_loopback_bans_key_on_the_node_id(host: str) -> None:
    assert is_loopback(host)
    assert ban_key(host, PEER) == f"node:{PEER}"
    # Before the handshake there is no node id: nothing can fairly be blamed.
    assert ban_key(host, None) is None


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("10.0.0.7", "ip:10.0.0.7"),
        ("192.168.1.10", "ip:192.168.1.10"),
        ("2001:db8::1", "ip:2001:db8::1"),
        ("[2001:db8::1]", "ip:2001:db8::1"),
        ("example.org", "ip:example.org"),
    ],
)
def test_other_addresses_ban_key_on_the_ip_whatever_the_node_id(host: str, key: str) -> None:
    assert not is_loopback(host)
    assert ban_key(host, PEER) == key
    assert ban_key(host, None) == key  # an IP can be blamed before the handshake


def test_points_add_up_to_a_ban_at_100() -> None:
    bans = BanList(None, DAY)
    key = "ip:10.0.0.7"
    assert bans.penalize(key, POINTS_PROTOCOL, "protocol_error:bad_msgpack", NOW) is None
    assert bans.penalize(key, POINTS_PROTOCOL, "protocol_error:bad_msgpack", NOW) is None
    assert bans.banned_until(key, NOW) is None
    until = bans.penalize(key, POINTS_PROTOCOL, "protocol_error:not_a_map", NOW + 5)
    assert until == NOW + 5 + DAY  # 3 x 34 = 102
    assert bans.banned_until(key, NOW + 6) == until
    assert bans.bans[key].reason == "protocol_error:not_a_map"


def test_documented_point_values() -> None:
    assert BAN_SCORE == 100
    assert (POINTS_PROTOCOL, POINTS_INVALID_BLOCK, POINTS_INVALID_TX, POINTS_UNDELIVERED) == (34, 100, 20, 20)
    bans = BanList(None, DAY)
    assert bans.penalize("ip:10.0.0.1", POINTS_INVALID_BLOCK, "invalid_block:bad_pow", NOW) is not None
    for _ in range(4):
        assert bans.penalize("ip:10.0.0.2", POINTS_INVALID_TX, "invalid_tx:bad_signature", NOW) is None
    assert bans.penalize("ip:10.0.0.2", POINTS_INVALID_TX, "invalid_tx:bad_signature", NOW) is not None


def test_keys_are_scored_separately_and_nothing_is_scored_without_a_key() -> None:
    bans = BanList(None, DAY)
    assert bans.penalize("node:" + "01" * 16, 99, "x", NOW) is None
    assert bans.penalize("node:" + "02" * 16, 99, "x", NOW) is None
    assert bans.penalize(None, 1_000, "pre-handshake on loopback", NOW) is None
    assert bans.penalize("ip:10.0.0.1", 0, "nothing", NOW) is None
    assert bans.penalize("ip:10.0.0.1", -5, "nothing", NOW) is None
    assert bans.bans == {}
    assert bans.banned_until(None, NOW) is None


def test_ban_expires_and_the_score_starts_again_from_zero(tmp_path: Path) -> None:
    bans = BanList(tmp_path / "bans.json", 3_600)
    key = "ip:10.0.0.7"
    until = bans.penalize(key, 100, "invalid_block:bad_pow", NOW)
    assert until == NOW + 3_600
    assert bans.banned_until(key, until - 0.001) == until
    assert bans.banned_until(key, until) is None  # over at its end
    assert key not in bans.bans
    assert json.loads((tmp_path / "bans.json").read_text()) == {}  # the expiry is saved
    assert bans.penalize(key, 34, "protocol_error:bad_msgpack", until + 1) is None


def test_bans_survive_a_restart_through_bans_json(tmp_path: Path) -> None:
    path = tmp_path / "bans.json"
    bans = BanList(path, DAY)
    bans.penalize("node:" + PEER, 100, "invalid_block:bad_merkle_root", NOW)
    bans.penalize("ip:10.0.0.7", 100, "invalid_tx:bad_signature", NOW - DAY + 10)
    on_disk = json.loads(path.read_text())
    assert on_disk["node:" + PEER] == {"until": NOW + DAY, "reason": "invalid_block:bad_merkle_root"}
    restarted = BanList(path, DAY)
    assert restarted.load(NOW + 20) == []
    assert restarted.banned_until("node:" + PEER, NOW + 20) == NOW + DAY
    assert "ip:10.0.0.7" not in restarted.bans  # ended while the node was down


def test_missing_or_unreadable_bans_json_starts_empty_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "bans.json"
    assert BanList(path, DAY).load(NOW) == []
    for junk in ("{not json", "[1, 2]", '{"ip:1.2.3.4": 5}', '{"ip:1.2.3.4": {"reason": "x"}}'):
        path.write_text(junk)
        bans = BanList(path, DAY)
        warnings = bans.load(NOW)
        assert len(warnings) == 1 and str(path) in warnings[0]
        assert bans.bans == {}


def test_without_a_path_nothing_is_written(tmp_path: Path) -> None:
    bans = BanList(None, DAY)
    bans.penalize("ip:10.0.0.7", 100, "x", NOW)
    bans.save()
    assert bans.load(NOW) == []
    assert list(tmp_path.iterdir()) == []


def test_unban_lifts_a_ban_and_saves(tmp_path: Path) -> None:
    bans = BanList(tmp_path / "bans.json", DAY)
    bans.penalize("ip:10.0.0.7", 100, "x", NOW)
    assert bans.unban("ip:10.0.0.7") is True
    assert bans.unban("ip:10.0.0.7") is False
    assert json.loads((tmp_path / "bans.json").read_text()) == {}
    assert bans.banned_until("ip:10.0.0.7", NOW) is None


def test_scores_of_unbanned_peers_are_bounded() -> None:
    bans = BanList(None, DAY)
    for i in range(MAX_SCORES + 500):
        bans.penalize(f"ip:10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 1, "x", NOW)
    assert len(bans.scores) == MAX_SCORES
    assert "ip:10.0.0.0" not in bans.scores  # the oldest scores are forgotten first
