"""A payment signed locally (keys never enter the node) and submitted: ``trionode send``, devnet."""

import argparse
import time
from dataclasses import dataclass
from typing import Any

from trionode.chain.amounts import coins_json, format_coins, parse_coins
from trionode.cli.errors import EXIT_USAGE, UserError
from trionode.cli.formats import coins
from trionode.cli.target import resolve, wallet
from trionode.control.client import ControlClient
from trionode.wallet import Wallet


@dataclass(frozen=True)
class Payment:
    """A ``send`` command line, checked: what to sign once the node is reached."""

    sender: Wallet
    recipient: bytes
    amount: int  # units


def payment(args: argparse.Namespace) -> Payment:
    """Check ``send``'s arguments before the node is asked, so that a bad amount or wallet gets
    the same answer whether or not a node runs."""
    try:
        amount = parse_coins(args.amount)
    except ValueError as exc:
        raise UserError(f"--amount: {exc}", EXIT_USAGE) from None
    if amount <= 0:
        raise UserError("--amount: must be more than 0", EXIT_USAGE)
    return Payment(wallet(args, args.sender), bytes.fromhex(resolve(args, args.to)), amount)


def send(client: ControlClient, checked: Payment) -> dict[str, Any]:
    return pay(client, checked.sender, checked.recipient, checked.amount)


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
