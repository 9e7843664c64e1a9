"""An in-process network of memory streams: listen and dial by "host:port", no sockets.

The node takes this in place of ``TcpTransport``; with ``trio.testing.MockClock`` a whole
network runs in one process in simulated time. Links can be cut (``partition``) and healed.
"""

from collections.abc import Iterable

import trio
import trio.testing

from trionode.net.transport import Handler
from trionode.wire.addresses import format_address


class MemoryNetwork:
    def __init__(self) -> None:
        self.listeners: dict[str, tuple[Handler, trio.Nursery]] = {}
        self.links: list[tuple[str, str, trio.abc.Stream, trio.abc.Stream]] = []
        self.blocked: set[frozenset[str]] = set()

    def transport(self, host: str) -> "MemoryTransport":
        return MemoryTransport(self, host)

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut every link between hosts of different groups (existing ones break at once)."""
        sets = [set(g) for g in groups]
        for i, a in enumerate(sets):
            for b in sets[i + 1 :]:
                for x in a:
                    for y in b:
                        self.blocked.add(frozenset((x, y)))
        for src, dst, s1, s2 in list(self.links):
            if frozenset((src, dst)) in self.blocked:
                self._break(s1, s2)

    def heal(self) -> None:
        self.blocked.clear()

    @staticmethod
    def _break(*streams: trio.abc.Stream) -> None:
        """Close both directions at once, without waiting (a cable cut, not a goodbye)."""
        for stream in streams:
            for half in (getattr(stream, "send_stream", None), getattr(stream, "receive_stream", None)):
                close = getattr(half, "close", None)
                if close is not None:
                    close()


class MemoryTransport:
    def __init__(self, network: MemoryNetwork, host: str) -> None:
        self.network = network
        self.host = host
        self._next_port = 40000

    async def listen(
        self,
        host: str,
        port: int,
        handler: Handler,
        handler_nursery: trio.Nursery,
        *,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        address = format_address(self.host, port or 5001)
        if address in self.network.listeners:
            raise OSError(f"{address} is in use")
        self.network.listeners[address] = (handler, handler_nursery)
        try:
            task_status.started(address)
            await trio.sleep_forever()
        finally:
            self.network.listeners.pop(address, None)

    async def dial(self, host: str, port: int) -> trio.abc.Stream:
        address = format_address(host, port)
        await trio.lowlevel.checkpoint()
        entry = self.network.listeners.get(address)
        if entry is None or frozenset((self.host, host)) in self.network.blocked:
            raise ConnectionRefusedError(f"connection refused: {address}")
        handler, nursery = entry
        ours, theirs = trio.testing.memory_stream_pair()
        self._next_port += 1
        remote = format_address(self.host, self._next_port)
        self.network.links.append((self.host, host, ours, theirs))
        nursery.start_soon(handler, theirs, remote)
        return ours
