"""write_atomic: old or new content, never a mix, never a file more open than asked."""

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trionode.atomic_file import read_text_or_none, write_atomic


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def test_creates_file_with_content_and_private_mode(tmp_path: Path) -> None:
    target = tmp_path / "node_id"
    write_atomic(target, b"abc")
    assert target.read_bytes() == b"abc"
    assert mode_of(target) == 0o600
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077])
def test_mode_is_exact_whatever_the_umask(tmp_path: Path, mask: int) -> None:
    with umask(mask):
        write_atomic(tmp_path / "peers.json", b"[]", 0o644)
        write_atomic(tmp_path / "secret", b"k")
    assert mode_of(tmp_path / "peers.json") == 0o644
    assert mode_of(tmp_path / "secret") == 0o600


def test_replaces_existing_file_and_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "peers.json"
    target.write_bytes(b"old")
    target.chmod(0o666)
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert mode_of(target) == 0o600


def test_temp_file_has_final_mode_before_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, bytes]] = []
    real_replace = os.replace

    def spy(src: Any, dst: Any) -> None:
        seen.append((mode_of(Path(src)), Path(src).read_bytes()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    with umask(0o000):
        write_atomic(tmp_path / "wallet.json", b"seed")
    assert seen == [(0o600, b"seed")]


@pytest.mark.parametrize("fail", ["replace", "fsync", "write"])
def test_failure_before_rename_keeps_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: str
) -> None:
    target = tmp_path / "peers.json"
    write_atomic(target, b"old content")

    def boom(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, fail, boom)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, b"new content")
    assert target.read_bytes() == b"old content"
    assert leftovers(tmp_path) == []


def test_failure_on_fresh_file_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        write_atomic(tmp_path / "node_id", b"x")
    assert list(tmp_path.iterdir()) == []


def test_no_overwrite_refuses_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "alice.json"
    write_atomic(target, b"first", overwrite=False)
    with pytest.raises(FileExistsError):
        write_atomic(target, b"second", overwrite=False)
    assert target.read_bytes() == b"first"
    assert leftovers(tmp_path) == []


def test_large_content(tmp_path: Path) -> None:
    data = os.urandom(3_000_000)
    write_atomic(tmp_path / "big", data)
    assert (tmp_path / "big").read_bytes() == data


@given(st.binary(max_size=4096))
def test_round_trip(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        target = Path(directory) / "f"
        write_atomic(target, b"previous")
        write_atomic(target, data)
        assert target.read_bytes() == data
        assert os.listdir(directory) == ["f"]


def test_read_text_or_none(tmp_path: Path) -> None:
    assert read_text_or_none(tmp_path / "missing") is None
    write_atomic(tmp_path / "present", "héllo\n".encode())
    assert read_text_or_none(tmp_path / "present") == "héllo\n"
