"""``trionode``: run a node, drive it over its control socket, manage wallets.

Exit codes (README, "CLI reference"): 0 success; 1 an expected runtime failure (no node
running, rejected transaction, unreachable peer, port in use); 2 a bad config file or
command line. Expected errors are one line on stderr, never a traceback.
"""

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, NoReturn

from trionode import AGENT
from trionode.chain.amounts import coins_json, format_coins, parse_coins
from trionode.control.client import ControlClient, NodeNotRunning
from trionode.control.protocol import ControlError
from trionode.node.config import ConfigError, NodeConfig, load_config, parse_hostport
from trionode.node.logging import LEVELS
from trionode.wallet import Wallet, WalletError, WalletNameError, Wallets

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
# How often a progress line (mine, sync, validate) asks the node how far it got.
PROGRESS_EVERY: Final = 0.25


class UserError(Exception):
    """An expected failure with a one-line message and an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ----------------------------------------------------------------- argument parsing


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
        "a devnet's DIR, of every node in it. q or Ctrl+C quits. Without a terminal (a pipe) it "
        "prints one snapshot.",
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


# ----------------------------------------------------------------- helpers


def _config(args: argparse.Namespace, **overrides: Any) -> NodeConfig:
    try:
        return load_config(args.config, {"data_dir": args.data_dir, **overrides})
    except ConfigError as exc:
        raise UserError(str(exc), EXIT_USAGE) from None


def _data_dir(args: argparse.Namespace) -> Path:
    return _config(args).data_dir


def _emit(args: argparse.Namespace, result: Any, human: Callable[[Any], str]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2, sort_keys=False))
    else:
        text = human(result)
        if text:
            print(text)


def _ago(seconds_since_epoch: float | None) -> str:
    if not seconds_since_epoch:
        return "never"
    delta = max(0.0, time.time() - seconds_since_epoch)
    if delta < 120:
        return f"{delta:.0f}s ago"
    if delta < 7200:
        return f"{delta / 60:.0f}m ago"
    return f"{delta / 3600:.1f}h ago"


def _table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _coins(value: float | int) -> str:
    return format_coins(parse_coins(value))


# ----------------------------------------------------------------- human formats


def _fmt_status(s: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"node      {s['node_id']}  ({s['agent']})",
            f"network   {s['network']}",
            f"listen    {s['listen']}",
            f"height    {s['height']}   tip {s['tip']}",
            f"work      {s['work']}   difficulty {s['difficulty']:g}",
            f"peers     {s['peers']} ({s['outbound']} out, {s['inbound']} in)   pending {s['pending']}",
            f"mining    {'yes' if s['mining'] else 'no'}"
            + (f"   {s['hashrate']:.0f} H/s" if s["mining"] else ""),
        ]
    )


def _fmt_peers(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no peers known"
    return _table(
        [
            [
                r["node_id"],
                r["address"] or "-",
                "yes" if r["connected"] else "no",
                r["direction"] or "-",
                r["height"],
                "-" if r["rtt"] is None else f"{r['rtt'] * 1000:.1f}ms",
                _ago(r["last_seen"]),
            ]
            for r in rows
        ],
        ["NODE_ID", "ADDRESS", "CONNECTED", "DIR", "HEIGHT", "RTT", "LAST_SEEN"],
    )


def _fmt_block(b: dict[str, Any]) -> str:
    lines = [
        f"block {b['height']}  {b['hash']}",
        f"  prev       {b['prev_hash']}",
        f"  time       {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(b['timestamp'] / 1000))} UTC",
        f"  merkle     {b['merkle_root']}",
        f"  nonce      {b['nonce']}   difficulty {b['difficulty']:g}",
        f"  txs        {len(b['transactions'])}",
    ]
    lines += [f"    {_fmt_tx(tx)}" for tx in b["transactions"]]
    return "\n".join(lines)


def _fmt_tx(tx: dict[str, Any]) -> str:
    return f"{tx['txid'][:16]}  {tx['from'][:16]:<16} -> {tx['to'][:16]}  {_coins(tx['amount'])}  (nonce {tx['nonce']})"


def _fmt_chain(blocks: list[dict[str, Any]]) -> str:
    if not blocks:
        return "no blocks in that range"
    return _table(
        [[b["height"], b["hash"], len(b["transactions"]), b["nonce"]] for b in blocks],
        ["HEIGHT", "HASH", "TXS", "NONCE"],
    )


# ----------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace) -> int:
    import trio

    from trionode.net.transport import ListenError
    from trionode.node.app import Environment, Node, StartupError
    from trionode.node.logging import make_logger

    config = _config(
        args,
        listen=args.listen,
        peers=args.peer or None,
        log_level=args.log_level,
    )
    try:
        log = make_logger(config.log_level, file=config.log_file)
    except OSError as exc:
        raise UserError(f"cannot open the log file {config.log_file} ([log] file): {exc.strerror}") from None
    try:
        node = Node(config, Environment.real(config.mining_workers), log)
    except StartupError as exc:
        raise UserError(str(exc), EXIT_USAGE if exc.usage else EXIT_FAILURE) from None
    try:
        trio.run(node.run)
    except* ListenError as group:
        raise UserError(str(group.exceptions[0])) from None
    except* KeyboardInterrupt:
        pass
    return EXIT_OK


def _selector(args: argparse.Namespace) -> str:
    """How the user named the node (`` --config FILE``), to repeat in a hint; "" for defaults."""
    if args.config is not None:
        return f" --config {args.config}"
    if args.data_dir is not None:
        return f" --data-dir {args.data_dir}"
    return ""


def _not_running(args: argparse.Namespace, exc: NodeNotRunning) -> UserError:
    text = str(exc)
    if text.startswith("no node is running"):
        text += f" (start one with: trionode{_selector(args)} run)"
    return UserError(text)


def _client(args: argparse.Namespace, timeout: float | None = 30.0) -> ControlClient:
    try:
        return ControlClient(_data_dir(args), timeout=timeout)
    except NodeNotRunning as exc:
        raise _not_running(args, exc) from None


def cmd_control(args: argparse.Namespace) -> int:
    verb = args.verb
    if verb == "connect":  # a bad argument is a usage error, whether or not a node runs
        try:
            parse_hostport(args.address)
        except ValueError as exc:
            raise UserError(f"connect: bad address {args.address!r}: {exc}", EXIT_USAGE) from None
    with _client(args, timeout=None if verb in ("mine", "sync", "validate", "connect") else 30.0) as client:
        if verb == "status":
            _emit(args, client.call("status"), _fmt_status)
        elif verb == "peers":
            _emit(args, client.call("peers"), _fmt_peers)
        elif verb == "connect":
            _emit(
                args, client.call("connect", address=args.address), lambda r: f"connected to {r['node_id']}"
            )
        elif verb == "disconnect":
            _emit(
                args,
                client.call("disconnect", node_id=args.node_id),
                lambda r: f"disconnected {r['node_id']}",
            )
        elif verb == "chain":
            _emit(args, client.call("chain", **{"from": args.start, "limit": args.limit}), _fmt_chain)
        elif verb == "block":
            _emit(args, client.call("block", id=args.ident), _fmt_block)
        elif verb == "pending":
            _emit(
                args,
                client.call("pending"),
                lambda txs: "\n".join(_fmt_tx(t) for t in txs) if txs else "no pending transactions",
            )
        elif verb == "balance":
            address = _resolve(args, args.who)
            _emit(
                args,
                client.call("balance", address=address),
                lambda r: f"{r['address']}  {_coins(r['balance'])}",
            )
        elif verb == "send":
            _emit(
                args,
                _send(args, client),
                lambda r: f"sent {_coins(r['amount'])} to {r['to']}: txid {r['txid']}",
            )
        elif verb == "mine":
            to = _resolve(args, args.to) if args.to else None
            result = _with_progress(args, "mining", lambda: client.call("mine", to=to), _mining_progress)
            _emit(args, result, lambda r: f"mined block {r['height']} {r['hash']} ({r['txs']} txs)")
        elif verb == "sync":
            result = _with_progress(args, "syncing", lambda: client.call("sync"), _sync_progress)
            _emit(
                args,
                result,
                lambda r: (
                    f"height {r['height']} tip {r['tip']}"
                    + (" (chain replaced)" if r["replaced"] else "")
                    + ("" if r["peers"] else " (no peers connected: nothing to sync with)")
                ),
            )
        elif verb == "validate":
            result = _with_progress(args, "validating", lambda: client.call("validate"))
            _emit(
                args,
                result,
                lambda r: (
                    f"valid: chain of height {r['height']}"
                    if r["valid"]
                    else "INVALID:\n" + "\n".join(r["errors"])
                ),
            )
            return EXIT_OK if result["valid"] else EXIT_FAILURE
        elif verb == "stop":
            _emit(args, client.call("stop"), lambda r: "node stopping")
    return EXIT_OK


def _resolve(args: argparse.Namespace, who: str) -> str:
    try:
        return Wallets(_data_dir(args)).resolve(who).hex()
    except WalletError as exc:
        raise UserError(str(exc)) from None


def _send(args: argparse.Namespace, client: ControlClient) -> dict[str, Any]:
    try:
        amount = parse_coins(args.amount)
    except ValueError as exc:
        raise UserError(f"--amount: {exc}", EXIT_USAGE) from None
    if amount <= 0:
        raise UserError("--amount: must be more than 0", EXIT_USAGE)
    wallets = Wallets(_data_dir(args))
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
            f"(confirmed {_coins(account['balance'])}), asked {format_coins(amount)}"
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


def _with_progress(
    args: argparse.Namespace,
    what: str,
    fn: Callable[[], Any],
    detail: Callable[[dict[str, Any]], str] | None = None,
) -> Any:
    """Run a long call, showing a progress line on stderr when it is a terminal.

    The line shows the elapsed time and, with ``detail``, what the node reports meanwhile:
    a second control connection asks for the ``top`` verb (status and peers) a few times a
    second and ``detail`` turns it into text.
    """
    if getattr(args, "json", False) or not sys.stderr.isatty():
        return fn()
    import threading

    from rich.console import Console

    done = threading.Event()
    started = time.monotonic()
    data_dir = _data_dir(args)

    with Console(stderr=True).status(f"{what}...") as line:

        def ticker() -> None:
            probe: ControlClient | None = None
            while not done.wait(PROGRESS_EVERY):
                text = ""
                if detail is not None:
                    try:
                        probe = probe or ControlClient(data_dir, timeout=PROGRESS_EVERY * 4)
                        text = detail(probe.call("top"))
                    except (NodeNotRunning, ControlError, OSError, ValueError, KeyError):
                        if probe is not None:
                            probe.close()
                        probe = None
                line.update(f"{what}... {time.monotonic() - started:.1f} s  {text}".rstrip())
            if probe is not None:
                probe.close()

        thread = threading.Thread(target=ticker, daemon=True)
        thread.start()
        try:
            return fn()
        finally:
            done.set()
            thread.join()


def _mining_progress(top: dict[str, Any]) -> str:
    s = top["status"]
    rate = f", {s['hashrate']:,.0f} H/s" if s["hashrate"] else ""
    return f"block {s['height'] + 1} at difficulty {s['difficulty']:g}{rate}"


def _sync_progress(top: dict[str, Any]) -> str:
    height = top["status"]["height"]
    target = max([height, *(p["height"] for p in top["peers"] if p["connected"])])
    return f"height {height} of {target}" if target > height else f"height {height}"


def cmd_wallet(args: argparse.Namespace) -> int:
    wallets = Wallets(_data_dir(args))
    try:
        if args.wallet_verb == "new":
            w = wallets.new(args.name)
            _emit(args, w.to_json(), lambda r: f"created wallet {r['name']}: address {r['address']}")
        elif args.wallet_verb == "show":
            _emit(args, wallets.load(args.name).to_json(), lambda r: f"{r['name']}  {r['address']}")
        else:
            rows = [w.to_json() for w in wallets.list()]
            _emit(
                args,
                rows,
                lambda rs: (
                    _table([[r["name"], r["address"]] for r in rs], ["NAME", "ADDRESS"])
                    if rs
                    else f"no wallets in {wallets.directory} (create one with: trionode wallet new NAME)"
                ),
            )
    except WalletError as exc:
        raise UserError(str(exc), EXIT_USAGE if isinstance(exc, WalletNameError) else EXIT_FAILURE) from None
    return EXIT_OK


def cmd_devnet(args: argparse.Namespace) -> int:
    from trionode.devnet import DevnetError, run_devnet

    try:
        return run_devnet(args.nodes, args.dir, args.difficulty)
    except DevnetError as exc:
        raise UserError(str(exc), exc.code) from None


def cmd_top(args: argparse.Namespace) -> int:
    from trionode.top import run_top

    data_dir = _data_dir(args)
    try:
        return int(run_top(data_dir))
    except NodeNotRunning as exc:
        raise _not_running(args, exc) from None


def cmd_sim(args: argparse.Namespace) -> int:
    from trionode.sim.cli import main as sim_main

    return int(sim_main(args.args))


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["sim"]:  # its own parser: argparse.REMAINDER would reject its --options
        from trionode.sim.cli import main as sim_main

        return sim_main(words[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return EXIT_USAGE
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": cmd_run,
        "wallet": cmd_wallet,
        "devnet": cmd_devnet,
        "top": cmd_top,
        "sim": cmd_sim,
    }
    for name in ("config", "data_dir"):
        if not hasattr(args, name):
            setattr(args, name, None)
    try:
        return handlers.get(args.verb, cmd_control)(args)
    except UserError as exc:
        print(f"trionode: {exc}", file=sys.stderr)
        return exc.code
    except ControlError as exc:
        print(f"trionode: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:
        # The file system or the network said no (a data dir that cannot be created, a full
        # disk): an expected failure, not a bug.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"trionode: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
