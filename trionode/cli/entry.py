"""``trionode.cli:main``: parse the command line, run the verb, turn expected errors into exit codes."""

import argparse
import sys
from collections.abc import Callable, Sequence

from trionode.cli.commands import cmd_devnet, cmd_run, cmd_sim, cmd_top, cmd_wallet
from trionode.cli.control_verbs import cmd_control
from trionode.cli.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UserError
from trionode.cli.parser import build_parser
from trionode.control.protocol import ControlError


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
