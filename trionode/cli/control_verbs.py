"""The verbs that are calls to a running node over its control socket (status ... stop)."""

import argparse
import time
from pathlib import Path
from typing import Final

from trionode.cli.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UserError
from trionode.cli.formats import coins, emit, fmt_block, fmt_chain, fmt_peers, fmt_status, fmt_tx
from trionode.cli.payment import payment, send
from trionode.cli.progress import mining_progress, sync_progress, with_progress
from trionode.cli.target import node_client, resolve
from trionode.control.protocol import LOCK_NAME, ControlError
from trionode.lock_file import try_lock
from trionode.node.config import parse_hostport

# How the node words a handshake that ended early (trionode.net.manager.describe_reason), and
# the close reasons themselves: what something that is not a trionode node causes.
_NOT_A_PEER: Final = frozenset(
    {
        "no handshake within 10 s",
        "connection lost during the handshake",
        "peer closed the connection during the handshake",
        "handshake_timeout",
        "connection_lost",
        "eof_in_handshake",
    }
)

# A node stops within 5 s (its connections get a bounded drain); more than twice that and
# `stop` reports it still running rather than wait forever.
STOP_WAIT: Final = 15.0
# How often `stop` looks whether the node has let go of its lock.
STOP_POLL: Final = 0.05


def cmd_control(args: argparse.Namespace) -> int:
    verb = args.verb
    # Arguments are checked before the node is asked: a bad one gets the same answer whether
    # or not a node runs.
    if verb == "connect":
        try:
            parse_hostport(args.address)
        except ValueError as exc:
            raise UserError(f"connect: bad address {args.address!r}: {exc}", EXIT_USAGE) from None
    checked = payment(args) if verb == "send" else None
    address = resolve(args, args.who) if verb == "balance" else None
    to = resolve(args, args.to) if verb == "mine" and args.to else None
    with node_client(
        args, timeout=None if verb in ("mine", "sync", "validate", "connect") else 30.0
    ) as client:
        data_dir = client.data_dir
        if verb == "status":
            emit(args, client.call("status"), fmt_status)
        elif verb == "peers":
            emit(args, client.call("peers"), fmt_peers)
        elif verb == "connect":
            try:
                result = client.call("connect", address=args.address)
            except ControlError as exc:
                raise _connect_failure(args.address, exc) from None
            emit(args, result, lambda r: f"connected to {r['node_id']}")
        elif verb == "disconnect":
            emit(
                args,
                client.call("disconnect", node_id=args.node_id),
                lambda r: f"disconnected {r['node_id']}",
            )
        elif verb == "chain":
            emit(args, client.call("chain", **{"from": args.start, "limit": args.limit}), fmt_chain)
        elif verb == "block":
            emit(args, client.call("block", id=args.ident), fmt_block)
        elif verb == "pending":
            emit(
                args,
                client.call("pending"),
                lambda txs: "\n".join(fmt_tx(t) for t in txs) if txs else "no pending transactions",
            )
        elif verb == "balance":
            emit(
                args,
                client.call("balance", address=address),
                lambda r: f"{r['address']}  {coins(r['balance'])}",
            )
        elif verb == "send":
            assert checked is not None
            emit(
                args,
                send(client, checked),
                lambda r: f"sent {coins(r['amount'])} to {r['to']}: txid {r['txid']}",
            )
        elif verb == "mine":
            result = with_progress(args, "mining", lambda: client.call("mine", to=to), mining_progress)
            emit(args, result, lambda r: f"mined block {r['height']} {r['hash']} ({r['txs']} txs)")
        elif verb == "sync":
            result = with_progress(args, "syncing", lambda: client.call("sync"), sync_progress)
            emit(
                args,
                result,
                lambda r: (
                    f"height {r['height']} tip {r['tip']}"
                    + (" (chain replaced)" if r["replaced"] else "")
                    + ("" if r["peers"] else " (no peers connected: nothing to sync with)")
                ),
            )
        elif verb == "validate":
            result = with_progress(args, "validating", lambda: client.call("validate"))
            emit(
                args,
                result,
                lambda r: (
                    f"valid: chain of height {r['height']}"
                    if r["valid"]
                    else "INVALID:\n" + "\n".join(r["errors"])
                ),
            )
            return EXIT_OK if result["valid"] else EXIT_FAILURE
        elif verb == "stop":
            client.call("stop")
    if verb == "stop":  # after the control connection is closed: the node drains it on the way out
        stopped = wait_stopped(data_dir, STOP_WAIT)
        emit(
            args,
            {"stopping": True, "stopped": stopped},
            lambda r: (
                "node stopped" if r["stopped"] else f"node stopping (still running after {STOP_WAIT:.0f} s)"
            ),
        )
    return EXIT_OK


def wait_stopped(data_dir: Path, timeout: float) -> bool:
    """Whether the node of ``data_dir`` let go of its LOCK within ``timeout`` seconds.

    So that ``trionode stop && trionode run`` does not find the data dir still in use: the node
    releases the lock as the very last step of its shutdown, after flushing everything.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            handle = try_lock(data_dir / LOCK_NAME)
        except OSError:
            return True  # no data dir to lock: nothing holds it
        if handle is not None:
            handle.close()
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(STOP_POLL)


def _connect_failure(address: str, exc: ControlError) -> Exception:
    """``connect``'s error, with what a reason code means when something other than a trionode
    node answered (a web server, another program, a wrong port)."""
    text = str(exc)
    reason = text.removeprefix(f"{address}: ")
    if reason.startswith("protocol_error:"):
        return UserError(f"{address} is not a trionode node (it sent something that is not a trionode frame)")
    if reason in _NOT_A_PEER:
        return UserError(f"{text} (wrong port, or another program listens there)")
    return exc
