"""What happened in a simulation, one line per event, in simulated time.

Lines come from the scenario's own actions (mine, send, partition, crash...) and from the
nodes' log events that tell the story (blocks mined and accepted, reorganisations, peers
connecting and leaving, transactions accepted). Node ids and hashes are shortened and node
ids replaced by node names, so a timeline reads well and is byte-for-byte comparable between
runs of one seed.
"""

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

# Log events that go into the timeline; the rest stay in the nodes' logs.
TIMELINE_EVENTS: Final = frozenset(
    {
        "block_mined",
        "block_accepted",
        "chain_reorganized",
        "peer_connected",
        "peer_disconnected",
        "peer_banned",
        "tx_accepted",
        "tx_dropped",
        "block_rejected",
        "sync_stalled",
        "sync_undelivered",
        "node_started",
        "node_stopped",
    }
)
# Shown without --verbose: what a reader wants first. The rest (one line per node for every
# block and transaction) is recorded all the same and part of the determinism check.
MAJOR_EVENTS: Final = frozenset(
    {
        "block_mined",
        "chain_reorganized",
        "peer_banned",
        "tx_dropped",
        "block_rejected",
        "sync_stalled",
        "sync_undelivered",
    }
)
SHORT: Final = 8  # hex digits of a hash shown


@dataclass(frozen=True)
class Line:
    at: float
    who: str
    text: str
    major: bool

    def render(self) -> str:
        return f"{self.at:10.3f}  {self.who:<5} {self.text}"


def short(value: object) -> str:
    text = value.hex() if isinstance(value, bytes) else str(value)
    return text[:SHORT]


class Timeline:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.lines: list[Line] = []
        self.names: dict[str, str] = {}  # node id -> node name

    def add(self, who: str, text: str, major: bool = True) -> None:
        self.lines.append(Line(self._clock(), who, text, major))

    def name(self, node_id: object) -> str:
        if node_id is None:
            return "-"
        return self.names.get(str(node_id), short(node_id))

    def log_event(self, who: str, event: Mapping[str, Any]) -> None:
        kind = event["event"]
        text = self._describe(kind, event)
        if text is not None:
            self.add(who, text, kind in MAJOR_EVENTS)

    def _describe(self, kind: str, e: Mapping[str, Any]) -> str | None:
        peer = e.get("peer")
        via = f" from {self.name(peer)}" if peer else ""
        if kind == "block_mined":
            return f"mined block {e['height']} {short(e['hash'])} ({e['txs']} txs)"
        if kind == "block_accepted":
            return f"block {e['height']} {short(e['hash'])}{via}"
        if kind == "chain_reorganized":
            return f"reorg depth {e['depth']}: {short(e['old_tip'])} -> {short(e['new_tip'])}"
        if kind == "peer_connected":
            return f"connected {self.name(peer)} ({e['direction']})"
        if kind == "peer_disconnected":
            return f"disconnected {self.name(peer)} ({e['reason']})"
        if kind == "peer_banned":
            return f"BANNED {self.name(peer)} ({e['reason']})"
        if kind == "tx_accepted":
            return f"tx {short(e['txid'])} accepted{via}"
        if kind == "tx_dropped":
            return f"tx {short(e['txid'])} dropped ({e['reason']})"
        if kind == "block_rejected":
            return f"REJECTED block {short(e['hash'])} ({e['reason']}){via}"
        if kind == "sync_stalled":
            return f"sync stalled with {self.name(peer)}"
        if kind == "sync_undelivered":
            return f"{self.name(peer)} claimed more work than it delivered"
        if kind == "node_started":
            return f"started at height {e['height']} tip {short(e['tip'])}"
        if kind == "node_stopped":
            return f"stopped at height {e['height']} tip {short(e['tip'])}"
        return None

    def render(self, verbose: bool = True) -> list[str]:
        return [line.render() for line in self.lines if verbose or line.major]

    def digest(self) -> str:
        """SHA-256 of the full timeline: equal digests, equal runs."""
        h = hashlib.sha256()
        for line in self.lines:
            h.update(line.render().encode() + b"\n")
        return h.hexdigest()
