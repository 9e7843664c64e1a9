"""The command line: every verb, its options and its help text; usage errors exit with 2."""

import argparse
from pathlib import Path
from typing import NoReturn

from trionode import AGENT
from trionode.cli.errors import EXIT_USAGE
from trionode.node.logging import LEVELS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="trionode",
        description="A proof-of-work blockchain node on trio: raw TCP, length-prefixed msgpack frames.",
        epilog="Control verbs talk to the node owning the data dir (--data-dir, or [node] data_dir of --config).",
    )
    parser.add_argument("--version", action="version", version=AGENT)
    _where(parser)
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)

    run = sub.add_parser("run", help="run a node in the foreground until Ctrl+C or `trionode stop`")
    _where(run, suppress=True)
    run.add_argument(
        "--listen", metavar="HOST:PORT", help="address to accept peers on (default 127.0.0.1:5001)"
    )
    run.add_argument(
        "--peer", metavar="HOST:PORT", action="append", default=[], help="a peer to dial (repeatable)"
    )
    run.add_argument("--log-level", choices=LEVELS, help="log verbosity")

    def control(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        _where(p, suppress=True)
        p.add_argument("--json", action="store_true", help="print one JSON document")
        return p

    control("status", "node summary")
    control("peers", "the peer table")
    control("connect", "dial a peer now").add_argument("address", metavar="HOST:PORT")
    control("disconnect", "drop a peer").add_argument("node_id", metavar="NODE_ID")
    chain = control("chain", "blocks from a height, ascending")
    chain.add_argument(
        "--from", dest="start", type=_count, default=0, metavar="H", help="first height (default 0)"
    )
    chain.add_argument("--limit", type=_count, default=20, metavar="N", help="at most N blocks (default 20)")
    control("block", "one block").add_argument("ident", metavar="HASH_OR_HEIGHT")
    control("pending", "the mempool")
    control("balance", "confirmed balance").add_argument("who", metavar="ADDRESS_OR_WALLET")
    send = control("send", "sign, submit and broadcast a transaction")
    send.add_argument("--from", dest="sender", required=True, metavar="WALLET")
    send.add_argument("--to", required=True, metavar="ADDRESS_OR_WALLET")
    send.add_argument("--amount", required=True, metavar="AMOUNT", help="coins, e.g. 12.5")
    control("mine", "mine one block of the pending transactions").add_argument(
        "--to", metavar="ADDRESS_OR_WALLET", help="reward address (default: the node's own wallet)"
    )
    control("sync", "run consensus with peers now")
    control("validate", "check the whole stored chain")
    control("stop", "graceful shutdown")

    wallet = sub.add_parser("wallet", help="local Ed25519 wallets (no node needed)")
    _where(wallet, suppress=True)
    wsub = wallet.add_subparsers(
        dest="wallet_verb", metavar="new|list|show", parser_class=_Parser, required=True
    )
    for name, help_text in (("new", "create a wallet"), ("show", "show a wallet's address")):
        w = wsub.add_parser(name, help=help_text)
        _where(w, suppress=True)
        w.add_argument("name", metavar="NAME")
        w.add_argument("--json", action="store_true", help="print one JSON document")
    wl = wsub.add_parser("list", help="list wallets")
    _where(wl, suppress=True)
    wl.add_argument("--json", action="store_true", help="print one JSON array")

    devnet = sub.add_parser(
        "devnet",
        help="start a local network of real nodes (Ctrl+C stops them)",
        description="Start N real nodes on free loopback ports, connected in a line (discovery "
        "does the rest), fund wallets alice and bob, and stay in the foreground until Ctrl+C. "
        "Run it again on the same --dir to restart the same nodes and chains.",
    )
    devnet.add_argument("--nodes", type=int, metavar="N", help="how many nodes, 1..32 (default 3)")
    devnet.add_argument(
        "--dir",
        type=Path,
        default=Path("devnet"),
        metavar="DIR",
        help="configs, data dirs and logs of the nodes (default ./devnet)",
    )
    devnet.add_argument(
        "--difficulty",
        type=int,
        metavar="D",
        help="chain difficulty: leading zero hex digits, 0..8 (default 2, like configs/)",
    )

    top = sub.add_parser(
        "top",
        help="a live view of a running node (or of every node of a devnet)",
        description="A live view of the node owning the data dir, refreshed every second; given "
        "a directory of data dirs (a devnet's DIR, or ./data holding data/node1..3), of every "
        "node in it. q or Ctrl+C quits. Without a terminal (a pipe) it prints one snapshot.",
    )
    _where(top, suppress=True)

    sim = sub.add_parser("sim", help="run a deterministic simulated network")
    sim.add_argument("args", nargs=argparse.REMAINDER, help="see: trionode sim --help")
    return parser


def _count(text: str) -> int:
    """A non-negative integer argument."""
    if not text.isdecimal():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return int(text)


def _where(parser: argparse.ArgumentParser, suppress: bool = False) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--config", type=Path, metavar="FILE", default=default, help="TOML config file")
    parser.add_argument(
        "--data-dir", type=Path, metavar="DIR", default=default, help="data dir (default ./data)"
    )
