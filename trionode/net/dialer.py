"""The dialer: keeps configured peers connected and fills outbound slots from the candidates
(configured seeds, the saved peer table, discovered addresses), with backoff on failure."""

from typing import TYPE_CHECKING, Final, NoReturn

import trio

from trionode.net.candidates import PERSISTENT_SOURCES
from trionode.wire import messages as m
from trionode.wire.errors import ProtocolError

if TYPE_CHECKING:
    from trionode.net.manager import PeerManager

# The dialer re-checks candidates at least this often, and asks peers for addresses this
# often while short of its outbound target.
DIAL_TICK: Final = 5.0
DISCOVERY_INTERVAL: Final = 300.0


async def dial_loop(manager: "PeerManager") -> NoReturn:
    """Keep configured peers connected and fill outbound slots from the candidates."""
    assert manager.nursery is not None
    last_ask = trio.current_time()
    while True:
        now = trio.current_time()
        connected_addresses = {c.listen_address for c in manager.connections.values()}
        outbound = manager.outbound_count
        for cand in manager.candidates.due(now):
            if (
                manager.stopping
                or len(manager.connections) + len(manager.handshaking) >= manager.limits.max_peers
            ):
                break
            if cand.address in connected_addresses or cand.address in manager.our_addresses:
                cand.connected = cand.address in connected_addresses
                continue
            if cand.node_id is not None and cand.node_id in manager.connections:
                continue
            persistent = cand.source in {"config", "cli"}
            if not persistent and outbound >= manager.limits.outbound_target:
                continue
            if cand.source not in PERSISTENT_SOURCES and not manager.limits.discover:
                continue
            cand.dialling = True
            outbound += 1
            manager.nursery.start_soon(_dial_candidate, manager, cand.address)
        if manager.outbound_count < manager.limits.outbound_target and now - last_ask >= DISCOVERY_INTERVAL:
            last_ask = now
            if manager.limits.discover:
                frame = m.encode_message(
                    m.PeerDiscovery(request=True, peers=[]), manager.node_id_bytes, manager.wall()
                )
                manager.broadcast(frame, None)
        next_due = manager.candidates.next_due()
        # A candidate still due now was skipped on purpose (enough outbound peers, no room,
        # already connected); what changes that pokes the wakeup. Waiting a full tick then,
        # not 50 ms, keeps an idle node from waking 20 times a second.
        timeout = DIAL_TICK if next_due is None or next_due <= now else min(DIAL_TICK, next_due - now)
        await manager.dial_wakeup.wait(timeout)


async def _dial_candidate(manager: "PeerManager", address: str) -> None:
    try:
        await manager.dial(address)
    except OSError as exc:
        manager.log.debug("dial_failed", address=address, detail=str(exc.strerror or exc))
        manager.candidates.failed(address, trio.current_time())
        manager.dial_wakeup.poke()  # a slot is free again: another candidate may be dialled
    except ProtocolError:
        manager.candidates.forbid(address)
    except ValueError as exc:  # not an address we can dial (from peers.json or a peer): forget it
        manager.log.warning("dial_failed", address=address, detail=str(exc))
        manager.candidates.forbid(address)
