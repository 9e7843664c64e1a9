"""The heartbeat loop: a ping per peer per interval, round-trip times, dead peers dropped."""

from typing import TYPE_CHECKING, Final, NoReturn

import trio

from trionode.wire import messages as m
from trionode.wire.errors import TIMEOUT

if TYPE_CHECKING:
    from trionode.net.manager import PeerManager

# The heartbeat loop wakes this many times per interval, pinging the peers that are due.
HEARTBEAT_TICKS: Final = 10


async def heartbeat_loop(manager: "PeerManager") -> NoReturn:
    """Ping every peer once per interval; drop peers silent for 3 intervals; clean the table.

    Each peer is pinged at its own phase (one interval after it connected, then every
    interval), and the loop wakes ``HEARTBEAT_TICKS`` times per interval: a thousand peers
    are not all pinged, and do not all answer, in the same instant.
    """
    interval = manager.limits.heartbeat_interval
    tick = interval / HEARTBEAT_TICKS
    last_clean = trio.current_time()
    while True:
        await trio.sleep(tick)
        now = trio.current_time()
        for conn in list(manager.connections.values()):
            if conn.closing:
                continue
            if now - conn.last_message > 3 * interval and not conn.busy:
                conn.close("timeout", m.Error(code=TIMEOUT, reason="no message for 3 heartbeat intervals"))
                continue
            due = conn.extra.setdefault("next_ping", conn.connected_at + interval)
            if now < due:
                continue
            conn.extra["next_ping"] = max(due + interval, now)
            nonce = manager.rng_bits(63)
            conn.ping(nonce, now)
            conn.send_message(manager.heartbeat_message(nonce, False))
        if now - last_clean >= interval:
            last_clean = now
            for record in manager.table.remove_stale(manager.wall(), manager.limits.peer_timeout):
                manager.log.info("peer_forgotten", peer=record.node_id, reason="stale")
                if record.address is not None:
                    manager.candidates.forget_table_entry(record.address)
