"""What each control verb does inside the node. Results are JSON-ready (INTERFACE.md's
``--json`` shapes): hex strings for ids and hashes, coins as JSON numbers."""

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import trio

from trionode import AGENT, __version__
from trionode.chain.amounts import coins_json
from trionode.chain.block import Block
from trionode.chain.errors import DecodeError, ValidationError
from trionode.chain.mempool import MAX_PENDING_PER_SENDER
from trionode.chain.pow import difficulty_of
from trionode.chain.transaction import Transaction
from trionode.chain.tree import Chain
from trionode.control.protocol import ControlError
from trionode.net.manager import ConnectError
from trionode.wallet import WalletError
from trionode.wire.addresses import parse_address

if TYPE_CHECKING:
    from trionode.node.app import Node

Verb = Callable[["Node", dict[str, Any]], Awaitable[Any]]
# `chain` without --limit shows this many blocks; at most MAX_CHAIN_LIMIT per call.
DEFAULT_CHAIN_LIMIT: Final = 20
MAX_CHAIN_LIMIT: Final = 1_000


def _int_arg(args: dict[str, Any], name: str, default: int) -> int:
    value = args.get(name, default)
    if value is None:
        return default
    if type(value) is not int or value < 0:
        raise ControlError(f"--{name.replace('_', '-')} must be a non-negative integer")
    return value


def _address_arg(node: "Node", args: dict[str, Any], name: str) -> bytes:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise ControlError(f"missing {name}")
    try:
        return node.wallets.resolve(value)
    except WalletError as exc:
        raise ControlError(str(exc)) from None


async def status(node: "Node", args: dict[str, Any]) -> dict[str, Any]:
    snap = node.owner.snapshot
    target = await node.owner.call(lambda chain: chain.tip.header.target)
    manager = node.manager
    return {
        "node_id": node.node_id,
        "network": node.network.hex(),
        "listen": node.listen_address,
        "height": snap.height,
        "tip": snap.tip,
        "work": snap.work,
        "peers": len(manager.connections),
        "inbound": manager.inbound_count,
        "outbound": manager.outbound_count,
        "pending": snap.pending,
        "difficulty": difficulty_of(target),
        "mining": node.miner.active > 0,
        "hashrate": round(node.miner.hashrate, 1) if node.miner.active else 0.0,  # H/s while mining
        "agent": AGENT,
        "version": __version__,
        "data_dir": str(node.data_dir),
        "uptime": round(node.wall() - node.started_at, 3),
    }


async def peers(node: "Node", args: dict[str, Any]) -> list[dict[str, Any]]:
    manager = node.manager
    manager.save_if_needed()
    wall, now = node.wall(), trio.current_time()
    rows = []
    for record in sorted(manager.table.records.values(), key=lambda r: (not r.connected, r.node_id)):
        conn = manager.connections.get(record.node_id)
        rows.append(
            {
                "node_id": record.node_id,
                "address": record.address,
                "connected": conn is not None,
                # A connected peer was last seen at its last message (heartbeats included).
                "last_seen": record.last_seen if conn is None else wall - (now - conn.last_message),
                "height": conn.height if conn is not None else record.height,
                "work": conn.work if conn is not None else record.work,
                "direction": conn.direction if conn is not None else record.direction,
                "rtt": conn.rtt if conn is not None else record.rtt,
                "misbehaviour": record.misbehaviour,
                "agent": record.agent,
                "bytes_in": conn.bytes_in if conn is not None else 0,
                "bytes_out": conn.bytes_out if conn is not None else 0,
            }
        )
    return rows


async def connect(node: "Node", args: dict[str, Any]) -> dict[str, Any]:
    address = args.get("address")
    if not isinstance(address, str):
        raise ControlError("connect needs HOST:PORT")
    try:
        parse_address(address)
    except ValueError as exc:
        raise ControlError(f"cannot connect to {address!r}: expected host:port ({exc})") from None
    try:
        return {"node_id": await node.manager.connect(address)}
    except ConnectError as exc:
        raise ControlError(str(exc)) from None


async def disconnect(node: "Node", args: dict[str, Any]) -> dict[str, Any]:
    peer = args.get("node_id")
    if not isinstance(peer, str) or not node.manager.disconnect(peer.lower(), "disconnect_requested"):
        raise ControlError(f"not connected to {peer}")
    return {"node_id": peer}


async def chain(node: "Node", args: dict[str, Any]) -> list[dict[str, Any]]:
    start = _int_arg(args, "from", 0)
    limit = min(_int_arg(args, "limit", DEFAULT_CHAIN_LIMIT), MAX_CHAIN_LIMIT)

    def read(c: Chain) -> list[Block]:
        blocks = []
        for height in range(start, min(start + limit, c.height + 1)):
            block = c.block_at(height)
            if block is not None:
                blocks.append(block)
        return blocks

    return [b.to_json() for b in await node.owner.call(read)]


