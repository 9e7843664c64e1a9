"""Routes each message from an established peer to the part of the node that handles it."""

from typing import TYPE_CHECKING

import trio

from trionode.net.connection import SERVE_BACKLOG, Connection
from trionode.net.discovery import on_discovery
from trionode.wire import messages as m
from trionode.wire.handshake import after_handshake

if TYPE_CHECKING:
    from trionode.node.app import Node


class Dispatcher:
    def __init__(self, node: "Node") -> None:
        self.node = node

    async def on_batch(self, conn: Connection, envs: list[m.Envelope]) -> None:
        """Frames that arrived together: runs of transactions go to intake as one batch."""
        run: list[m.NewTransaction] = []
        for env in envs:
            if isinstance(env.message, m.NewTransaction) and not conn.closing:
                run.append(env.message)
                continue
            if run:
                await self._transactions(conn, run)
                run = []
            if conn.closing:
                return
            await self.on_message(conn, env)
        if run and not conn.closing:
            await self._transactions(conn, run)

    async def _transactions(self, conn: Connection, msgs: list[m.NewTransaction]) -> None:
        conn.last_message = trio.current_time()
        await self.node.intake.submit_transactions([msg.tx for msg in msgs], conn)

    async def on_message(self, conn: Connection, env: m.Envelope) -> None:
        node = self.node
        msg = env.message
        now = trio.current_time()
        if isinstance(msg, m.Heartbeat):
            if msg.echo:
                if not conn.echo(msg.nonce, now):
                    node.log.debug("heartbeat_wrong_nonce", peer=conn.peer_id)
                    return  # a wrong echo is not a sign of life
            else:
                conn.send_message(node.heartbeat(msg.nonce, True))
            conn.last_message = now
            conn.height, conn.work, conn.tip = msg.height, msg.work, msg.tip.hex()
            node.log.debug("heartbeat", peer=conn.peer_id, echo=msg.echo, height=msg.height, rtt=conn.rtt)
            node.consensus.on_peer_work(conn)
            return
        conn.last_message = now
        record = node.manager.table.records.get(conn.peer_id or "")
        if record is not None:
            record.last_seen = node.wall()
        if isinstance(msg, m.NewTransaction):
            await node.intake.submit_transactions([msg.tx], conn)
        elif isinstance(msg, m.NewBlock):
            result = await node.intake.submit_block(msg.block, conn)
            if result.status == "orphan" and conn.sync is None:
                node.spawn(node.consensus.sync_with, conn)
            if msg.block.height > conn.height and result.status != "invalid":
                conn.height = msg.block.height
        elif isinstance(msg, m.RequestChain):
            await conn.drained(SERVE_BACKLOG)  # backpressure: stop reading until it reads
            await node.consensus.serve(conn, msg)
        elif isinstance(msg, m.ResponseChain):
            await node.consensus.on_response(conn, msg)
        elif isinstance(msg, m.PeerDiscovery):
            on_discovery(node.manager, conn, msg)
        elif isinstance(msg, m.Error):
            node.log.info("peer_error", peer=conn.peer_id, code=msg.code, reason=msg.reason)
            conn.close(f"peer_error:{msg.code}")
        elif isinstance(msg, m.UnknownMessage):
            conn.unknown_messages += 1
            node.log.debug("unknown_message", peer=conn.peer_id, type=env.type)
        else:
            # A Hello or HelloProof: the connection stops these before dispatch (protocol.md 5),
            # but were one to get here it is the same protocol error, never an unknown type.
            raise after_handshake(msg)
