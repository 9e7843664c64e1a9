"""A level-triggered wake-up for loops that sleep until a deadline or until poked."""

import math

import trio


class Wakeup:
    """``poke()`` never blocks; ``wait(seconds)`` returns True if poked (and clears it)."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def poke(self) -> None:
        self._event.set()

    async def wait(self, seconds: float = math.inf) -> bool:
        with trio.move_on_after(seconds):
            await self._event.wait()
        poked = self._event.is_set()
        if poked:
            self._event = trio.Event()
        return poked
