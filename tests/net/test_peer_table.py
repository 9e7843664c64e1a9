"""PeerTable and peers.json: what a node knows of its peers when it starts."""

import json
from pathlib import Path

from trionode.net.peers import PeerRecord, PeerTable

NOW = 1_800_000_000.0
IN_PEER = "ab" * 16
OUT_PEER = "cd" * 16


def test_every_peer_is_loaded_disconnected_whatever_peers_json_says(tmp_path: Path) -> None:
    # What a node killed while connected leaves behind: the last periodic save says "connected".
    path = tmp_path / "peers.json"
    saved = {
        OUT_PEER: {"address": "10.0.0.2:5001", "last_seen": NOW - 30, "connected": True, "height": 7},
        IN_PEER: {"address": None, "last_seen": NOW - 10, "connected": True, "direction": "inbound"},
    }
    path.write_text(json.dumps(saved))
    table = PeerTable(path)
    assert table.load(NOW) == []
    assert set(table.records) == {IN_PEER, OUT_PEER}
    assert [r.connected for r in table.records.values()] == [False, False]
    # The rest of each entry is kept: only the live state is reset.
    assert table.records[OUT_PEER].address == "10.0.0.2:5001"
    assert table.records[OUT_PEER].height == 7
    assert table.records[IN_PEER].direction == "inbound"
    assert table.records[IN_PEER].last_seen == NOW - 10


def test_a_connected_peer_saved_and_reloaded_comes_back_disconnected(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    before = PeerTable(path)
    before.load(NOW)
    before.seen(OUT_PEER, "10.0.0.2:5001", NOW).connected = True
    before.save()
    assert json.loads(path.read_text())[OUT_PEER]["connected"] is True
    after = PeerTable(path)
    assert after.load(NOW + 60) == []
    assert after.records[OUT_PEER] == PeerRecord(OUT_PEER, "10.0.0.2:5001", NOW, connected=False)
