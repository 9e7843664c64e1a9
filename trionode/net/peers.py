"""The peer table: every node we have been connected to, keyed by node id, and peers.json.

A record holds the address the peer *listens* on (from its Hello: its host as we see it plus
its ``listen_port``), never its ephemeral source port, so the table can be redialled after a
restart. peers.json is rewritten atomically and at most every ``SAVE_DEBOUNCE`` seconds, so a
busy node does not rewrite it per message; at start every peer is loaded as disconnected.

Stale cleanup counts a peer's time unseen only while this node runs: after a week switched
off, the table is still worth redialling, and a peer leaves it only once it stays away for
``peer_timeout`` of our running time.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from trionode.atomic_file import write_atomic
from trionode.wire.addresses import parse_address

# Rewrite peers.json at most this often: bounded disk traffic, at most 5 s of table lost.
SAVE_DEBOUNCE: Final = 5.0
# A table larger than this drops its oldest disconnected peers: bounded memory and file.
MAX_RECORDS: Final = 2_000


@dataclass
class PeerRecord:
    node_id: str
    address: str | None  # host:port it accepts connections on; None if it does not listen
    last_seen: float  # UNIX seconds of the last message
    connected: bool = False
    height: int = 0
    work: int = 0
    tip: str = ""
    direction: str = ""  # "inbound" | "outbound" of the current or last connection
    rtt: float | None = None  # seconds, last heartbeat round trip
    misbehaviour: int = 0
    agent: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["work"] = self.work
        return data


class PeerTable:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.records: dict[str, PeerRecord] = {}
        self.dirty = False
        # When the table was loaded (UNIX seconds): no record counts as unseen before it.
        self.loaded_at = 0.0

    def load(self, now: float) -> list[str]:
        """Read peers.json, every peer marked disconnected; returns warnings (never raises)."""
        self.loaded_at = now
        if self.path is None or not self.path.exists():
            return []
        warnings: list[str] = []
        try:
            data = json.loads(self.path.read_text())
            for node_id, raw in dict(data).items():
                problem = _entry_problem(str(node_id), raw)
                if problem is not None:
                    warnings.append(f"{self.path}: peer {node_id!r} skipped: {problem}")
                    continue
                record = PeerRecord(
                    node_id=str(node_id),
                    address=None if raw.get("address") is None else str(raw["address"]),
                    last_seen=float(raw.get("last_seen", 0.0)),
                    height=int(raw.get("height", 0)),
                    work=int(raw.get("work", 0)),
                    tip=str(raw.get("tip", "")),
                    direction=str(raw.get("direction", "")),
                    misbehaviour=int(raw.get("misbehaviour", 0)),
                    agent=str(raw.get("agent", "")),
                )
                self.records[record.node_id] = record
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            return [f"{self.path}: unreadable, starting with an empty peer table: {exc}"]
        return warnings

    def save(self) -> None:
        if self.path is None:
            return
        data = {node_id: rec.to_json() for node_id, rec in sorted(self.records.items())}
        write_atomic(self.path, (json.dumps(data, indent=2) + "\n").encode(), mode=0o644)
        self.dirty = False

    def seen(self, node_id: str, address: str | None, now: float) -> PeerRecord:
        record = self.records.get(node_id)
        if record is None:
            record = self.records[node_id] = PeerRecord(node_id, address, now)
            self._trim()
        elif address is not None:
            record.address = address
        record.last_seen = now
        self.dirty = True
        return record

    def remove_stale(self, now: float, timeout: float) -> list[PeerRecord]:
        """The seed's stale cleanup: disconnected peers unseen for ``timeout`` (of this node's
        running time) leave the table."""
        since = self.loaded_at
        stale = [
            r for r in self.records.values() if not r.connected and now - max(r.last_seen, since) > timeout
        ]
        for record in stale:
            del self.records[record.node_id]
        if stale:
            self.dirty = True
        return stale

    def _trim(self) -> None:
        if len(self.records) <= MAX_RECORDS:
            return
        idle = sorted((r for r in self.records.values() if not r.connected), key=lambda r: r.last_seen)
        for record in idle[: len(self.records) - MAX_RECORDS]:
            del self.records[record.node_id]

    def listen_addresses(self) -> set[str]:
        return {r.address for r in self.records.values() if r.address}


def _entry_problem(node_id: str, raw: object) -> str | None:
    """Why a peers.json entry cannot be used (edited by hand, or damaged), or None."""
    if len(node_id) != 32 or node_id.strip("0123456789abcdef"):
        return "the node id is not 32 lowercase hex digits"
    if not isinstance(raw, dict):
        return "not an object"
    address = raw.get("address")
    if address is not None:
        try:
            parse_address(str(address), allow_zone=True)
        except ValueError as exc:
            return f"address {address!r}: {exc}"
    return None
