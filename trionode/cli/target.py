"""Which node and wallets a command line names (--config, --data-dir), and a client of that node."""

import argparse
from pathlib import Path
from typing import Any

from trionode.cli.errors import EXIT_USAGE, UserError
from trionode.control.client import ControlClient, NodeNotRunning
from trionode.node.config import ConfigError, NodeConfig, load_config
from trionode.wallet import WalletError, Wallets


def node_config(args: argparse.Namespace, **overrides: Any) -> NodeConfig:
    try:
        return load_config(args.config, {"data_dir": args.data_dir, **overrides})
    except ConfigError as exc:
        raise UserError(str(exc), EXIT_USAGE) from None


def node_data_dir(args: argparse.Namespace) -> Path:
    return node_config(args).data_dir


def _selector(args: argparse.Namespace) -> str:
    """How the user named the node (`` --config FILE``), to repeat in a hint; "" for defaults."""
    if args.config is not None:
        return f" --config {args.config}"
    if args.data_dir is not None:
        return f" --data-dir {args.data_dir}"
    return ""


def not_running(args: argparse.Namespace, exc: NodeNotRunning) -> UserError:
    text = str(exc)
    if text.startswith("no node is running"):
        text += f" (start one with: trionode{_selector(args)} run)"
    return UserError(text)


def node_client(args: argparse.Namespace, timeout: float | None = 30.0) -> ControlClient:
    try:
        return ControlClient(node_data_dir(args), timeout=timeout)
    except NodeNotRunning as exc:
        raise not_running(args, exc) from None


def resolve(args: argparse.Namespace, who: str) -> str:
    try:
        return Wallets(node_data_dir(args)).resolve(who).hex()
    except WalletError as exc:
        raise UserError(str(exc)) from None
