"""Local Ed25519 wallets: named keys in ``<data_dir>/wallets/``, usable without a running node.

Each wallet is one file ``<data_dir>/wallets/NAME.json`` (mode 0600, in a directory of mode
0700, written atomically and never overwritten), holding one JSON object of lowercase hex
strings::

    {"name": "alice", "address": "<40 hex>", "public_key": "<64 hex>", "seed": "<64 hex>"}

``seed`` is the 32-byte Ed25519 private key; ``public_key`` and ``address`` are derived from it
and stored only so that ``jq`` shows them, and a file whose copies disagree with the seed is
rejected as corrupt. The file name is the wallet's name (renaming the file renames the wallet).
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from trionode import data_files
from trionode.atomic_file import write_atomic
from trionode.chain.keys import ADDRESS_LEN, KeyPair

# Safe as a file name on every platform and in a shell without quoting.
WALLET_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Where a name or an address is accepted, 40 hex characters always mean an address.
ADDRESS_TEXT: Final = re.compile(rf"[0-9A-Fa-f]{{{2 * ADDRESS_LEN}}}")
# Wallets are secrets of one user: nobody else may list or read them.
DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600
SUFFIX: Final = ".json"


class WalletError(Exception):
    """An expected wallet problem; its message is one line meant for the user."""


class WalletNameError(WalletError):
    """A name that can never be a wallet's (the CLI treats it as a usage error)."""


def is_address_text(text: str) -> bool:
    return ADDRESS_TEXT.fullmatch(text) is not None


def is_wallet_name(text: str) -> bool:
    return WALLET_NAME.fullmatch(text) is not None and not is_address_text(text)


@dataclass(frozen=True)
class Wallet:
    name: str
    key: KeyPair = field(compare=False, repr=False)
    address: bytes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", self.key.address)

    def to_json(self) -> dict[str, str]:
        """What ``wallet show --json`` prints: never the private key."""
        return {
            "name": self.name,
            "address": self.address.hex(),
            "public_key": self.key.public_key.hex(),
        }


class Wallets:
    """The wallet directory of one data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / data_files.WALLETS

    def new(self, name: str, seed: bytes | None = None) -> Wallet:
        """Create and store a wallet; a fresh random key unless ``seed`` is given."""
        self._check_name(name)
        key = KeyPair(seed) if seed is not None else KeyPair.generate()
        wallet = Wallet(name, key)
        record = {**wallet.to_json(), "seed": key.seed.hex()}
        self.directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self.directory.chmod(DIR_MODE)  # mkdir's mode is cut by the umask; tighten an old dir too
        try:
            write_atomic(
                self._path(name),
                (json.dumps(record, indent=2) + "\n").encode(),
                FILE_MODE,
                overwrite=False,
            )
        except FileExistsError:
            raise WalletError(f"wallet '{name}' already exists in {self.directory}") from None
        return wallet

    def list(self) -> list[Wallet]:
        """Every wallet, sorted by name; a corrupt file raises rather than hiding a key."""
        if not self.directory.is_dir():
            return []
        names = sorted(
            path.name.removesuffix(SUFFIX)
            for path in self.directory.iterdir()
            if path.name.endswith(SUFFIX) and is_wallet_name(path.name.removesuffix(SUFFIX))
        )
        return [self.load(name) for name in names]

    def load(self, name: str) -> Wallet:
        self._check_name(name)
        path = self._path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise WalletError(
                f"unknown wallet '{name}' in {self.directory} "
                f"(create it with: trionode --data-dir {self.directory.parent} wallet new {name})"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise WalletError(f"cannot read wallet file {path}: {exc}") from None
        try:
            return Wallet(name, _parse(text))
        except ValueError as exc:
            raise WalletError(f"corrupt wallet file {path}: {exc}") from None

    def resolve(self, name_or_address: str) -> bytes:
        """An address for a CLI argument: 40 hex characters as is, else a wallet's address."""
        if is_address_text(name_or_address):
            return bytes.fromhex(name_or_address)
        try:
            return self.load(name_or_address).address
        except WalletError:
            if len(name_or_address) >= 32 and not self._path(name_or_address).exists():
                # Long enough to be a mistyped address rather than a wallet someone forgot.
                raise WalletError(
                    f"{name_or_address!r} is neither an address (40 hex digits) nor a wallet in "
                    f"{self.directory}"
                ) from None
            raise

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}{SUFFIX}"

    @staticmethod
    def _check_name(name: str) -> None:
        if not WALLET_NAME.fullmatch(name):
            raise WalletNameError(f"bad wallet name {name!r}: use 1 to 64 of A-Z a-z 0-9 _ -")
        if is_address_text(name):
            raise WalletNameError(f"bad wallet name {name!r}: 40 hex characters would read as an address")


def _parse(text: str) -> KeyPair:
    """The key of a wallet file; ValueError (one line) on anything else."""
    try:
        record: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    fields = {}
    for name in ("seed", "public_key", "address"):
        value = record.get(name)
        if not isinstance(value, str):
            raise ValueError(f'missing "{name}"')
        try:
            fields[name] = bytes.fromhex(value)
        except ValueError:
            raise ValueError(f'"{name}" is not hex') from None
    if len(fields["seed"]) != 32:
        raise ValueError('"seed" is not 32 bytes')
    key = KeyPair(fields["seed"])
    if fields["public_key"] != key.public_key or fields["address"] != key.address:
        raise ValueError('"public_key" or "address" does not match "seed"')
    return key
