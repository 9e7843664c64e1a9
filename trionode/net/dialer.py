"""The dialer: keeps configured peers connected and fills outbound slots from the candidates
(configured seeds, the saved peer table, discovered addresses), with backoff on failure.

Limits (protocol.md 8.4), so that neither an inbound flood nor an address flood decides whom
we dial, or makes us dial anyone a thousand times:
- Only outbound connections count against the dial limit: established ones, handshakes and
  TCP connects in flight, within ``max_peers`` minus the inbound peers already established.
  Half-open inbound sockets have their own limit (the manager's), so they cannot stop us
  dialling, not even our seeds.
- Dials in flight count toward ``outbound_target`` like established connections.
- Addresses we did not choose (discovered, or from the peer table) are dialled at most
  ``DIAL_RATE`` a second, and at most one at a time per host; the operator's (configured
  peers, ``connect``) are exempt.
- Banned addresses are not dialled while the ban lasts.
"""

from typing import TYPE_CHECKING, Final, NoReturn

import trio

from trionode.net.candidates import OPERATOR_SOURCES, PERSISTENT_SOURCES, Candidate
from trionode.net.ratelimit import TokenBucket
from trionode.wire import messages as m
from trionode.wire.errors import ProtocolError

if TYPE_CHECKING:
    from trionode.net.manager import PeerManager

# The dialer re-checks candidates at least this often, and asks peers for addresses this
# often while short of its outbound target.
DIAL_TICK: Final = 5.0
DISCOVERY_INTERVAL: Final = 300.0
# New dials to addresses others told us: 2 a second, after a burst of 8 (a starting node
# fills its default outbound target at once). Honest discovery needs a handful of dials;
# this caps what a flood of invented addresses can make us do at a few connects a second.
DIAL_RATE: Final = 2.0
DIAL_BURST: Final = 8.0
# The shortest wait for the next dial token: a wait of zero would spin this loop.
MIN_RATE_WAIT: Final = 0.01


async def dial_loop(manager: "PeerManager") -> NoReturn:
    """Keep configured peers connected and fill outbound slots from the candidates."""
    assert manager.nursery is not None
    last_ask = trio.current_time()
    rate = TokenBucket(DIAL_BURST, DIAL_RATE, last_ask)
    while True:
        now = trio.current_time()
        rate_limited = start_due_dials(manager, rate, now)
        if manager.outbound_count < manager.limits.outbound_target and now - last_ask >= DISCOVERY_INTERVAL:
            last_ask = now
            if manager.limits.discover:
                frame = m.encode_message(
                    m.PeerDiscovery(request=True, peers=[]), manager.node_id_bytes, manager.wall()
                )
                manager.broadcast(frame, None)
        next_due = manager.candidates.next_due()
        # A candidate still due now was skipped on purpose (enough outbound peers, no room,
        # a dial to its host in flight, already connected); what changes that pokes the
        # wakeup. Waiting a full tick then, not 50 ms, keeps an idle node from waking 20
        # times a second. Only the dial rate limit has a known end: the next token.
        timeout = DIAL_TICK if next_due is None or next_due <= now else min(DIAL_TICK, next_due - now)
        if rate_limited:
            timeout = min(timeout, max(MIN_RATE_WAIT, rate.next_token(now) - now))
        await manager.dial_wakeup.wait(timeout)


def start_due_dials(manager: "PeerManager", rate: TokenBucket, now: float) -> bool:
    """Start every dial due now within the limits; True if the rate limit held one back."""
    limits = manager.limits
    connected_addresses = {c.listen_address for c in manager.connections.values()}
    outbound = manager.outbound_count + manager.outbound_pending
    # Outbound may take every slot established inbound peers leave (inbound is capped at
    # max_inbound, so at least max_peers - max_inbound are always ours).
    room = limits.max_peers - manager.inbound_count - outbound
    busy_hosts = manager.hosts_in_flight()
    for cand in manager.candidates.due(now):
        if manager.stopping or room <= 0:
            break
        if cand.address in connected_addresses or cand.address in manager.our_addresses:
            cand.connected = cand.address in connected_addresses
            continue
        if cand.node_id is not None and cand.node_id in manager.connections:
            continue
        chosen = cand.source in OPERATOR_SOURCES
        if not chosen and outbound >= limits.outbound_target:
            continue
        if cand.source not in PERSISTENT_SOURCES and not limits.discover:
            continue
        if manager.banned_until(cand.address, cand.node_id) is not None:
            manager.log.debug("dial_skipped", address=cand.address, reason="banned")
            manager.candidates.drop_unless_configured(cand.address, now)
            continue
        host = cand.host
        if not chosen:
            if host in busy_hosts:
                continue  # one dial per host at a time: we are nobody's port scanner
            if not rate.take(now):
                return True  # the rest are not chosen either (due() sorts them last)
        cand.dialling = True
        outbound += 1
        room -= 1
        busy_hosts.add(host)
        start_dial(manager, cand)
    return False


def start_dial(manager: "PeerManager", cand: Candidate) -> None:
    """Count the dial in flight now, then dial in the manager's nursery."""
    assert manager.nursery is not None
    manager.dialling[cand.address] = cand.host
    manager.nursery.start_soon(_dial_candidate, manager, cand.address)


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
    finally:
        # By now a started connection is counted among the handshakes (``dial``).
        manager.dialling.pop(address, None)
