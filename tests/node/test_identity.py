"""The node key: created once (0600), its node id derived and written beside it."""

import os
import stat
from pathlib import Path

import pytest

from trionode.node.app import StartupError, load_identity
from trionode.wire.identity import node_id_of


def test_created_once_then_loaded(tmp_path: Path) -> None:
    first, old = load_identity(tmp_path, os.urandom)
    assert old is None
    assert stat.S_IMODE((tmp_path / "node_key").stat().st_mode) == 0o600
    assert (tmp_path / "node_id").read_text().strip() == first.node_id.hex()
    assert first.node_id == node_id_of(first.key.public_key)
    again, old = load_identity(tmp_path, lambda n: b"\x00" * n)  # entropy unused: the key exists
    assert again.node_id == first.node_id and old is None


def test_a_data_dir_with_an_old_random_node_id_gets_a_derived_one(tmp_path: Path) -> None:
    (tmp_path / "node_id").write_text("ab" * 16 + "\n")
    identity, old = load_identity(tmp_path, os.urandom)
    assert old == "ab" * 16
    assert (tmp_path / "node_id").read_text().strip() == identity.node_id.hex() != "ab" * 16


def test_a_damaged_node_key_is_a_clear_error_not_a_new_identity(tmp_path: Path) -> None:
    (tmp_path / "node_key").write_text("not hex\n")
    with pytest.raises(StartupError, match="node_key: not a node key"):
        load_identity(tmp_path, os.urandom)
    assert (tmp_path / "node_key").read_text() == "not hex\n"  # left for the user to look at
