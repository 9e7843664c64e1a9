"""A simulated TCP connection: two ``trio.abc.Stream`` ends joined by two one-way pipes.

Each pipe delivers bytes in order after the link's latency, at the link's bandwidth, with
seeded jitter and loss. Everything is timed by trio's clock (``MockClock`` in the simulator),
and nothing runs in the background: a receiver sleeps until the first chunk's arrival time,
so a quiet link costs nothing.

Modelling choices:
- **Loss** on a reliable stream is retransmission delay: a send whose segments lose one or
  more packets arrives ``rto`` later per loss (doubling each time), and, TCP being in order,
  holds back everything sent after it. The stream never drops or reorders bytes.
- **Flow control**: at most ``WINDOW`` bytes are unread in a pipe; beyond that ``send_all``
  blocks, as a full socket buffer does, so the node's slow-reader timeout can fire.
- **Blackhole** (a partition or a cut link): nothing arrives while the link is blocked; bytes
  sent meanwhile wait and arrive after the heal plus one ``rto`` (TCP retransmits them), so
  a short partition leaves connections up and a long one ends them through heartbeat or send
  timeouts, as on a real network.
- **Close** is a FIN in the byte stream: the other end reads everything sent before it, then
  EOF. Writing to an end whose reader closed is discarded, and fails once the RST this
  provokes is back (one round trip later).
- **Reset** (the host crashed) breaks both directions at once: reads and writes raise
  ``trio.BrokenResourceError``.
"""

import math
import operator
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import trio

# Unread bytes a pipe holds before send_all blocks: a Linux socket's default buffers.
WINDOW: Final = 256 * 1024
# Segment size used to turn a per-packet loss rate into a per-send one.
MSS: Final = 1460
# Retransmissions of one send are capped; TCP would give up about here anyway.
MAX_RETRANSMITS: Final = 6


@dataclass(frozen=True)
class LinkProfile:
    """One link's character, drawn per host pair from the scenario seed."""

    latency: float = 0.0  # one way, seconds
    jitter: float = 0.0  # extra delay per send, uniform in [0, jitter] seconds (order kept)
    bandwidth: float = math.inf  # bytes per second
    loss: float = 0.0  # probability that one segment is lost (and retransmitted)
    rto: float = 0.2  # retransmission timeout, seconds

    def describe(self) -> str:
        bw = "inf" if math.isinf(self.bandwidth) else f"{self.bandwidth * 8 / 1e6:.0f}Mbit/s"
        return f"{self.latency * 1000:.0f}ms+{self.jitter * 1000:.0f}ms {bw} loss={self.loss:.1%}"


@dataclass
class _Chunk:
    arrival: float
    data: bytes  # b"" is the FIN


