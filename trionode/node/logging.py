"""Structured logs: one JSON object per line, flushed per line (INTERFACE.md, "Logs").

Every line has ``timestamp`` (ISO 8601 UTC with microseconds), ``level``, ``event`` and
``node_id`` first, then the event's fields. Bytes render as lowercase hex, exceptions as one
short string. Loggers are built here rather than through ``structlog.configure``, because a
simulator runs many nodes in one process, each with its own logger, level and clock.
Context variables bound with ``structlog.contextvars.bind_contextvars`` (a connection's
``peer``) are merged into every line of the task that bound them.

Filtering happens in the logger's class (``make_filtering_bound_logger``): a ``debug`` call
below the level is a bare ``return None``, so heartbeat logging costs nothing at ``info``.
"""

import contextlib
import json
import os
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TextIO, cast

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

# Level names of the config's ``[log] level`` and their numbers (those of ``logging``).
# Mapped here: structlog only accepts level names from 25.1 on.
LEVEL_NUMBERS: Final[Mapping[str, int]] = MappingProxyType(
    {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
)
LEVELS: Final = tuple(LEVEL_NUMBERS)
# The fields every line starts with, in this order, so that lines read well in a terminal.
HEAD_FIELDS: Final = ("timestamp", "level", "event", "node_id")
# Log files are diagnostics, not secrets: readable by the owner's other tools and users.
LOG_FILE_MODE: Final = 0o644
# Compact separators: a log line is read by machines first, and smaller is faster to write.
_SEPARATORS: Final = (",", ":")


def make_logger(
    level: str,
    *,
    stream: TextIO | None = None,
    file: Path | None = None,
    node_id: str | None = None,
    clock: Callable[[], float] = time.time,
) -> FilteringBoundLogger:
    """A logger writing JSON lines to ``stream`` and, if set, appending them to ``file``.

    ``stream`` defaults to ``sys.stdout`` as it is at the call, not at import (tests swap it).
    """
    return _build(_LineWriter(stream or sys.stdout, file), level, node_id, clock)


def make_capturing_logger(
    sink: list[dict[str, Any]],
    level: str = "debug",
    *,
    clock: Callable[[], float] = time.time,
    node_id: str | None = None,
) -> FilteringBoundLogger:
    """A logger appending each event to ``sink`` as the dict its JSON line would parse to.

    For tests and the simulator: the same processors as `make_logger`, so what passes here
    also renders as valid JSON; ``clock`` (UNIX seconds) may be a simulated clock.
    """
    return _build(_Capture(sink), level, node_id, clock)


def _build(
    writer: WrappedLogger, level: str, node_id: str | None, clock: Callable[[], float]
) -> FilteringBoundLogger:
    if level.lower() not in LEVEL_NUMBERS:
        raise ValueError(f"unknown log level {level!r} (one of {', '.join(LEVELS)})")
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _timestamper(clock),
        _format_exception,
        render_json,
    ]
    proxy = structlog.wrap_logger(
        writer,
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(LEVEL_NUMBERS[level.lower()]),
        context_class=dict,
    )
    # bind() on the lazy proxy assembles the real logger once; later calls skip the proxy.
    return cast(FilteringBoundLogger, proxy.bind(node_id=node_id))


def format_timestamp(seconds: float) -> str:
    """UNIX seconds as ``2026-11-24T23:44:00.123456Z``, always with six decimals.

    ``datetime.isoformat`` drops the fraction when it is zero; log readers should not need
    two formats.
    """
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _timestamper(clock: Callable[[], float]) -> Processor:
    def add_timestamp(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        event_dict["timestamp"] = format_timestamp(clock())
        return event_dict

    return add_timestamp


def _format_exception(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """``exc_info`` as one string ``"ValueError: bad (at file.py:12 in f)"``, not a traceback."""
    exc_info = event_dict.pop("exc_info", None)
    if not exc_info:
        return event_dict
    if exc_info is True:
        exc = sys.exc_info()[1]
    elif isinstance(exc_info, BaseException):
        exc = exc_info
    elif isinstance(exc_info, tuple):
        exc = exc_info[1]
    else:
        exc = None
    if exc is None:
        return event_dict
    text = "".join(traceback.format_exception_only(exc)).strip().replace("\n", " ")
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        text += f" (at {os.path.basename(last.filename)}:{last.lineno} in {last.name})"
    event_dict["exception"] = text
    return event_dict


def render_json(logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
    """The final processor: the JSON line (without its newline), head fields first."""
    head = {name: event_dict.pop(name, None) for name in HEAD_FIELDS}
    return json.dumps({**head, **event_dict}, separators=_SEPARATORS, default=_jsonable)


def _jsonable(value: Any) -> Any:
    """What ``json.dumps`` cannot encode itself: called only for such values."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


class _LineWriter:
    """Writes a line to a stream and a file, flushing each; survives a closed stdout."""

    def __init__(self, stream: TextIO, file: Path | None) -> None:
        self._stream: TextIO | None = stream
        # One line per write(2) with O_APPEND: lines from several processes never interleave.
        self._fd: int | None = None
        if file is not None:
            self._fd = os.open(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, LOG_FILE_MODE)
            weakref.finalize(self, os.close, self._fd)
        # Worker threads may log too; a line must not be torn.
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        line = message + "\n"
        with self._lock:
            if self._stream is not None:
                try:
                    self._stream.write(line)
                    self._stream.flush()
                except (OSError, ValueError):
                    # A closed pipe or stream (``trionode run | head``): keep running, keep the
                    # file log, stop writing there.
                    self._stream = None
            if self._fd is not None:
                # A full disk loses log lines, not the node; the stream still has them.
                with contextlib.suppress(OSError):
                    os.write(self._fd, line.encode())

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class _Capture:
    """Appends each event, parsed back from its JSON line, to a list."""

    def __init__(self, sink: list[dict[str, Any]]) -> None:
        self._sink = sink

    def msg(self, message: str) -> None:
        self._sink.append(json.loads(message))

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg
