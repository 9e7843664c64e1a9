"""Discovery: answering and learning peer addresses (PeerDiscovery, protocol.md 8.4).

After a handshake each side asks for addresses; what a peer tells us is rate-limited per
source (a token bucket, as Bitcoin Core does for addr) and becomes dial candidates when
discovery is on. The budget belongs to the source's ban key (its IP, or its node id on
loopback), kept by the manager, so reconnecting does not refill it. A newly connected peer
that accepts connections is announced to the others.
"""

from typing import TYPE_CHECKING, Final

import trio

from trionode.net.bans import ban_key, is_loopback
from trionode.net.connection import Connection
from trionode.net.ratelimit import TokenBucket
from trionode.wire import messages as m
from trionode.wire.addresses import format_address, host_of, parse_address

if TYPE_CHECKING:
    from trionode.net.manager import PeerManager

# Address rate limit per source (Bitcoin's addr token bucket): a burst of one full answer,
# then one address per 10 s; addresses beyond the budget are ignored.
ADDR_BURST: Final = 1_000.0
ADDR_RATE: Final = 0.1
# Sources whose budget is remembered; beyond it the least recently heard one is forgotten
# (and would start again from a full burst): bounded memory however many IPs flood us.
MAX_ADDRESS_BUDGETS: Final = 10_000
# We answer at most one PeerDiscovery request per peer per this many seconds.
DISCOVERY_ANSWER_EVERY: Final = 60.0
MAX_DISCOVERY_ANSWER: Final = 1_000
# Addresses sent with a too_many_peers refusal: enough to find room elsewhere.
REFUSAL_ADDRESSES: Final = 100


def on_discovery(manager: "PeerManager", conn: Connection, msg: m.PeerDiscovery) -> None:
    now = trio.current_time()
    if msg.request:
        last = conn.extra.get("answered_discovery")
        if last is None or now - last >= DISCOVERY_ANSWER_EVERY:
            conn.extra["answered_discovery"] = now
            conn.send_message(
                m.PeerDiscovery(request=False, peers=known_addresses(manager, exclude=conn.peer_id))
            )
    receive_addresses(manager, conn, msg.peers)


def source_key(conn: Connection) -> str:
    """Who told us addresses: its ban key; a local peer that never said who it is (a refusal
    before the handshake) shares its host's key with every other such peer."""
    return ban_key(conn.remote_host, conn.peer_id) or f"ip:{conn.remote_host}"


def receive_addresses(manager: "PeerManager", conn: Connection, entries: list[m.PeerInfo]) -> None:
    """Addresses from a peer (an answer, an announcement, a refusal), within its budget."""
    if not entries:
        return
    key = source_key(conn)
    now = trio.current_time()
    budgets = manager.address_budgets
    budget = budgets.pop(key, None) or TokenBucket(ADDR_BURST, ADDR_RATE, now)
    budgets[key] = budget  # (re)inserted last: the dict is oldest-heard first
    while len(budgets) > MAX_ADDRESS_BUDGETS:
        del budgets[next(iter(budgets))]
    usable = budget.take(now, len(entries))
    if len(entries) > usable:
        manager.log.debug("addresses_rate_limited", peer=conn.peer_id, ignored=len(entries) - usable)
    learn(manager, conn, entries[:usable])


def learn(manager: "PeerManager", conn: Connection, entries: list[m.PeerInfo]) -> None:
    """New dial candidates from a peer's addresses (when discovery is on)."""
    if not manager.limits.discover:
        return
    now = trio.current_time()
    wall = manager.wall()
    key = source_key(conn)
    local_source = is_loopback(conn.remote_host)
    added = 0
    for entry in entries:
        peer_id = entry.node_id.hex()
        # One peer, one spelling: "[0:0::1]:5003" and "[::1]:5003" are one candidate.
        address = format_address(*parse_address(entry.address))  # valid: the decoder checked
        if peer_id == manager.node_id or address in manager.our_addresses:
            continue
        if peer_id in manager.connections:
            continue
        host = host_of(address)
        if is_loopback(host) and not local_source:
            continue  # another machine's loopback is not ours: dialling it would probe our own host
        if manager.bans.banned_until(ban_key(host, peer_id), wall) is not None:
            continue
        if manager.candidates.add(address, "discovered", peer_id, now, learnt_from=key):
            added += 1
    if added:
        manager.log.debug("addresses_learned", peer=conn.peer_id, count=added)
        manager.dial_wakeup.poke()


def known_addresses(manager: "PeerManager", exclude: str | None) -> list[m.PeerInfo]:
    entries: list[m.PeerInfo] = []
    records = sorted(manager.table.records.values(), key=lambda r: (not r.connected, -r.last_seen))
    for record in records:
        if record.address is None or record.node_id == exclude or "%" in record.address:
            continue  # (a zone id only means something on this host)
        entries.append(
            m.PeerInfo(
                address=record.address, node_id=bytes.fromhex(record.node_id), last_seen=record.last_seen
            )
        )
        if len(entries) >= MAX_DISCOVERY_ANSWER:
            break
    return entries


def announce(manager: "PeerManager", conn: Connection) -> None:
    """Tell the other peers about a newly connected peer that accepts connections."""
    if conn.listen_address is None or conn.peer_id is None:
        return
    entry = m.PeerInfo(
        address=conn.listen_address, node_id=bytes.fromhex(conn.peer_id), last_seen=manager.wall()
    )
    frame = m.encode_message(
        m.PeerDiscovery(request=False, peers=[entry]), manager.node_id_bytes, manager.wall()
    )
    manager.broadcast(frame, None, exclude=conn)
