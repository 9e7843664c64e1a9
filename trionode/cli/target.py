"""Which node and wallets a command line names (--config, --data-dir), and a client of that node."""

import argparse
import re
from pathlib import Path
from typing import Any, Final

from trionode.cli.errors import EXIT_FAILURE, EXIT_USAGE, UserError
from trionode.control.client import ControlClient, NodeNotRunning
from trionode.node.config import ConfigError, NodeConfig, load_config
from trionode.wallet import SUFFIX, Wallet, WalletError, WalletNameError, Wallets, is_address_text

# Hex digits with at least one decimal digit: more likely a cut or mistyped address than a
# wallet name (a name like "cafe" gets the wallet hint).
_HEX_TYPO: Final = re.compile(r"(?=.*[0-9])[0-9A-Fa-f]+")


def node_config(args: argparse.Namespace, **overrides: Any) -> NodeConfig:
    try:
        return load_config(args.config, {"data_dir": args.data_dir, **overrides})
    except ConfigError as exc:
        raise UserError(str(exc), EXIT_USAGE) from None


def node_data_dir(args: argparse.Namespace) -> Path:
    return node_config(args).data_dir


def selector(args: argparse.Namespace) -> str:
    """How the user named the node (`` --config FILE``), to repeat in a hint; "" for defaults."""
    if args.config is not None:
        return f" --config {args.config}"
    if args.data_dir is not None:
        return f" --data-dir {args.data_dir}"
    return ""


def not_running(args: argparse.Namespace, exc: NodeNotRunning, start: str | None = None) -> UserError:
    """Add how to start a node to "no node is running": ``start``, or else ``trionode run``."""
    text = str(exc)
    if text.startswith("no node is running"):
        text += f" ({start or f'start one with: trionode{selector(args)} run'})"
    return UserError(text)


def node_client(args: argparse.Namespace, timeout: float | None = 30.0) -> ControlClient:
    try:
        return ControlClient(node_data_dir(args), timeout=timeout)
    except NodeNotRunning as exc:
        raise not_running(args, exc) from None


def wallet(args: argparse.Namespace, name: str) -> Wallet:
    """A wallet of this data dir, whose key signs (``send --from``)."""
    try:
        return Wallets(node_data_dir(args)).load(name)
    except WalletError as exc:
        raise UserError(str(exc), EXIT_USAGE if isinstance(exc, WalletNameError) else EXIT_FAILURE) from None


def resolve(args: argparse.Namespace, who: str) -> str:
    """The address an ADDRESS_OR_WALLET argument names (``--to``, ``balance``, ``mine --to``).

    A wallet that is not in this data dir is not offered to be created, as for ``--from``:
    a recipient usually lives elsewhere (another node's data dir, another person), and a new
    wallet of the same name would be someone else.
    """
    if is_address_text(who):
        return who.lower()
    wallets = Wallets(node_data_dir(args))
    try:
        return wallets.load(who).address.hex()
    except WalletNameError as exc:
        raise UserError(str(exc), EXIT_USAGE) from None
    except WalletError as exc:
        if (wallets.directory / f"{who}{SUFFIX}").exists():
            raise UserError(str(exc)) from None  # there, but unreadable: say why
    text = f"{who!r} is neither a wallet in {wallets.directory} nor a 40-hex-digit address"
    if _HEX_TYPO.fullmatch(who):
        raise UserError(f"{text} (it has {len(who)} hex digits)")
    raise UserError(f"{text} (give {who}'s address: trionode --data-dir DIR wallet show {who})")
