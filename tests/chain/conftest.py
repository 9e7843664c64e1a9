"""Fixtures of the chain-core tests (helpers.py holds the plain functions)."""

from pathlib import Path

import pytest

from trionode.chain.tree import Chain

from helpers import EASY, address, extend, new_chain


@pytest.fixture
def chain() -> Chain:
    """A fresh in-memory chain at difficulty 1, at genesis."""
    return new_chain(EASY)


@pytest.fixture
def funded(chain: Chain) -> Chain:
    """Keys 1 and 2 each mined one block (50 coins each); height 2."""
    extend(chain, 1, address(1))
    extend(chain, 1, address(2))
    return chain


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "chain.sqlite"