async def block(node: "Node", args: dict[str, Any]) -> dict[str, Any]:
    ident = args.get("id")
    if not isinstance(ident, str):
        raise ControlError("block needs a hash or a height")

    def read(c: Chain) -> Block | None:
        if ident.isdigit():
            return c.block_at(int(ident))
        try:
            return c.block(bytes.fromhex(ident))
        except ValueError:
            return None

    found = await node.owner.call(read)
    if found is None:
        raise ControlError(f"no block {ident}")
    data = found.to_json()
    data["main_chain"] = await node.owner.call(lambda c: c.on_main(found.block_hash))
    return data


async def pending(node: "Node", args: dict[str, Any]) -> list[dict[str, Any]]:
    txs = await node.owner.call(lambda c: list(c.mempool.txs.values()))
    return [tx.to_json() for tx in txs]


async def balance(node: "Node", args: dict[str, Any]) -> dict[str, Any]:
    address = _address_arg(node, args, "address")

    def read(c: Chain) -> tuple[int, int, int]:
        return (
            c.balance(address),
            c.mempool.spendable(address, c.ledger),
            c.mempool.next_nonce(address, c.ledger),
        )

    confirmed, spendable, nonce = await node.owner.call(read)
    return {
        "address": address.hex(),
        "balance": coins_json(confirmed),
        "spendable": coins_json(spendable),
        "next_nonce": nonce,
    }


async def submit(node: "Node", args: dict[str, Any]) -> dict[str, Any]:
    """``send`` signs in the CLI (keys never enter the node); this takes the signed tx."""
    try:
        tx = Transaction.from_wire(args.get("tx"))
    except DecodeError as exc:
        raise ControlError(f"malformed transaction: {exc.detail}") from None
    try:
        await node.intake.submit_transaction(tx, None)
    except ValidationError as exc:
        raise ControlError(f"transaction rejected: {_explain(exc)}") from None
    return {"txid": tx.txid.hex()}


def _explain(exc: ValidationError) -> str:
    return {
        "insufficient_balance": "balance too low (confirmed balance less pending spends)",
        "nonce_used": "nonce already used (was this transaction already sent?)",
        "nonce_gap": "nonce too high (an earlier transaction of this sender is missing)",
        "bad_signature": "signature does not verify",
        "mempool_full": "the mempool is full; try again after the next block",
        "too_many_pending": (
            f"this sender already has {MAX_PENDING_PER_SENDER} transactions pending;"
            " send again after the next block"
        ),
        "duplicate": "already pending",
    }.get(exc.reason, f"{exc.reason}: {exc.detail}")


async def mine(node: "Node", args: dict[str, Any]) -> dict[str, Any]:
    target = args.get("to")
    try:
        address = node.reward_address(target if isinstance(target, str) else None)
    except WalletError as exc:
        raise ControlError(str(exc)) from None
    mined = await node.miner.mine_one(address)
    return {
        "hash": mined.block_hash.hex(),
        "height": mined.height,
        "txs": len(mined.txs),
        "to": address.hex(),
    }


async def sync(node: "Node", args: dict[str, Any]) -> dict[str, Any]:
    before = node.owner.snapshot
    peers = len(node.manager.connections)
    await node.consensus.run_now()
    after = node.owner.snapshot
    return {"height": after.height, "tip": after.tip, "replaced": after.tip != before.tip, "peers": peers}


async def validate(node: "Node", args: dict[str, Any]) -> dict[str, Any]:
    from trionode.chain.audit import validate_store
    from trionode.chain.store import Store

    snap = node.owner.snapshot
    main = await node.owner.call(lambda c: list(c.main))
    params = node.config.chain
    path = node.data_dir / "chain.db"
    now_ms = int(node.wall() * 1000)

    def run() -> list[str]:
        store = Store(path, readonly=True)
        try:
            return validate_store(params, store, main, now_ms)
        finally:
            store.close()

    errors = await trio.to_thread.run_sync(run)
    return {"valid": not errors, "height": snap.height, "tip": snap.tip, "errors": errors}


async def stop(node: "Node", args: dict[str, Any]) -> dict[str, Any]:
    return {"stopping": True}


async def top(node: "Node", args: dict[str, Any]) -> dict[str, Any]:
    """Everything ``trionode top`` shows, in one round trip."""
    recent = await chain(node, {"from": max(0, node.owner.snapshot.height - 9), "limit": 10})
    return {
        "status": await status(node, {}),
        "peers": await peers(node, {}),
        "recent": [
            {
                "height": b["height"],
                "hash": b["hash"],
                "timestamp": b["timestamp"],
                "txs": len(b["transactions"]),
            }
            for b in reversed(recent)
        ],
    }


VERBS: Final[dict[str, Verb]] = {
    "status": status,
    "peers": peers,
    "connect": connect,
    "disconnect": disconnect,
    "chain": chain,
    "block": block,
    "pending": pending,
    "balance": balance,
    "submit": submit,
    "mine": mine,
    "sync": sync,
    "validate": validate,
    "stop": stop,
    "top": top,
}
