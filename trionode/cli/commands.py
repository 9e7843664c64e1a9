"""The verbs with a handler of their own: run, wallet, devnet, top, sim (not one control call)."""

import argparse
import errno

from trionode.cli.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UserError
from trionode.cli.formats import emit, table
from trionode.cli.target import node_config, node_data_dir, not_running, selector
from trionode.control.client import NodeNotRunning
from trionode.node.config import NodeConfig
from trionode.wallet import WalletError, WalletNameError, Wallets


def cmd_run(args: argparse.Namespace) -> int:
    import trio

    from trionode.net.transport import ListenError
    from trionode.node.app import Environment, Node, StartupError
    from trionode.node.logging import make_logger

    config = node_config(
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
        raise UserError(_listen_failure(config, group.exceptions[0])) from None
    except* KeyboardInterrupt:
        pass
    return EXIT_OK


def _listen_failure(config: NodeConfig, exc: BaseException) -> str:
    """Why the node cannot listen, and which setting to change: the file and key, or the flag."""
    cause = exc.__cause__
    if isinstance(cause, OSError):
        problem = (
            f"port {config.listen_port} is in use"
            if cause.errno == errno.EADDRINUSE
            else str(cause.strerror or cause)
        )
        text = f"cannot listen on {config.listen}: {problem}"
    else:
        text = str(exc)
    if config.listen_from:
        return f"{text} (from {config.listen_from})"
    return f"{text} (the default address; choose another with --listen or [p2p] listen)"


def cmd_wallet(args: argparse.Namespace) -> int:
    wallets = Wallets(node_data_dir(args))
    try:
        if args.wallet_verb == "new":
            w = wallets.new(args.name)
            emit(args, w.to_json(), lambda r: f"created wallet {r['name']}: address {r['address']}")
        elif args.wallet_verb == "show":
            emit(args, wallets.load(args.name).to_json(), lambda r: f"{r['name']}  {r['address']}")
        else:
            rows = [w.to_json() for w in wallets.list()]
            emit(
                args,
                rows,
                lambda rs: (
                    table([[r["name"], r["address"]] for r in rs], ["NAME", "ADDRESS"])
                    if rs
                    else f"no wallets in {wallets.directory}"
                    f" (create one with: trionode{selector(args)} wallet new NAME)"
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
    from trionode.devnet import STATE_FILE
    from trionode.top import find_nodes, holds_no_data_dir, run_top

    data_dir = node_data_dir(args)
    try:
        return int(run_top(data_dir))
    except NodeNotRunning as exc:
        # `trionode --data-dir DIR run` would start a new node with DIR itself as data dir.
        if (data_dir / STATE_FILE).is_file():
            start = f"start it with: trionode devnet --dir {data_dir}"
        elif find_nodes(data_dir) != [data_dir]:
            start = "start each node with: trionode run --config FILE"
        elif data_dir.is_file():
            raise UserError(
                f"{data_dir} is a file, not a node's data dir (a config file? trionode --config {data_dir} top)"
            ) from None
        elif holds_no_data_dir(data_dir):
            raise UserError(
                f"{data_dir} holds no node data dir (give --data-dir a node's data dir or the"
                " directory holding them, or --config a node's config file)"
            ) from None
        else:
            start = None
        raise not_running(args, exc, start) from None


def cmd_sim(args: argparse.Namespace) -> int:
    from trionode.sim.cli import main as sim_main

    return int(sim_main(args.args))