class Pipe:
    """One direction of a link."""

    def __init__(self, link: "Link", rng: random.Random) -> None:
        self.link = link
        self._rng = rng
        self.queue: deque[_Chunk] = deque()
        self.unread = 0
        self.busy_until = 0.0  # when the sender's last byte is on the wire
        self.last_arrival = 0.0  # arrivals never go backwards: TCP delivers in order
        self.fin_sent = False  # the sending end closed
        self.fin_read = False
        self.reader_closed = False  # the receiving end closed: writes fail once its RST is back
        self.rst_at = math.inf
        self.bytes_sent = 0
        self._changed = trio.Event()

    def wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_change(self) -> None:
        await self._changed.wait()

    def arrival_time(self, size: int, now: float) -> float:
        profile = self.link.profile
        start = max(now, self.busy_until)
        finish = start + (0.0 if math.isinf(profile.bandwidth) else size / profile.bandwidth)
        self.busy_until = finish
        arrival = finish + profile.latency + self.link.extra()
        if profile.jitter > 0:
            arrival += self._rng.uniform(0.0, profile.jitter)
        if profile.loss > 0:
            segments = max(1, -(-size // MSS))
            p_any = 1.0 - (1.0 - profile.loss) ** segments
            rto = profile.rto
            for _ in range(MAX_RETRANSMITS):
                if self._rng.random() >= p_any:
                    break
                arrival += rto
                rto *= 2
        if self.link.blocked_since is not None:
            arrival = max(arrival, self.link.blocked_since) + 1e-9  # held: after the heal
        arrival = max(arrival, self.last_arrival)
        self.last_arrival = arrival
        return arrival

    def push(self, data: bytes, now: float) -> float:
        arrival = self.arrival_time(len(data), now)
        self.queue.append(_Chunk(arrival, data))
        self.unread += len(data)
        self.bytes_sent += len(data)
        self.wake()
        return self.busy_until

    def next_arrival(self) -> float:
        """When the first queued chunk can be read (inf while nothing is on its way)."""
        if not self.queue:
            return math.inf
        arrival = self.queue[0].arrival
        since = self.link.blocked_since
        if since is not None and arrival > since:
            return math.inf  # held by the partition until the heal
        return arrival

    def heal(self, now: float) -> None:
        """The blackhole ends: held chunks arrive one retransmission timeout from now."""
        since = self.link.blocked_since
        assert since is not None
        floor = now + self.link.profile.rto
        for chunk in self.queue:
            if chunk.arrival > since:
                chunk.arrival = max(chunk.arrival, floor)
                floor = chunk.arrival
        if self.queue:
            self.last_arrival = max(self.last_arrival, self.queue[-1].arrival)
        self.wake()

    def clear(self) -> None:
        self.queue.clear()
        self.unread = 0
        self.wake()


class Link:
    """A connection between two hosts: two pipes and two stream ends."""

    def __init__(
        self,
        network_id: int,
        client: str,
        server: str,
        profile: LinkProfile,
        rng: random.Random,
        extra: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.id = network_id
        self.extra = extra  # added one-way latency now (a slowed host)
        self.client = client  # "host:port" of the dialling end
        self.server = server
        self.client_host = client.rsplit(":", 1)[0]
        self.server_host = server.rsplit(":", 1)[0]
        self.profile = profile
        self.blocked_since: float | None = None
        self.reset = False
        self.to_server = Pipe(self, random.Random(rng.getrandbits(64)))
        self.to_client = Pipe(self, random.Random(rng.getrandbits(64)))
        self.client_end = SimStream(self, send=self.to_server, recv=self.to_client)
        self.server_end = SimStream(self, send=self.to_client, recv=self.to_server)

    @property
    def hosts(self) -> frozenset[str]:
        return frozenset((self.client_host, self.server_host))

    @property
    def alive(self) -> bool:
        return not self.reset and not (
            (self.to_server.fin_read or self.to_server.reader_closed)
            and (self.to_client.fin_read or self.to_client.reader_closed)
        )

    def block(self, now: float) -> None:
        if self.blocked_since is None:
            self.blocked_since = now

    def unblock(self, now: float) -> None:
        if self.blocked_since is not None:
            self.to_server.heal(now)
            self.to_client.heal(now)
            self.blocked_since = None

    def break_(self) -> None:
        """Both directions fail at once (the host at one end is gone)."""
        self.reset = True
        self.to_server.clear()
        self.to_client.clear()


class SimStream(trio.abc.Stream):
    """One end of a ``Link``."""

    def __init__(self, link: Link, *, send: Pipe, recv: Pipe) -> None:
        self.link = link
        self._send = send
        self._recv = recv
        self._closed = False
        self._sending = False
        self._receiving = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        self._sending = True
        try:
            pipe = self._send
            while True:
                self._check_send()
                if pipe.unread < WINDOW:
                    break
                await pipe.wait_change()
            if not data:
                await trio.lowlevel.checkpoint()
                return
            if not pipe.reader_closed:  # else written into the void until the peer's RST is back
                pipe.push(bytes(data), trio.current_time())
            # Returns at once, as a send into a socket buffer with room does; the link's
            # bandwidth shows in arrival times (and, through the window, in backpressure).
            await trio.lowlevel.checkpoint()
        finally:
            self._sending = False

    def _check_send(self) -> None:
        if self._closed or self._send.fin_sent:
            raise trio.ClosedResourceError("this end is closed")
        if self.link.reset or trio.current_time() >= self._send.rst_at:
            raise trio.BrokenResourceError("connection reset by peer")

    async def wait_send_all_might_not_block(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        if self._closed or self._send.fin_sent:
            raise trio.ClosedResourceError("this end is closed")
        self._sending = True
        try:
            while self._send.unread >= WINDOW and not self.link.reset and not self._closed:
                await self._send.wait_change()
            await trio.lowlevel.checkpoint()
        finally:
            self._sending = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is not None:
            max_bytes = operator.index(max_bytes)
            if max_bytes < 1:
                raise ValueError("max_bytes must be >= 1")
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this stream")
        self._receiving = True
        try:
            return await self._receive(max_bytes or WINDOW)
        finally:
            self._receiving = False

    async def _receive(self, max_bytes: int) -> bytes:
        pipe = self._recv
        while True:
            if self._closed:
                raise trio.ClosedResourceError("this end is closed")
            if self.link.reset:
                raise trio.BrokenResourceError("connection reset by peer")
            if pipe.fin_read:
                await trio.lowlevel.checkpoint()
                return b""
            now = trio.current_time()
            arrival = pipe.next_arrival()
            if arrival <= now:
                await trio.lowlevel.checkpoint()
                return self._take(max_bytes, now)
            if arrival < math.inf:
                # Later sends arrive later still, so nothing can come sooner; a partition, a
                # reset or a close is noticed when this sleep ends (at most one transit late).
                await trio.sleep_until(arrival)
            else:
                await pipe.wait_change()

    def _take(self, max_bytes: int, now: float) -> bytes:
        pipe = self._recv
        parts: list[bytes] = []
        size = 0
        while pipe.queue and size < max_bytes and pipe.next_arrival() <= now:
            chunk = pipe.queue[0]
            if not chunk.data:  # FIN: deliver what came before it first
                if not parts:
                    pipe.queue.popleft()
                    pipe.fin_read = True
                break
            room = max_bytes - size
            if len(chunk.data) <= room:
                pipe.queue.popleft()
                parts.append(chunk.data)
                size += len(chunk.data)
            else:
                parts.append(chunk.data[:room])
                chunk.data = chunk.data[room:]
                size += room
        pipe.unread -= size
        pipe.wake()  # a blocked sender may go on
        return b"".join(parts)

    async def send_eof(self) -> None:
        if not self._send.fin_sent and not self.link.reset:
            self._send.fin_sent = True
            self._send.push(b"", trio.current_time())
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        """Close without waiting: FIN to the peer; its later writes to us fail."""
        if self._closed:
            return
        self._closed = True
        if not self._send.fin_sent and not self.link.reset:
            self._send.fin_sent = True
            self._send.push(b"", trio.current_time())
        self._recv.reader_closed = True
        self._recv.rst_at = trio.current_time() + max(2 * self.link.profile.latency, 0.001)
        self._recv.clear()
        self._send.wake()
