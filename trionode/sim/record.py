"""What one simulated run has seen: its timeline, its violations, its counters, and the
transactions created and accepted that the invariants check at the end.

One place for it because everything writes here: the scenario's own actions, the node
lifecycle, the settling loop, and every node's log (``Record.on_log`` reads each log event as
it happens: counts blocks, reorganisations and acceptances, notes the transactions a node
turned away by policy, and makes an error-level event or a rejected honest block a violation).
"""

import traceback
from pathlib import Path
from typing import Any

import trio

from trionode.chain.transaction import Transaction
from trionode.sim import invariants
from trionode.sim.timeline import TIMELINE_EVENTS, Timeline


class Record:
    def __init__(self) -> None:
        self.timeline = Timeline(trio.current_time)
        self.violations: list[str] = []
        self.created: dict[bytes, Transaction] = {}
        self.accepted: dict[bytes, float] = {}  # txid -> first acceptance (simulated time)
        self.stats: dict[str, Any] = {
            "blocks_mined": 0,
            "reorgs": 0,
            "max_reorg": 0,
            "txs_accepted": 0,
            "crashes": 0,
            "partitions": 0,
            "bans": 0,
            "settle_time": 0.0,
            "drain_blocks": 0,
            "tie_breaks": 0,
            "excused_absences": 0,
        }
        # txid -> nodes that refused or dropped it by documented policy (invariants.check_mempools)
        self.turned_away: dict[bytes, set[str]] = {}

    def violation(self, text: str) -> None:
        self.violations.append(text)
        self.timeline.add("CHECK", f"VIOLATION: {text}")

    def on_log(self, who: str, event: dict[str, Any]) -> None:
        """One log event of the node named ``who``, as it is logged."""
        kind = event["event"]
        if event.get("level") in ("error", "critical"):
            self.violation(f"{who} logged an error: {kind} {_fields(event)}")
        if kind == "tx_accepted":
            self.accepted.setdefault(bytes.fromhex(event["txid"]), trio.current_time())
            self.stats["txs_accepted"] += 1
        elif (kind == "tx_rejected" and event.get("reason") in invariants.RACES) or kind == "tx_dropped":
            self.turned_away.setdefault(bytes.fromhex(event["txid"]), set()).add(who)
        elif kind == "block_mined":
            self.stats["blocks_mined"] += 1
        elif kind == "chain_reorganized":
            self.stats["reorgs"] += 1
            self.stats["max_reorg"] = max(self.stats["max_reorg"], event["depth"])
        elif kind in ("peer_banned", "block_rejected"):
            # Honest nodes never send invalid blocks, so neither can be right here.
            self.stats["bans"] += kind == "peer_banned"
            self.violation(f"{who}: {kind} {_fields(event)}")
        if kind in TIMELINE_EVENTS:
            self.timeline.log_event(who, event)


def describe_exception(exc: BaseException) -> str:
    """One line for a violation: each exception of a group, with where it was raised."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe_exception(e) for e in exc.exceptions)
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _fields(event: dict[str, Any]) -> str:
    skip = {"event", "level", "timestamp", "node_id"}
    return " ".join(f"{k}={v}" for k, v in event.items() if k not in skip)
