"""JSON log lines: required fields, flushed per line, level filtering, capture with a fake clock."""

import io
import json
import os
import re
import select
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from trionode.node.logging import LEVELS, format_timestamp, make_capturing_logger, make_logger

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def lines_of(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_line_has_required_fields_first() -> None:
    stream = io.StringIO()
    log = make_logger("info", stream=stream, node_id="ab12", clock=lambda: 1_795_995_840.123456)
    log.info("block_accepted", hash="00ff", height=3)
    text = stream.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    assert list(json.loads(text)) == ["timestamp", "level", "event", "node_id", "hash", "height"]
    assert json.loads(text) == {
        "timestamp": "2026-11-29T23:44:00.123456Z",
        "level": "info",
        "event": "block_accepted",
        "node_id": "ab12",
        "hash": "00ff",
        "height": 3,
    }


def test_timestamp_always_has_microseconds() -> None:
    assert format_timestamp(0.0) == "1970-01-01T00:00:00.000000Z"
    assert format_timestamp(1.5) == "1970-01-01T00:00:01.500000Z"


@given(st.floats(min_value=0, max_value=4_000_000_000))
def test_timestamp_format(seconds: float) -> None:
    assert TIMESTAMP.fullmatch(format_timestamp(seconds))


def test_real_clock_timestamp() -> None:
    stream = io.StringIO()
    make_logger("info", stream=stream).info("node_started")
    assert TIMESTAMP.fullmatch(lines_of(stream)[0]["timestamp"])


def test_node_id_always_present_and_bindable() -> None:
    stream = io.StringIO()
    log = make_logger("info", stream=stream)
    log.info("node_started")
    log.bind(node_id="cafe").info("listening", address="127.0.0.1:5001")
    first, second = lines_of(stream)
    assert first["node_id"] is None
    assert second["node_id"] == "cafe"
    assert second["address"] == "127.0.0.1:5001"


@pytest.mark.parametrize("level", LEVELS)
def test_level_filtering(level: str) -> None:
    stream = io.StringIO()
    log = make_logger(level.upper(), stream=stream)
    for name in LEVELS:
        getattr(log, name)(f"at_{name}")
    written = [line["level"] for line in lines_of(stream)]
    assert written == list(LEVELS[LEVELS.index(level) :])


def test_filtered_calls_do_no_work() -> None:
    calls = []

    def clock() -> float:
        calls.append(1)
        return 0.0

    log = make_logger("info", stream=io.StringIO(), clock=clock)
    for _ in range(100):
        log.debug("heartbeat", nonce=1)
    assert calls == []
    log.info("x")
    assert calls == [1]


def test_unknown_level() -> None:
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        make_logger("loud")


def test_bytes_render_as_hex() -> None:
    stream = io.StringIO()
    make_logger("info", stream=stream).info("x", hash=b"\x00\xab", nested=[b"\x01"], view=bytearray(b"\x02"))
    line = lines_of(stream)[0]
    assert (line["hash"], line["nested"], line["view"]) == ("00ab", ["01"], "02")


def test_other_values_do_not_break_the_line() -> None:
    stream = io.StringIO()
    make_logger("info", stream=stream).info("x", path=Path("/a"), obj=object(), peers=("a", "b"))
    line = lines_of(stream)[0]
    assert line["path"] == "/a" and line["peers"] == ["a", "b"] and "object" in line["obj"]


def fail() -> None:
    raise ValueError("bad\nthing")


def test_exception_is_one_string_field() -> None:
    stream = io.StringIO()
    log = make_logger("info", stream=stream)
    try:
        fail()
    except ValueError:
        log.exception("peer_disconnected", reason="crash")
    log.warning("handshake_failed", exc_info=RuntimeError("timeout"))
    log.info("no_exception", exc_info=False)
    assert stream.getvalue().count("\n") == 3
    crashed, failed, plain = lines_of(stream)
    assert crashed["level"] == "error"
    assert re.fullmatch(r"ValueError: bad thing \(at test_logging\.py:\d+ in fail\)", crashed["exception"])
    assert "exc_info" not in crashed
    assert failed["exception"] == "RuntimeError: timeout"
    assert "exception" not in plain and "exc_info" not in plain


def test_contextvars_are_merged() -> None:
    stream = io.StringIO()
    log = make_logger("info", stream=stream)
    structlog.contextvars.bind_contextvars(peer="ff" * 16)
    try:
        log.info("peer_connected")
    finally:
        structlog.contextvars.clear_contextvars()
    log.info("after")
    first, second = lines_of(stream)
    assert first["peer"] == "ff" * 16
    assert "peer" not in second


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_fd, write_fd = os.pipe()
    yield read_fd, write_fd
    os.close(read_fd)


def test_flushed_per_line_into_a_pipe(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    with os.fdopen(write_fd, "w") as stream:  # block-buffered: not a TTY
        log = make_logger("info", stream=stream, node_id="n1")
        log.info("node_started")
        ready, _, _ = select.select([read_fd], [], [], 1.0)
        assert ready, "the line stayed in the stream's buffer"
        line = os.read(read_fd, 65536)
        assert line.endswith(b"\n")
        assert json.loads(line)["event"] == "node_started"
        log.info("node_stopped")
        assert json.loads(os.read(read_fd, 65536))["event"] == "node_stopped"


def test_file_gets_the_same_lines(tmp_path: Path) -> None:
    path = tmp_path / "node.log"
    path.write_text('{"event":"earlier"}\n')
    stream = io.StringIO()
    log = make_logger("info", stream=stream, file=path, clock=lambda: 0.0)
    log.info("node_started")
    assert path.read_text() == '{"event":"earlier"}\n' + stream.getvalue()  # appended, no close needed
    log.info("node_stopped")
    assert path.read_text().count("\n") == 3


def test_closed_stream_does_not_stop_the_node(tmp_path: Path) -> None:
    stream = io.StringIO()
    log = make_logger("info", stream=stream, file=tmp_path / "node.log")
    stream.close()
    log.info("still_running")
    log.info("still_running")
    assert (tmp_path / "node.log").read_text().count("still_running") == 2


def test_capturing_logger_with_injected_clock() -> None:
    sink: list[dict[str, Any]] = []
    now = [100.0]
    log = make_capturing_logger(sink, clock=lambda: now[0], node_id="n2")
    log.debug("heartbeat", nonce=7, echo=False)
    now[0] = 101.25
    log.info("block_mined", hash=b"\xbe\xef", height=1)
    assert sink == [
        {
            "timestamp": "1970-01-01T00:01:40.000000Z",
            "level": "debug",
            "event": "heartbeat",
            "node_id": "n2",
            "nonce": 7,
            "echo": False,
        },
        {
            "timestamp": "1970-01-01T00:01:41.250000Z",
            "level": "info",
            "event": "block_mined",
            "node_id": "n2",
            "hash": "beef",
            "height": 1,
        },
    ]


def test_capturing_logger_filters_levels() -> None:
    sink: list[dict[str, Any]] = []
    log = make_capturing_logger(sink, "warning")
    log.info("hidden")
    log.error("shown")
    assert [event["event"] for event in sink] == ["shown"]


def test_loggers_are_independent() -> None:
    first: list[dict[str, Any]] = []
    second: list[dict[str, Any]] = []
    a = make_capturing_logger(first, "debug", node_id="a", clock=lambda: 1.0)
    b = make_capturing_logger(second, "error", node_id="b", clock=lambda: 2.0)
    a.debug("x")
    b.debug("x")
    b.error("y")
    assert [(e["node_id"], e["event"]) for e in first] == [("a", "x")]
    assert [(e["node_id"], e["event"]) for e in second] == [("b", "y")]
