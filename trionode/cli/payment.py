"""A payment signed locally (keys never enter the node) and submitted: ``trionode send``, devnet."""

import argparse
import time
from typing import Any

from trionode.chain.amounts import coins_json, format_coins, parse_coins
from trionode.cli.errors import EXIT_USAGE, UserError
from trionode.cli.formats import coins
from trionode.cli.target import node_data_dir
from trionode.control.client import ControlClient
from trionode.wallet import Wallet, WalletError, Wallets


def send(args: argparse.Namespace, client: ControlClient) -> dict[str, Any]:
    try:
        amount = parse_coins(args.amount)
    except ValueError as exc:
        raise UserError(f"--amount: {exc}", EXIT_USAGE) from None
    if amount <= 0:
        raise UserError("--amount: must be more than 0", EXIT_USAGE)
    wallets = Wallets(node_data_dir(args))
    try:
        sender = wallets.load(args.sender)
        recipient = wallets.resolve(args.to)
    except WalletError as exc:
        raise UserError(str(exc)) from None
    return pay(client, sender, recipient, amount)


def pay(client: ControlClient, sender: Wallet, recipient: bytes, amount: int) -> dict[str, Any]:
    """Sign a payment of ``amount`` units locally (keys never enter the node) and submit it."""
    from trionode.chain.transaction import sign_transaction

    status = client.call("status")
    account = client.call("balance", address=sender.address.hex())
    spendable = parse_coins(account["spendable"])
    if amount > spendable:
        raise UserError(
            f"balance too low: {sender.name} can spend {format_coins(spendable)} "
            f"(confirmed {coins(account['balance'])}), asked {format_coins(amount)}"
        )
    tx = sign_transaction(
        sender.key,
        bytes.fromhex(status["network"]),
        recipient,
        amount,
        int(account["next_nonce"]),
        int(time.time() * 1000),
    )
    result = client.call("submit", tx=tx.to_wire())
    return {**result, "from": sender.address.hex(), "to": recipient.hex(), "amount": coins_json(amount)}
