"""One peer connection: a reader (the connection's own task) and a single writer task.

The reader turns bytes into frames into typed messages and hands each to the node's
dispatcher; the writer drains a bounded channel of already-encoded frames, batching whatever
is queued into one ``send_all``. Nothing waits on a slow peer: ``send`` never blocks, and a
peer whose queue is full is disconnected (``slow_reader``). Every failure of a peer ends in
``close(reason)`` inside this connection's tasks, never beyond them.
"""

import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import structlog
import trio
from msgspec.structs import replace

from trionode.net.inventory import PEER_KNOWN, RollingSet
from trionode.wire.addresses import host_of
from trionode.wire.errors import BAD_FIELD, HANDSHAKE_TIMEOUT_CODE, PROTOCOL_ERROR, ProtocolError
from trionode.wire.framing import HANDSHAKE_FRAMES, MAX_FIRST_FRAME, FrameDecoder
from trionode.wire.handshake import HANDSHAKE_TIMEOUT, Handshake, after_handshake
from trionode.wire.identity import NodeIdentity
from trionode.wire.messages import (
    Envelope,
    Error,
    Heartbeat,
    Hello,
    HelloProof,
    Message,
    decode_message,
    encode_message,
)
from trionode.wire.payloads import MAX_PEERS_BEFORE_HANDSHAKE

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

# Frames queued for one peer before it counts as not reading: a full sync batch is 1 frame,
# so this is hundreds of relayed blocks or transactions of headroom.
SEND_QUEUE: Final = 1_024
# Bytes queued for one peer before it counts as not reading: frames are up to 4 MiB, so the
# frame count alone let a peer that asks for chains and never reads pin 4 GiB of ours. 32 MiB
# is 8 full frames, above any honest burst (a reorg relays at most 16 blocks of 1 MB).
SEND_QUEUE_BYTES: Final = 32 * 1024 * 1024
# Pings remembered per peer: a peer silent for 3 intervals is dropped anyway.
MAX_PINGS: Final = 3
# A RequestChain is answered only once less than this is queued for the peer: a peer that
# asks faster than it reads waits (its reader stops), instead of filling our memory.
SERVE_BACKLOG: Final = 8 * 1024 * 1024
# Bytes joined into one send_all when frames are queued (fewer syscalls under load).
WRITE_BATCH: Final = 256 * 1024
# A single send_all that makes no progress for this long means the peer stopped reading.
SEND_TIMEOUT: Final = 30.0
# After close(), queued frames (e.g. a goodbye Error) get this long to leave.
CLOSE_DRAIN: Final = 1.0
# Bytes per receive_some: large enough for a sync batch in few reads.
RECV_CHUNK: Final = 256 * 1024


