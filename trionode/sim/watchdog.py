"""A real-time budget for one simulated run.

Simulated time is MockClock's, and MockClock only advances when every task waits: a busy loop
in a node would hang the run forever, and no simulated timeout could catch it. The watchdog
counts real seconds instead, on a timer thread.
"""

import contextlib
import threading
from typing import Final

import trio

# Real seconds a scenario may take before the watchdog cancels it (a busy loop never lets
# MockClock advance, so no simulated timeout could catch it).
WALL_BUDGET: Final = 600.0


class Watchdog:
    """Cancels the run if it takes more real time than its budget. A timer thread costs nothing
    per scheduler step, and touches the run only if it fires (a failed run anyway)."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.fired = False
        self._timer: threading.Timer | None = None

    def arm(self, scope: trio.CancelScope) -> None:
        token = trio.lowlevel.current_trio_token()

        def fire() -> None:
            self.fired = True
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(scope.cancel)

        self._timer = threading.Timer(self.budget, fire)
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
