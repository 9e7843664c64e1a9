"""Misbehaviour scores and bans, persisted in bans.json so they survive restarts.

A peer's offences add points (protocol.md, "Misbehaviour"); at ``BAN_SCORE`` it is banned for
``ban_time``. Bans key on the peer's IP address, except on loopback, where they key on its
node id: many local processes share 127.0.0.1, and one bad one must not cut a local network
apart. An offence before the handshake on loopback has no node id to blame: it only
disconnects.

Saving never raises: a ban is decided while a peer's offence is handled, and a full or
read-only disk must not turn one peer's bad frame into a crash of the node. A failed write is
logged (``state_file_write_failed``), the bans stay in force in memory, and the next save
writes them all.
"""

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from trionode import data_files
from trionode.atomic_file import write_atomic

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

# Bitcoin Core's discouragement threshold: one invalid block, or several lesser offences.
BAN_SCORE: Final = 100
# Misbehaviour points (protocol.md, "Misbehaviour"); 100 bans.
POINTS_PROTOCOL: Final = 34  # malformed or oversized frame, message out of order
POINTS_INVALID_BLOCK: Final = 100
POINTS_FUTURE_BLOCK: Final = 20  # a block over 2 h ahead of our clock: maybe just a fast clock
POINTS_INVALID_TX: Final = 20  # forged signature, malformed transaction
POINTS_UNDELIVERED: Final = 20  # claimed more work than it delivered
# Bounded memory for scores of peers that have not (yet) been banned.
MAX_SCORES: Final = 10_000


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def ban_key(host: str, node_id: str | None) -> str | None:
    """What a ban applies to; None when nothing can fairly be blamed (loopback, no node id)."""
    if is_loopback(host):
        return f"node:{node_id}" if node_id else None
    return f"ip:{host.strip('[]')}"


@dataclass
class Ban:
    until: float  # UNIX seconds
    reason: str


class BanList:
    def __init__(self, path: Path | None, ban_time: float, log: "FilteringBoundLogger | None" = None) -> None:
        self.path = path
        self.ban_time = ban_time
        self.log = log  # for failed saves
        self.bans: dict[str, Ban] = {}
        self.scores: dict[str, int] = {}
        self.unsaved = False  # the last save failed: bans.json is behind the bans in memory

    def load(self, now: float) -> list[str]:
        if self.path is None or not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text())
            for key, raw in dict(data).items():
                ban = Ban(float(raw["until"]), str(raw.get("reason", "")))
                if ban.until > now:
                    self.bans[str(key)] = ban
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            return [f"{self.path}: unreadable, starting with no bans: {exc}"]
        return []

    def save(self) -> bool:
        """Write bans.json; False (logged, never raised) if it could not be written."""
        if self.path is None:
            return True
        data = {k: {"until": b.until, "reason": b.reason} for k, b in sorted(self.bans.items())}
        try:
            write_atomic(self.path, (json.dumps(data, indent=2) + "\n").encode(), mode=0o644)
        except OSError as exc:
            self.unsaved = True
            if self.log is not None:
                self.log.error("state_file_write_failed", file=data_files.BANS, detail=str(exc))
            return False
        self.unsaved = False
        return True

    def retry_save(self) -> None:
        """Save again if the last save failed (for a periodic saver)."""
        if self.unsaved:
            self.save()

    def banned_until(self, key: str | None, now: float) -> float | None:
        if key is None:
            return None
        ban = self.bans.get(key)
        if ban is None:
            return None
        if ban.until <= now:
            del self.bans[key]
            self.save()
            return None
        return ban.until

    def penalize(self, key: str | None, points: int, reason: str, now: float) -> float | None:
        """Add points; returns the ban's end if this offence bans the key."""
        if key is None or points <= 0:
            return None
        score = self.scores.pop(key, 0) + points
        if score < BAN_SCORE:
            self.scores[key] = score
            if len(self.scores) > MAX_SCORES:
                del self.scores[next(iter(self.scores))]
            return None
        until = now + self.ban_time
        self.bans[key] = Ban(until, reason)
        self.save()
        return until

    def unban(self, key: str) -> bool:
        found = self.bans.pop(key, None) is not None
        if found:
            self.save()
        return found
