"""``trionode top``: a live view of running nodes, drawn with rich, fed by the control socket.

Every second each node is asked for its ``top`` verb (status, peers and recent blocks in one
round trip). Given a directory whose subdirectories are data dirs (a devnet's DIR, or ./data
holding data/node1..3), every node in it is shown; given one data dir, that node. A node that
stops shows as "not running" and comes back when it does. ``q`` or Ctrl+C quits; without a terminal one snapshot is printed.
"""

import io
import os
import re
import select
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from trionode import data_files
from trionode.control.client import ControlClient, NodeNotRunning
from trionode.control.protocol import LOCK_NAME, SOCKET_NAME, ControlError
from trionode.wire.errors import ProtocolError

REFRESH: Final = 1.0
# A node slower than this to answer is shown as not answering rather than freezing the view.
CALL_TIMEOUT: Final = 5.0
# Hex characters of node ids and tips in tables (enough to tell them apart at a glance, and
# narrow enough for 80 columns), and of block hashes.
SHORT: Final = 10
SHORT_HASH: Final = 16
# Recent blocks shown for one node, and for the best node of several.
RECENT_ONE: Final = 10
RECENT_MANY: Final = 5
# Without a terminal (a pipe, a test), lines this wide so that full ids are not wrapped.
SNAPSHOT_WIDTH: Final = 140
# What a node or the wallet commands write in a data dir: a directory holding other things
# but none of these (configs/, a home directory) is no node's data dir.
DATA_DIR_NAMES: Final = frozenset(
    {
        data_files.NODE_ID,
        data_files.NODE_KEY,
        data_files.CHAIN_DB,
        LOCK_NAME,
        SOCKET_NAME,
        data_files.PEERS,
        data_files.BANS,
        data_files.WALLETS,
    }
)


@dataclass
class Source:
    """One node's control connection, reopened when the node comes back."""

    data_dir: Path
    name: str
    client: ControlClient | None = None
    error: str = ""
    data: dict[str, Any] | None = field(default=None)

    def fetch(self) -> dict[str, Any] | None:
        try:
            if self.client is None:
                self.client = ControlClient(self.data_dir, timeout=CALL_TIMEOUT)
            self.data = self.client.call("top")
            self.error = ""
        except (NodeNotRunning, ControlError, ProtocolError, OSError) as exc:
            self.close()
            self.data = None
            self.error = str(exc)
        return self.data

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


