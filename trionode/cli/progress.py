"""The progress line on stderr while a long control call (mine, sync, validate) runs."""

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any, Final

from trionode.cli.target import node_data_dir
from trionode.control.client import ControlClient, NodeNotRunning
from trionode.control.protocol import ControlError

# How often a progress line (mine, sync, validate) asks the node how far it got.
PROGRESS_EVERY: Final = 0.25


def with_progress(
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
    data_dir = node_data_dir(args)

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


def mining_progress(top: dict[str, Any]) -> str:
    s = top["status"]
    rate = f", {s['hashrate']:,.0f} H/s" if s["hashrate"] else ""
    return f"block {s['height'] + 1} at difficulty {s['difficulty']:g}{rate}"


def sync_progress(top: dict[str, Any]) -> str:
    height = top["status"]["height"]
    target = max([height, *(p["height"] for p in top["peers"] if p["connected"])])
    return f"height {height} of {target}" if target > height else f"height {height}"