class Connection:
    """A peer connection's state; ``run`` is its whole life."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        remote: str,
        outbound: bool,
        our_hello: Callable[[], Hello],
        identity: NodeIdentity,
        clock: Callable[[], float],
        log: "FilteringBoundLogger",
        dialed: str | None = None,
        on_reflected: Callable[[bytes], object] | None = None,
    ) -> None:
        """``on_reflected`` hears the challenge of any of our own Hellos that came back to us
        (a self-connection, seen from the accepting side)."""
        self.stream = stream
        self.remote = remote  # host:port of the socket's other end
        self.remote_host = host_of(remote)
        self.outbound = outbound
        self.direction = "outbound" if outbound else "inbound"
        self.dialed = dialed  # the address we dialled, for outbound connections
        self._our_hello = our_hello
        self._on_reflected = on_reflected
        self.our_challenge: bytes | None = None  # of the Hello we sent on this connection
        self._identity = identity
        self._our_id = identity.node_id
        self._wall = clock
        self.log = log
        self.peer_id: str | None = None
        self.hello: Hello | None = None
        self.listen_address: str | None = None
        self.known = RollingSet(PEER_KNOWN)
        self.connected_at = trio.current_time()
        self.last_message = self.connected_at
        self.busy = False  # the reader is handling messages: the peer's silence is ours
        # Heartbeats sent and not yet echoed, nonce -> send time: an echo of any of them counts
        # (a peer whose round trip exceeds one interval still answers every ping).
        self.pings: dict[int, float] = {}
        self.rtt: float | None = None
        self.height = 0
        self.work = 0
        self.tip = ""
        self.close_reason: str | None = None
        self.frames_in = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.queued_bytes = 0  # in frames waiting for the writer
        self.unknown_messages = 0
        self.sync: Any = None  # the sync session in flight with this peer, if any
        self.extra: dict[str, Any] = {}  # per-peer state owned by other modules (rate limits)
        self._send_q, self._recv_q = trio.open_memory_channel[bytes](SEND_QUEUE)
        self._reader_scope: trio.CancelScope | None = None
        self._writer_scope: trio.CancelScope | None = None
        self._drain_deadline = math.inf
        self._closing = False
        self.ready = trio.Event()  # set once established or closed
        self.refusal: Error | None = None  # the peer's Error, if it refused us in the handshake
        self._sent = trio.Event()  # set (and replaced) each time the writer sends a batch

    # ------------------------------------------------------------- sending

    def send(self, frame: bytes) -> bool:
        """Queue an encoded frame; never blocks. A full queue disconnects the peer."""
        if self._closing:
            return False
        if self.queued_bytes + len(frame) > SEND_QUEUE_BYTES:
            self.close("slow_reader")
            return False
        try:
            self._send_q.send_nowait(frame)
        except trio.WouldBlock:
            self.close("slow_reader")
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        self.queued_bytes += len(frame)
        return True

    def ping(self, nonce: int, now: float) -> None:
        self.pings[nonce] = now
        while len(self.pings) > MAX_PINGS:
            del self.pings[next(iter(self.pings))]

    def echo(self, nonce: int, now: float) -> bool:
        """An echo arrived: True (and the round trip recorded) if it answers one of our pings."""
        sent = self.pings.get(nonce)
        if sent is None:
            return False
        self.rtt = now - sent
        for older in [n for n, t in self.pings.items() if t <= sent]:
            del self.pings[older]
        return True

    async def drained(self, below: int) -> None:
        """Wait until less than ``below`` bytes are queued for this peer (or it closes)."""
        while self.queued_bytes >= below and not self._closing:
            await self._sent.wait()

    def send_message(self, message: Message) -> bool:
        return self.send(encode_message(message, self._our_id, self._wall()))

    def close(self, reason: str, goodbye: Error | None = None) -> None:
        """End the connection: queue ``goodbye`` if given, stop reading, drain, close."""
        if self._closing:
            return
        self._closing = True
        self.close_reason = reason
        if self.sync is not None:
            # Nothing more will come: whoever waits on the session moves on now, not after
            # its stall timeout.
            self.sync.finish("disconnected")
        if goodbye is not None:
            if self.hello is None and len(goodbye.peers) > MAX_PEERS_BEFORE_HANDSHAKE:
                # The peer still takes handshake-sized frames only (protocol.md 4, Error).
                goodbye = replace(goodbye, peers=goodbye.peers[:MAX_PEERS_BEFORE_HANDSHAKE])
            try:
                self._send_q.send_nowait(encode_message(goodbye, self._our_id, self._wall()))
            except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                pass
        self._send_q.close()
        self._sent.set()  # wake anyone waiting for the queue to drain: it never will
        if self._reader_scope is not None:
            self._reader_scope.cancel()
        self._drain_deadline = trio.current_time() + CLOSE_DRAIN
        if self._writer_scope is not None:
            self._writer_scope.deadline = min(self._writer_scope.deadline, self._drain_deadline)

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def established(self) -> bool:
        return self.hello is not None and not self._closing

    # ------------------------------------------------------------- life

    async def run(
        self,
        on_established: Callable[["Connection"], Awaitable[bool]],
        on_messages: Callable[["Connection", list[Envelope]], Awaitable[None]],
        on_protocol_error: Callable[["Connection", ProtocolError], None],
    ) -> None:
        """Handshake, then read until closed. ``on_established`` may refuse the peer."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer)
                with trio.CancelScope() as self._reader_scope:
                    if self._closing:
                        return
                    try:
                        await self._read(on_established, on_messages)
                    except ProtocolError as exc:
                        try:
                            on_protocol_error(self, exc)
                        except Exception as handler_exc:  # (penalising it failed: still close it)
                            self.log.error("peer_task_failed", exc_info=handler_exc)
                        self.close(
                            f"protocol_error:{exc.code}", Error(code=PROTOCOL_ERROR, reason=str(exc)[:1024])
                        )
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        self.close("connection_lost")
                    except trio.TooSlowError:
                        self.close(
                            "handshake_timeout",
                            Error(code=HANDSHAKE_TIMEOUT_CODE, reason="no complete handshake within 10 s"),
                        )
                    except Exception as exc:  # a bug reached by peer input must not crash the node
                        self.log.error("peer_task_failed", exc_info=exc)
                        self.close("internal_error", Error(code=PROTOCOL_ERROR, reason="internal error"))
                if not self._closing:
                    self.close("closed")
        finally:
            with trio.move_on_after(CLOSE_DRAIN, shield=True):
                await self.stream.aclose()

    async def _read(
        self,
        on_established: Callable[["Connection"], Awaitable[bool]],
        on_messages: Callable[["Connection", list[Envelope]], Awaitable[None]],
    ) -> None:
        decoder = FrameDecoder(MAX_FIRST_FRAME, HANDSHAKE_FRAMES)
        handshake = Handshake(self._our_hello(), outbound=self.outbound, identity=self._identity)
        self.our_challenge = handshake.our_hello.challenge
        for message in handshake.start():
            self.send_message(message)
        pending: list[Envelope] = []  # what arrived in the read that completed the handshake
        error: ProtocolError | None = None  # ...and a bad frame after them in that read
        with trio.fail_after(HANDSHAKE_TIMEOUT):
            while self.hello is None:
                data = await self.stream.receive_some(RECV_CHUNK)
                if not data:
                    self.close("eof_in_handshake")
                    return
                self.bytes_in += len(data)
                bodies, error = decoder.feed_partial(data)
                for i, body in enumerate(bodies):
                    if self.hello is not None:
                        # The handshake is complete: the rest of this read (the dialler may send
                        # right after its HelloProof) is the established connection's.
                        pending, error = self._decode(bodies[i:], error)
                        break
                    envelope = decode_message(body)
                    self.frames_in += 1
                    result = handshake.receive(envelope)
                    if result.peer_error is not None:
                        # The peer refuses us (wrong network, banned...): its code is the reason.
                        self.refusal = result.peer_error
                        self.close(result.peer_error.code)
                        return
                    for message in result.send:
                        self.send_message(message)
                    if result.reject is not None:
                        if handshake.reflected is not None and self._on_reflected is not None:
                            self._on_reflected(handshake.reflected)  # before our Error goes out
                        self.close(result.reject.code, result.reject)
                        return
                    if result.done is not None:
                        self._accept_hello(result.done)
                if self.hello is None and error is not None:
                    raise error
        if not await on_established(self):
            return
        self.last_message = trio.current_time()
        await self._deliver(pending, error, on_messages)
        while not self._closing:
            data = await self.stream.receive_some(RECV_CHUNK)
            if not data:
                self.close("eof")
                return
            self.bytes_in += len(data)
            envelopes, error = self._decode(*decoder.feed_partial(data))
            handling = trio.current_time()
            self.busy = True
            try:
                await self._deliver(envelopes, error, on_messages)
            finally:
                self.busy = False
            if self.last_message >= handling:
                # A sign of life that took us long to handle (a sync batch): what the peer sent
                # meanwhile waits unread behind it, so its silence starts only now.
                self.last_message = trio.current_time()

    def _decode(
        self, bodies: list[bytes], error: ProtocolError | None
    ) -> tuple[list[Envelope], ProtocolError | None]:
        """The envelopes of one read's frames, up to the first bad one: what arrived before a
        bad frame is still handled, then the error ends the connection."""
        envelopes: list[Envelope] = []
        try:
            for body in bodies:
                envelopes.append(decode_message(body))
        except ProtocolError as exc:
            error = exc
        self.frames_in += len(envelopes)
        return envelopes, error

    async def _deliver(
        self,
        envelopes: list[Envelope],
        error: ProtocolError | None,
        on_messages: Callable[["Connection", list[Envelope]], Awaitable[None]],
    ) -> None:
        """Hand a read's messages over as one batch; a handshake message (a second Hello or
        HelloProof), or a message in another node's name than the proven peer's, ends the
        connection (what came before it is still handled)."""
        proven = self.hello.node_id if self.hello is not None else None
        for i, envelope in enumerate(envelopes):
            message = envelope.message
            if isinstance(message, (Hello, HelloProof)):
                error = after_handshake(message)
            elif envelope.sender != proven:
                error = ProtocolError(BAD_FIELD, "sender", "not the node id this peer proved")
            elif isinstance(message, Heartbeat) and message.node_id != proven:
                error = ProtocolError(BAD_FIELD, "payload.node_id", "not the node id this peer proved")
            else:
                continue
            envelopes = envelopes[:i]
            break
        if envelopes:
            await on_messages(self, envelopes)
        if error is not None and not self._closing:
            raise error

    def _accept_hello(self, hello: Hello) -> None:
        """Record the peer's Hello; runs in the connection's own task, whose log lines (and
        those of tasks it starts) now carry ``peer`` without each call naming it."""
        self.hello = hello
        self.peer_id = hello.node_id.hex()
        structlog.contextvars.bind_contextvars(peer=self.peer_id)
        self.height = hello.height
        self.work = hello.work
        self.tip = hello.tip.hex()
        if self.outbound and self.dialed is not None:
            self.listen_address = self.dialed
        elif hello.listen_port and "%" not in self.remote_host:
            # (A link-local source with a zone id names an interface of ours, not an address
            # another node could dial: such a peer is kept, not recorded or announced.)
            host = self.remote_host
            self.listen_address = (
                f"[{host}]:{hello.listen_port}" if ":" in host else f"{host}:{hello.listen_port}"
            )
        self.log = self.log.bind(peer=self.peer_id)

    async def _writer(self) -> None:
        with trio.CancelScope(deadline=self._drain_deadline) as self._writer_scope:
            async with self._recv_q:
                async for frame in self._recv_q:
                    batch = [frame]
                    size = len(frame)
                    while size < WRITE_BATCH:
                        try:
                            more = self._recv_q.receive_nowait()
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                        batch.append(more)
                        size += len(more)
                    self.queued_bytes -= size
                    data = batch[0] if len(batch) == 1 else b"".join(batch)
                    try:
                        with trio.fail_after(SEND_TIMEOUT):
                            await self.stream.send_all(data)
                    except trio.TooSlowError:
                        self.close("slow_reader")
                        return
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        self.close("connection_lost")
                        return
                    self.bytes_out += size
                    self._sent.set()
                    self._sent = trio.Event()
