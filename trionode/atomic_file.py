"""Crash-safe file replacement: after a crash a file holds either its old or its new content.

The one place atomic writes live (``peers.json``, ``node_id``, wallets). The recipe: write a
temporary file in the same directory (a rename is only atomic within one file system), fsync
it, rename it over the target, fsync the directory so the rename itself survives a power loss.
The temporary file is created with the final mode, so there is no moment at which a secret is
readable by others.

A crash between creating and renaming the temporary file leaves a ``.NAME.XXXXXXXX.tmp`` file
next to the target; it is never read, and its mode is the target's.
"""

import errno
import os
import secrets
from pathlib import Path
from typing import Final

# Enough randomness that concurrent writers of one file never pick the same temporary name.
_TEMP_TOKEN_BYTES: Final = 8
# Files the node writes hold keys or state of one user: private unless the caller says otherwise.
DEFAULT_MODE: Final = 0o600


def write_atomic(path: Path, data: bytes, mode: int = DEFAULT_MODE, *, overwrite: bool = True) -> None:
    """Replace ``path`` with ``data`` so that readers and crashes see old or new, never a mix.

    The file gets exactly ``mode`` (the umask does not apply). With ``overwrite=False`` an
    existing ``path`` raises ``FileExistsError`` and is left alone, with no race between the
    check and the write (for files that must never be replaced, such as wallet keys).
    """
    directory = path.parent
    temp = directory / f".{path.name}.{secrets.token_hex(_TEMP_TOKEN_BYTES)}.tmp"
    # O_EXCL: never follow or reuse an existing file; the umask can only remove bits from
    # ``mode``, and fchmod then sets it exactly, so the file is never more open than ``mode``.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(temp, path)
        else:
            # link() fails if the target exists, atomically; the temporary name is removed below.
            os.link(temp, path)
            temp.unlink()
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_directory(directory)


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some file systems cannot fsync a directory; the rename is still atomic there.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def read_text_or_none(path: Path) -> str | None:
    """The file's UTF-8 text, or None if it does not exist (a fresh data dir)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
