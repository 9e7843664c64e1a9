"""The documented outcomes, as assertions: how a node ends a connection, bans, or ignores."""

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.hostile.daemons import Node
from tests.hostile.encoder import COIN, Block, ChainView, Header, Key, request_chain, transaction, txid
from tests.hostile.peer import WAIT, Peer


@dataclass
class Arena:
    """A daemon and an honest observer peer: whatever the node relays reaches the observer."""

    node: Node
    observer: Peer


@dataclass
class Attacker:
    """A hostile peer with a fresh node id, the node's chain, and a key funded with 50 coins."""

    peer: Peer
    view: ChainView
    key: Key


# "At once": a refusal that needs no waiting on the peer arrives well within this.
AT_ONCE = 2.0


def established(node: Node, **kwargs: Any) -> Peer:
    """A connected peer whose handshake is complete and whose ``peer_connected`` is logged:
    a fresh node id, or ``key``'s, which may have connected before (then this connection's
    line is one more than were logged before it, not the first one)."""
    peer = node.peer(**kwargs)
    seen = len(node.matching("peer_connected", peer=peer.node_id))
    peer.handshake()
    node.wait_until(
        lambda: len(node.matching("peer_connected", peer=peer.node_id)) > seen,
        what=f"peer_connected #{seen + 1} of {peer.node_id}",
    )
    return peer


def disconnected(
    node: Node, peer: Peer, reason: str, error: str | None, within: float = AT_ONCE, occurrence: int = 1
) -> None:
    """The node closed an established ``peer`` for ``reason``, sending ``error`` first.

    ``occurrence``: which connection of this node id (the third, after two earlier ones).
    """
    took = peer.wait_closed(WAIT)
    assert took < within, f"closing took {took:.2f} s"
    events = node.wait_until(
        lambda: node.matching("peer_disconnected", peer=peer.node_id)[occurrence - 1 :],
        what=f"peer_disconnected #{occurrence} of {peer.node_id}",
    )
    event = events[0]
    assert event["reason"] == reason, event
    assert peer.errors() == ([error] if error else []), peer.errors()


def refused(
    node: Node,
    peer: Peer,
    reason: str,
    error: str | None,
    within: float = AT_ONCE,
    after_hello: bool = False,
    not_before: float = 0.0,
) -> None:
    """The node ended ``peer``'s connection before its handshake completed, ``not_before`` to
    ``within`` seconds from now.

    ``after_hello``: refusals decided on the peer's Hello (a node id ban, protocol.md 5: "after
    the handshake a node may also refuse the peer") come after the node's own Hello.
    """
    took = peer.wait_closed(WAIT)
    assert not_before <= took < within, f"closing took {took:.2f} s"
    event = node.wait_for("handshake_failed", address=peer.local)
    assert event["reason"] == reason, event
    assert peer.errors() == ([error] if error else []), peer.errors()
    if not after_hello:
        assert not peer.received("Hello"), "the node must tell a refused peer nothing but an Error"


def protocol_violation(node: Node, peer: Peer, code: str, field: str | None = None) -> None:
    """An established peer broke the protocol: Error protocol_error, close, logged with the
    cause, and 34 misbehaviour points (protocol.md 8.5: three strikes ban)."""
    disconnected(node, peer, f"protocol_error:{code}", "protocol_error")
    event = node.wait_for("protocol_violation", peer=peer.node_id)
    assert event["code"] == code, event
    if field is not None:
        assert event["field"] == field, event
    assert misbehaviour(node, peer) == 34


def banned(node: Node, peer: Peer, reason: str) -> None:
    """100 points: ``peer_banned``, Error misbehaviour, closed; the node id is refused after."""
    event = node.wait_for("peer_banned", peer=peer.node_id)
    assert event["reason"] == reason, event
    assert event["until"] > time.time() + 3600
    disconnected(node, peer, "banned", "misbehaviour")
    again = node.peer(key=peer.key)
    again.handshake()  # a node id ban is decided once the id is proven
    refused(node, again, "banned", "banned", after_hello=True)


def still_connected(node: Node, peer: Peer) -> None:
    """Not disconnected and not banned: the peer's heartbeat is still answered."""
    peer.ping()
    assert not node.matching("peer_banned", peer=peer.node_id)
    assert not node.matching("peer_disconnected", peer=peer.node_id)


def item_of(env: dict[str, Any]) -> bytes | None:
    """The block hash or txid a relayed message carries."""
    if env.get("type") == "NewBlock":
        return Header.from_wire(env["payload"]["block"][0]).hash
    if env.get("type") == "NewTransaction":
        return txid(env["payload"]["tx"])
    return None


def relayed_hashes(observer: Peer) -> set[bytes]:
    """Block hashes and txids the node relayed to ``observer`` so far."""
    items = (item_of(env) for env in observer.received("NewBlock") + observer.received("NewTransaction"))
    return {item for item in items if item is not None}


def not_relayed(observer: Peer, *items: bytes) -> None:
    """After a barrier on ``observer`` (frames to one peer leave in order), none of ``items`` came."""
    observer.ping()
    leaked = set(items) & relayed_hashes(observer)
    assert not leaked, f"relayed: {[h.hex() for h in leaked]}"


def relayed(observer: Peer, item: bytes) -> None:
    observer.wait_for(lambda env: item_of(env) == item, WAIT, f"relay of {item.hex()}")


def wait_until(probe: Callable[[], Any], timeout: float = WAIT, what: str = "condition") -> Any:
    """Poll state that has no log line (the control socket); fails loudly."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.02)


def chain_of(peer: Peer) -> ChainView:
    """The node's main chain, asked for with RequestChain like any peer would."""
    view = ChainView(peer.params)
    while True:
        n = len(peer.received("ResponseChain"))
        peer.send("RequestChain", request_chain(view.locator()))
        blocks = [Block.from_wire(raw) for raw in peer.nth("ResponseChain", n)["payload"]["blocks"]]
        for block in blocks:
            view.add(block)
        if not blocks:  # a short answer may only mean a full frame (protocol.md 4): ask on
            return view


def mine_on(
    node: Node, peer: Peer, view: ChainView, reward_to: bytes, txs: list[list[Any]] | None = None
) -> Block:
    """A valid block on ``view``'s tip, sent and accepted: pays ``reward_to`` 50 coins."""
    block = view.make_block(txs, reward_to=reward_to)
    peer.send_and_ping("NewBlock", {"block": block.wire()})
    node.wait_for("block_accepted", hash=block.hash.hex())
    view.add(block)
    return block


def honest_chain(arena: Arena, height: int) -> None:
    """Honest blocks up to ``height`` (each past the first carries a payment) and one payment
    left pending: the state a misbehaving peer must not disturb (the snapshots compare it)."""
    miner = established(arena.node)
    view = chain_of(miner)
    payer = Key()
    mine_on(arena.node, miner, view, payer.address)
    nonce = 0
    while view.height < height:
        payment = transaction(payer, view.params.network, os.urandom(20), COIN, nonce)
        mine_on(arena.node, miner, view, os.urandom(20), [payment])
        nonce += 1
    miner.close()
    pending = transaction(payer, view.params.network, os.urandom(20), COIN, nonce)
    arena.observer.send("NewTransaction", {"tx": pending})
    arena.node.wait_for("tx_accepted", txid=txid(pending).hex())


def misbehaviour(node: Node, peer: Peer) -> int:
    rows = [row for row in node.control("peers") if row["node_id"] == peer.node_id]
    return int(rows[0]["misbehaviour"]) if rows else 0
