"""Exclusive locks on a file (``flock``): who holds a data dir, or a devnet's directory.

The one place the lock recipe lives. A lock lasts as long as the returned file stays open,
and the kernel drops it when the holder dies, ``kill -9`` included, so a crashed node never
leaves a stale lock behind. Child processes do not inherit it (Python opens files
non-inheritable).
"""

import fcntl
from pathlib import Path
from typing import IO


def try_lock(path: Path) -> IO[bytes] | None:
    """Lock ``path`` (created if missing) while the returned file stays open; None if another
    process holds it. ``OSError`` if the file cannot be opened at all."""
    handle = open(path, "ab")  # noqa: SIM115 - the caller keeps it open: that is the lock
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle
