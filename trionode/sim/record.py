"""What one simulated run has seen: its timeline, its violations, its counters, and the
transactions created and accepted that the invariants check at the end.

One place for it because everything writes here: the scenario's own actions, the node
lifecycle, the settling loop, and every node's log (``Record.on_log`` reads each log event as
it happens: counts blocks, reorganisations and acceptances, notes which node holds which
transaction and which it turned away by policy, and makes a violation of an error-level event
and of every sign that an honest peer was found misbehaving: a ban, a rejected block, a
protocol violation, a penalised transaction, undelivered work).
"""

import traceback
from pathlib import Path
from typing import Any, Final

import trio

from trionode.chain.transaction import Transaction
from trionode.node.intake import PENALISED_TX
from trionode.sim import invariants
from trionode.sim.timeline import TIMELINE_EVENTS, Timeline

# Log events that say a peer misbehaved: each costs it misbehaviour points or a ban, and no
# node of the simulation is anything but honest (a ``tx_rejected`` counts when its reason is
# penalised: ``PENALISED_TX``).
PEER_FAULTS: Final = frozenset({"peer_banned", "block_rejected", "protocol_violation", "sync_undelivered"})


class Record:
    def __init__(self) -> None:
        self.timeline = Timeline(trio.current_time)
        self.violations: list[str] = []
        self.created: dict[bytes, Transaction] = {}
        self.accepted: dict[bytes, float] = {}  # txid -> first acceptance (simulated time)
        # node name -> the txids it accepted (logged, or a submission that returned), since
        # it last started: what its mempool holds unless it confirmed or dropped them
        self.held: dict[str, set[bytes]] = {}
        self.dropped_at: dict[bytes, set[str]] = {}  # txid -> nodes that logged tx_dropped
        # A wallet's send whose nonce was that of a transaction the sending node had held,
        # neither confirmed nor dropped: (node, that earlier txid, the new txid). Either the
        # node lost it, or it dropped it without saying so yet (invariants.check_reuses).
        self.reuses: list[tuple[str, bytes, bytes]] = []
        self.stats: dict[str, Any] = {
            "blocks_mined": 0,
            "reorgs": 0,
            "max_reorg": 0,
            "txs_accepted": 0,
            "crashes": 0,
            "crashes_called_off": 0,
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
        if kind in ("tx_accepted", "tx_readmitted"):  # (readmitted: logged at debug for now)
            self.accept(who, bytes.fromhex(event["txid"]))
            self.stats["txs_accepted"] += kind == "tx_accepted"
        elif kind == "tx_dropped":
            txid = bytes.fromhex(event["txid"])
            self.turned_away.setdefault(txid, set()).add(who)
            self.dropped_at.setdefault(txid, set()).add(who)
        elif kind == "tx_rejected":
            if event.get("reason") in invariants.RACES:
                self.turned_away.setdefault(bytes.fromhex(event["txid"]), set()).add(who)
            if event.get("peer") and event.get("reason") in PENALISED_TX:
                self.violation(f"{who}: penalised tx_rejected {_fields(event)}")
        elif kind == "block_mined":
            self.stats["blocks_mined"] += 1
        elif kind == "chain_reorganized":
            self.stats["reorgs"] += 1
            self.stats["max_reorg"] = max(self.stats["max_reorg"], event["depth"])
        elif kind in PEER_FAULTS:
            self.stats["bans"] += kind == "peer_banned"
            self.violation(f"{who}: {kind} {_fields(event)}")
        if kind in TIMELINE_EVENTS:
            self.timeline.log_event(who, event)

    def accept(self, who: str, txid: bytes) -> None:
        """``who`` accepted ``txid`` into its mempool (logged it, or took it from a wallet)."""
        self.accepted.setdefault(txid, trio.current_time())
        self.held.setdefault(who, set()).add(txid)


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
