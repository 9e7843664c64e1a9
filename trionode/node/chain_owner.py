"""The one task that owns chain state: every read and write of the ``Chain`` happens here.

Others send ``(function, reply channel)`` and await the answer (STYLE idiom 7), so there are
no locks and no torn reads. Requests that arrive together share one SQLite commit (group
commit), and replies go out only after that commit: whatever we relay is already durable.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import outcome
import trio

from trionode.chain.tree import Chain

T = TypeVar("T")
# Requests waiting for the owner; callers block (backpressure) beyond this.
QUEUE_SIZE: Final = 1_024
# Requests handled per commit when many are queued: bounds a commit's latency.
GROUP_COMMIT: Final = 64


@dataclass(frozen=True, slots=True)
class TipSnapshot:
    """The tip as last committed, readable by any task without a round trip."""

    height: int
    tip: str  # hex
    work: int
    pending: int


def snapshot_of(chain: Chain) -> TipSnapshot:
    return TipSnapshot(chain.height, chain.main[-1].hex(), chain.work, len(chain.mempool))


_Request = tuple[Callable[[Chain], Any], trio.MemorySendChannel[outcome.Outcome[Any]]]


class ChainOwner:
    def __init__(self, chain: Chain) -> None:
        self._chain = chain
        self._send, self._recv = trio.open_memory_channel[_Request](QUEUE_SIZE)
        self._tip_changed = trio.Event()
        self.tip_generation = 0
        self.snapshot = snapshot_of(chain)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        chain = self._chain
        async with self._recv:
            try:
                while True:
                    first = await self._recv.receive()
                    batch = [first]
                    while len(batch) < GROUP_COMMIT:
                        try:
                            batch.append(self._recv.receive_nowait())
                        except trio.WouldBlock:
                            break
                    tip = chain.main[-1]
                    results = [(reply, outcome.capture(fn, chain)) for fn, reply in batch]
                    chain.commit()
                    self.snapshot = snapshot_of(chain)
                    if chain.main[-1] != tip:
                        self.tip_generation += 1
                        self._tip_changed.set()
                        self._tip_changed = trio.Event()
                    for reply, result in results:
                        try:
                            reply.send_nowait(result)
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            pass  # the caller was cancelled; nothing to tell
            finally:
                # Requests still queued will never run: tell their callers, who wait shielded.
                while True:
                    try:
                        _, reply = self._recv.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    reply.close()

    async def call(self, fn: Callable[[Chain], T]) -> T:
        """Run ``fn(chain)`` in the owner task and return its result (or raise its error)."""
        reply_send, reply_recv = trio.open_memory_channel[outcome.Outcome[Any]](1)
        with reply_recv:  # closed without a checkpoint: a cancellation must not lose the answer
            await self._send.send((fn, reply_send))
            # Once queued, the owner runs it: wait for the answer even if cancelled meanwhile
            # (the cancellation comes at the next checkpoint), so that the caller always
            # learns what the chain did, and logs and relays it.
            result: outcome.Outcome[T] | None = None
            with trio.CancelScope(shield=True):
                try:
                    result = await reply_recv.receive()
                except trio.EndOfChannel:  # the owner stopped before running it
                    pass
        if result is None:
            await trio.lowlevel.checkpoint()  # the cancellation that stopped the owner, if any
            raise trio.BrokenResourceError("the chain owner stopped")
        return result.unwrap()

    async def wait_tip_change(self, generation: int) -> None:
        """Return once the tip has changed since ``generation`` was read."""
        while self.tip_generation == generation:
            await self._tip_changed.wait()

    def close(self) -> None:
        self._send.close()

    @property
    def chain_for_shutdown(self) -> Chain:
        """Direct access, only once the owner task has stopped (final flush at shutdown)."""
        return self._chain
