"""The CLI's exit codes and its one expected-failure exception, shared by every verb.

Exit codes (README, "CLI reference"): 0 success; 1 an expected runtime failure (no node
running, rejected transaction, unreachable peer, port in use); 2 a bad config file or
command line. Expected errors are one line on stderr, never a traceback.
"""

from typing import Final

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2


class UserError(Exception):
    """An expected failure with a one-line message and an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code
