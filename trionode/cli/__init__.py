"""``trionode``: run a node, drive it over its control socket, manage wallets.

The console script is ``trionode.cli:main``. One concept per module: ``parser`` (the command
line), ``entry`` (dispatch and exit codes), ``errors`` (exit codes, ``UserError``), ``target``
(which node and wallets the arguments name), ``formats`` (JSON or human output),
``progress`` (the stderr progress line), ``payment`` (sign and submit a payment),
``control_verbs`` (the verbs that call a running node), ``commands`` (run, wallet, devnet,
top, sim).
"""

from trionode.cli.entry import main
from trionode.cli.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UserError
from trionode.cli.parser import build_parser
from trionode.cli.payment import pay

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "UserError", "build_parser", "main", "pay"]
