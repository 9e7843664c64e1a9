"""A CLI verb in a pseudo-terminal, for what trionode only does on a terminal: top's live view,
the progress lines of mine and sync, Ctrl+C."""

import os
import pty
import re
import signal
import threading
import time

from tests.integration.daemon import PYTHON

# What a terminal sends for Ctrl+C: the terminal driver turns it into SIGINT (ISIG).
CTRL_C = b"\x03"
# Colours, cursor moves and private modes rich writes to a terminal.
ANSI_ESCAPE = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """``trionode ARGS`` in a pseudo-terminal; a thread reads what it draws into ``screen``.

    With ``stdout_pipe``, only stderr (and stdin) is the terminal and stdout is collected
    apart, to tell a progress line on stderr from the result on stdout.
    """

    def __init__(self, *args: str, stdout_pipe: bool = False) -> None:
        out_r, out_w = os.pipe() if stdout_pipe else (-1, -1)
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the verb, in the terminal
            if stdout_pipe:
                os.dup2(out_w, 1)
            os.execv(PYTHON, [PYTHON, "-m", "trionode", *args])
        self.screen = b""
        self.stdout = b""
        self._changed = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(self.fd, "screen"), daemon=True)]
        if stdout_pipe:
            os.close(out_w)
            self._readers.append(threading.Thread(target=self._read, args=(out_r, "stdout"), daemon=True))
        for reader in self._readers:
            reader.start()
        self.code: int | None = None

    def _read(self, fd: int, into: str) -> None:
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the terminal closed with the child
                data = b""
            with self._changed:
                setattr(self, into, getattr(self, into) + data)
                self._changed.notify_all()
            if not data:
                if into == "stdout":
                    os.close(fd)
                return

    @property
    def text(self) -> bytes:
        """The screen without its escape sequences (colours, cursor moves)."""
        with self._changed:
            return ANSI_ESCAPE.sub(b"", self.screen)

    def wait_for(self, pattern: bytes, timeout: float = 20.0) -> re.Match[bytes]:
        """The first match of the regex ``pattern`` in ``text``, waiting for it to be drawn."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (found := re.search(pattern, self.text)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no {pattern!r} on the screen within {timeout} s: {self.screen[-2000:]!r}"
                    )
                self._changed.wait(left)
            return found

    def key(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait_exit(self, timeout: float = 10.0) -> int:
        """The exit code, once the process ended and everything it wrote has been read."""
        deadline = time.monotonic() + timeout
        while self.code is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.code = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"still running after {timeout} s: {self.screen[-2000:]!r}")
            with self._changed:
                self._changed.wait(0.1)
        for reader in self._readers:
            reader.join(5)
        return self.code

    def close(self) -> None:
        if self.code is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        try:
            os.close(self.fd)
        except OSError:
            pass
