"""Local wallets: create, list, show, resolve; private files; one-line errors."""

import json
import stat
from pathlib import Path

import pytest

from trionode.chain.keys import KeyPair
from trionode.wallet import WalletError, Wallets

SEED = bytes(range(32))


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def wallets(tmp_path: Path) -> Wallets:
    return Wallets(tmp_path / "data")


def test_new_then_load(wallets: Wallets) -> None:
    created = wallets.new("alice", seed=SEED)
    assert created.name == "alice"
    assert created.address == KeyPair(SEED).address
    loaded = wallets.load("alice")
    assert loaded == created
    assert loaded.key.seed == SEED


def test_new_generates_distinct_keys(wallets: Wallets) -> None:
    assert wallets.new("a").address != wallets.new("b").address


def test_file_format_and_modes(wallets: Wallets) -> None:
    wallet = wallets.new("alice", seed=SEED)
    path = wallets.directory / "alice.json"
    assert json.loads(path.read_text()) == {
        "name": "alice",
        "address": wallet.address.hex(),
        "public_key": KeyPair(SEED).public_key.hex(),
        "seed": SEED.hex(),
    }
    assert mode_of(path) == 0o600
    assert mode_of(wallets.directory) == 0o700


def test_loose_existing_directory_is_tightened(wallets: Wallets) -> None:
    wallets.directory.mkdir(parents=True, mode=0o755)
    wallets.directory.chmod(0o755)
    wallets.new("alice")
    assert mode_of(wallets.directory) == 0o700


def test_to_json_never_has_the_seed(wallets: Wallets) -> None:
    shown = wallets.new("alice", seed=SEED).to_json()
    assert shown == {
        "name": "alice",
        "address": KeyPair(SEED).address.hex(),
        "public_key": KeyPair(SEED).public_key.hex(),
    }
    assert SEED.hex() not in repr(wallets.load("alice"))


def test_list_sorted_and_skips_other_files(wallets: Wallets) -> None:
    assert wallets.list() == []
    for name in ["carol", "Alice", "bob"]:
        wallets.new(name)
    (wallets.directory / "notes.txt").write_text("hi")
    (wallets.directory / ".bob.json.0123.tmp").write_text("partial")
    assert [w.name for w in wallets.list()] == ["Alice", "bob", "carol"]


def test_duplicate_name_is_refused_and_key_kept(wallets: Wallets) -> None:
    first = wallets.new("alice")
    with pytest.raises(WalletError, match=r"wallet 'alice' already exists in .*wallets$"):
        wallets.new("alice", seed=SEED)
    assert wallets.load("alice").address == first.address


@pytest.mark.parametrize(
    "name", ["", "a b", "../x", "x/y", "a.json", "é", "x" * 65, "ab" * 20, "-\n", "AB" * 20]
)
def test_bad_names(wallets: Wallets, name: str) -> None:
    with pytest.raises(WalletError, match="bad wallet name") as info:
        wallets.new(name)
    assert "\n" not in str(info.value).replace(repr(name), "")
    assert not wallets.directory.exists()


def test_longest_name(wallets: Wallets) -> None:
    assert wallets.new("a" * 64).name == "a" * 64


def test_resolve_address_passes_through(wallets: Wallets) -> None:
    address = KeyPair(SEED).address
    assert wallets.resolve(address.hex()) == address
    assert wallets.resolve(address.hex().upper()) == address


def test_resolve_wallet_name(wallets: Wallets) -> None:
    wallet = wallets.new("bob")
    assert wallets.resolve("bob") == wallet.address


def test_resolve_unknown(wallets: Wallets) -> None:
    with pytest.raises(WalletError) as info:
        wallets.resolve("x")
    assert str(info.value) == (
        f"unknown wallet 'x' in {wallets.directory} (create it with: trionode --data-dir {wallets.directory.parent} wallet new x)"
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "not JSON"),
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ("{}", 'missing "seed"'),
        ('{"seed": "zz", "public_key": "", "address": ""}', '"seed" is not hex'),
        ('{"seed": "00", "public_key": "", "address": ""}', '"seed" is not 32 bytes'),
        ("MISMATCH", "does not match"),
    ],
)
def test_corrupt_file(wallets: Wallets, content: str, problem: str) -> None:
    wallets.new("alice", seed=SEED)
    path = wallets.directory / "alice.json"
    if content == "MISMATCH":
        record = json.loads(path.read_text())
        record["address"] = "00" * 20
        content = json.dumps(record)
    path.write_text(content)
    for call in (lambda: wallets.load("alice"), wallets.list, lambda: wallets.resolve("alice")):
        with pytest.raises(WalletError) as info:
            call()
        message = str(info.value)
        assert message.startswith(f"corrupt wallet file {path}: ")
        assert problem in message
        assert "\n" not in message


def test_binary_garbage_is_one_line_error(wallets: Wallets) -> None:
    wallets.new("alice")
    (wallets.directory / "alice.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(WalletError, match=r"alice\.json") as info:
        wallets.load("alice")
    assert "\n" not in str(info.value)


def test_a_mistyped_address_is_called_that(wallets: Wallets) -> None:
    with pytest.raises(WalletError, match="neither an address \\(40 hex digits\\) nor a wallet"):
        wallets.resolve("z" * 40)
    with pytest.raises(WalletError, match="neither an address"):
        wallets.resolve("ab" * 19)  # 38 hex digits: one byte short
