"""kill -9 at any moment never leaves a store that fails to open or a chain that fails validation.

A subprocess (crash_writer.py) keeps writing to one store: blocks, transactions, reorgs, side
branches, invalid branches, commits. The test waits until it has reported some commits, waits
a few more random milliseconds so the kill lands mid-write, sends SIGKILL, then reopens the
store and checks it: it opens, ``validate_all`` finds nothing, and nothing the writer reported
committed is lost. Then a new writer continues on the same store, and so on.
"""

import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import trionode
from trionode.chain.store import Store
from trionode.chain.tree import Chain

from helpers import EASY

WRITER = Path(__file__).with_name("crash_writer.py")
SOURCE_ROOT = Path(trionode.__file__).resolve().parents[1]
# A writer that says nothing for this long is stuck or dead: fail instead of hanging.
LINE_TIMEOUT_S = 30.0


class Writer:
    """A crash_writer subprocess and the complete lines it has printed."""

    def __init__(self, path: Path, seed: int, stderr_path: Path) -> None:
        self._stderr = stderr_path.open("wb")
        # The writer imports the same trionode as this test, wherever the checkout is.
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE_ROOT), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(path), str(seed)],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        assert self.proc.stdout is not None
        self._fd = self.proc.stdout.fileno()
        self._buffer = b""
        self.lines: list[str] = []

    def _read_some(self, timeout: float) -> bool:
        """Read what is there (waiting up to ``timeout``); False at end of output."""
        with selectors.DefaultSelector() as sel:
            sel.register(self._fd, selectors.EVENT_READ)
            if not sel.select(timeout):
                return True
        chunk = os.read(self._fd, 65536)
        if not chunk:
            return False
        self._buffer += chunk
        *complete, self._buffer = self._buffer.split(b"\n")
        self.lines.extend(line.decode() for line in complete)
        return True

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + LINE_TIMEOUT_S
        while len(self.lines) < count:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read_some(left):
                self.kill()
                raise AssertionError(f"writer stopped or stalled: {self.lines[-3:]}\n{self.stderr()}")

    def kill(self) -> int:
        self.proc.send_signal(signal.SIGKILL)
        code = self.proc.wait()
        while self._read_some(LINE_TIMEOUT_S):  # lines printed before death are still in the pipe
            pass
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._stderr.close()
        return code

    def stderr(self) -> str:
        self._stderr.flush()
        return Path(self._stderr.name).read_text(errors="replace")


def parse(line: str) -> tuple[int, int, str]:
    _, height, work, tip = line.split()
    return int(height), int(work, 16), tip


def run_kills(tmp_path: Path, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "chain.sqlite"
    committed = (0, 0, EASY.network.hex())  # height, work, tip the writer reported durable
    total_commits = 0
    for round_ in range(kills):
        writer = Writer(path, rng.randrange(2**32), tmp_path / f"writer-{round_}.err")
        if round_ % 10 == 0:
            # Now and then a kill during start-up: imports, creating or opening the store, the
            # first commits (what "ready" would have told us is then simply not known).
            time.sleep(rng.uniform(0, 0.25))
        else:
            writer.wait_for(1)  # "ready": the store opened
            assert writer.lines[0].startswith("ready"), writer.lines
            ready = parse(writer.lines[0])
            assert ready[:2] >= committed[:2], "the writer itself opened an older state"
            writer.wait_for(1 + rng.randint(0, 4))
            time.sleep(rng.uniform(0, 0.02))  # land somewhere inside the next writes
        code = writer.kill()
        assert code == -signal.SIGKILL, f"writer exited by itself ({code}):\n{writer.stderr()}"
        reports = [parse(line) for line in writer.lines[1:] if line.startswith("committed ")]
        total_commits += len(reports)
        if reports:
            committed = reports[-1]

        store = Store(path)  # opens: no StoreError, integrity check passed
        chain = Chain(EASY, store)
        assert chain.validate_all(int(time.time() * 1000) + 60_000) == [], f"round {round_}"
        assert chain.height >= committed[0], "a committed block was lost"
        assert chain.work >= committed[1]
        if chain.work == committed[1]:
            assert chain.tip.block_hash.hex() == committed[2]
        assert chain.ledger.total() == EASY.mining_reward * chain.height
        store.close()
    assert total_commits > kills  # most kills really landed among commits


def test_kill_9_never_corrupts_the_store(tmp_path: Path) -> None:
    run_kills(tmp_path, kills=20, seed=1)


@pytest.mark.slow
def test_kill_9_never_corrupts_the_store_200_times(tmp_path: Path) -> None:
    run_kills(tmp_path, kills=200, seed=2)