def _natural(path: Path) -> tuple[Any, ...]:
    """node2 before node10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name))


def _is_node_dir(directory: Path) -> bool:
    return (directory / SOCKET_NAME).exists() or (directory / data_files.NODE_ID).exists()


def find_nodes(directory: Path) -> list[Path]:
    """The data dirs to show: ``directory`` itself, or the data dirs inside it (a devnet).

    A directory can be both: ``./data`` is the default node's data dir and, with configs/,
    the parent of data/node1..3. Then the nodes inside are shown, after ``directory``'s own
    node if that one is running (has its control socket).
    """
    inner: list[Path] = []
    if directory.is_dir():
        inner = sorted((d for d in directory.iterdir() if d.is_dir() and _is_node_dir(d)), key=_natural)
    if not inner:
        return [directory]
    if (directory / SOCKET_NAME).exists():
        return [directory, *inner]
    return inner


def holds_no_data_dir(directory: Path) -> bool:
    """``directory`` has things in it, none a data dir's, and no data dirs inside.

    An empty directory is not one: a node may well be meant to run there.
    """
    if not directory.is_dir() or find_nodes(directory) != [directory]:
        return False
    names = {p.name for p in directory.iterdir()}
    return bool(names) and not names & DATA_DIR_NAMES


# ----------------------------------------------------------------- formatting


def _ago(seconds: float | None, now: float) -> str:
    if not seconds:
        return "never"
    delta = max(0.0, now - seconds)
    if delta < 120:
        return f"{delta:.0f}s ago"
    if delta < 7200:
        return f"{delta / 60:.0f}m ago"
    if delta < 172800:
        return f"{delta / 3600:.0f}h ago"
    return f"{delta / 86400:.0f}d ago"


def _rate(hashes_per_second: float) -> str:
    for unit, scale in (("MH/s", 1e6), ("kH/s", 1e3)):
        if hashes_per_second >= scale:
            return f"{hashes_per_second / scale:.1f} {unit}"
    return f"{hashes_per_second:.0f} H/s"


def _mining(status: dict[str, Any]) -> str:
    return _rate(status["hashrate"]) if status["mining"] else "no"


def _rtt(rtt: float | None) -> str:
    return "-" if rtt is None else f"{rtt * 1000:.1f} ms"


def _uptime(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _table(title: str, *columns: str) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
        pad_edge=False,
    )
    for name in columns:
        numeric = name in ("HEIGHT", "PEERS", "MEMPOOL", "TXS")
        table.add_column(name, no_wrap=True, justify="right" if numeric else "left")
    return table


def render_one(source: Source, now: float) -> RenderableType:
    data = source.data
    if data is None:
        return Text(f"{source.name}: not running ({source.error})", style="bold red")
    s = data["status"]
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("node", f"{s['node_id']}  ({s.get('agent', '')}, up {_uptime(s.get('uptime', 0))})")
    head.add_row("listen", s["listen"])
    head.add_row("network", s["network"])
    head.add_row("height", f"{s['height']}   (difficulty {s['difficulty']:g}, work {s['work']})")
    head.add_row("tip", s["tip"])
    head.add_row("mempool", f"{s['pending']} pending")
    head.add_row("peers", f"{s['peers']} connected ({s['outbound']} out, {s['inbound']} in)")
    head.add_row("mining", _mining(s))
    return Group(
        head,
        Text(""),
        _peers_table(data["peers"], now, {}),
        _recent_table(data["recent"][:RECENT_ONE], now, "recent blocks"),
    )


def render_many(sources: list[Source], now: float) -> RenderableType:
    running = {src.name: src.data["status"] for src in sources if src.data is not None}
    names = {status["node_id"]: name for name, status in running.items()}
    # One network has one difficulty (unless it retargets): in the title, to leave room.
    difficulty = "/".join(sorted({f"{s['difficulty']:g}" for s in running.values()}))
    title = f"nodes (difficulty {difficulty})"
    nodes = _table(title, "NODE", "ID", "LISTEN", "HEIGHT", "TIP", "PEERS", "MEMPOOL", "MINING")
    peers: list[tuple[str, dict[str, Any]]] = []
    best: tuple[int, str, list[dict[str, Any]]] | None = None  # height, name, recent blocks
    for src in sources:
        if src.data is None:
            nodes.add_row(src.name, Text("not running", style="red"), *[""] * 6)
            continue
        s = src.data["status"]
        nodes.add_row(
            src.name,
            s["node_id"][:SHORT],
            s["listen"],
            str(s["height"]),
            s["tip"][:SHORT],
            str(s["peers"]),
            str(s["pending"]),
            _mining(s),
        )
        peers += [(src.name, p) for p in src.data["peers"]]
        if best is None or s["height"] > best[0]:
            best = (s["height"], src.name, src.data["recent"])
    parts: list[RenderableType] = [
        nodes,
        _peers_table([p for _, p in peers], now, names, [n for n, _ in peers]),
    ]
    if best is not None:
        parts.append(_recent_table(best[2][:RECENT_MANY], now, f"recent blocks ({best[1]})"))
    return Group(*parts)


def _peers_table(
    rows: list[dict[str, Any]], now: float, names: dict[str, str], owners: list[str] | None = None
) -> Table:
    columns = ["PEER", "ADDRESS", "DIR", "HEIGHT", "RTT", "LAST SEEN"]
    table = _table("peers", *(["NODE", *columns] if owners is not None else columns))
    for i, p in enumerate(rows):
        peer = names.get(p["node_id"], p["node_id"][:SHORT])
        cells = [
            peer,
            p["address"] or "-",
            p["direction"] if p["connected"] else "(gone)",
            str(p["height"]),
            _rtt(p["rtt"]) if p["connected"] else "-",
            _ago(p["last_seen"], now),
        ]
        if owners is not None:
            cells.insert(0, owners[i])
        table.add_row(*cells, style=None if p["connected"] else "dim")
    if not rows:
        table.add_row(*["-"] * len(table.columns))
    return table


def _recent_table(blocks: list[dict[str, Any]], now: float, title: str) -> Table:
    table = _table(title, "HEIGHT", "HASH", "TXS", "AGE")
    for b in blocks:
        table.add_row(
            str(b["height"]), b["hash"][:SHORT_HASH], str(b["txs"]), _ago(b["timestamp"] / 1000, now)
        )
    return table


def render(sources: list[Source], live: bool) -> RenderableType:
    now = time.time()
    body = render_one(sources[0], now) if len(sources) == 1 else render_many(sources, now)
    if not live:
        return body
    # On top, not below: a screen too short for everything crops the bottom.
    title = Text(
        f"trionode top  {time.strftime('%H:%M:%S')}  (every {REFRESH:g} s; q or Ctrl+C quits)", style="dim"
    )
    return Group(title, body)


def snapshot(sources: list[Source], width: int) -> str:
    """The view as plain text, for a pipe: rich pads every line to the width; not here."""
    console = Console(width=width, file=io.StringIO(), color_system=None)
    with console.capture() as captured:
        console.print(render(sources, live=False))
    return "\n".join(line.rstrip() for line in captured.get().splitlines())


# ----------------------------------------------------------------- the terminal


@contextmanager
def _keys() -> Iterator[Any]:
    """Keys from stdin without waiting for Enter (cbreak mode, restored on exit)."""
    if not sys.stdin.isatty():

        def wait_only(timeout: float) -> str:
            time.sleep(timeout)
            return ""

        yield wait_only
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)  # keeps ISIG: Ctrl+C still raises KeyboardInterrupt

    def read(timeout: float) -> str:
        ready, _, _ = select.select([fd], [], [], timeout)
        return os.read(fd, 32).decode(errors="replace") if ready else ""

    try:
        yield read
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run_top(directory: Path) -> int:
    """Show the node(s) of ``directory``; raises ``NodeNotRunning`` if none answers at start."""
    dirs = find_nodes(directory)
    sources = [Source(d, d.name or str(d)) for d in dirs]
    for src in sources:
        src.fetch()
    if all(src.data is None for src in sources):
        if dirs == [directory]:
            raise NodeNotRunning(sources[0].error)
        raise NodeNotRunning(f"no node is running in {directory} ({', '.join(s.name for s in sources)})")
    console = Console()
    try:
        if not console.is_terminal:
            print(snapshot(sources, max(console.width, SNAPSHOT_WIDTH)), flush=True)
            return 0
        with _keys() as read_key, Live(console=console, screen=True, auto_refresh=False) as live:
            while True:
                live.update(render(sources, live=True), refresh=True)
                deadline = time.monotonic() + REFRESH
                while (left := deadline - time.monotonic()) > 0:
                    if read_key(left).lower().startswith("q"):
                        return 0
                for src in sources:
                    src.fetch()
    except KeyboardInterrupt:
        return 0
    finally:
        for src in sources:
            src.close()
