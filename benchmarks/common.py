"""Shared bits of the benchmark scripts: medians, the machine, the JSON result line, daemons.

Every benchmark prints human-readable figures and, last, one JSON line (``emit``) that
``run_all`` collects. Daemons are the same helper the integration tests use.
"""

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.integration.daemon import Daemon, cli, cli_json, free_ports  # noqa: E402

__all__ = [
    "ROOT",
    "Daemon",
    "FileLoggedDaemon",
    "Profiler",
    "cli",
    "cli_json",
    "cpu_seconds",
    "emit",
    "free_ports",
    "machine",
    "median",
    "medians",
    "percentile",
    "rss_mb",
    "stamp",
]

CLK_TCK = os.sysconf("SC_CLK_TCK")


def median(values: list[float]) -> float:
    return statistics.median(values)


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    """The median of each figure over several runs (each run a dict of the same keys)."""
    return {key: median([run[key] for run in runs]) for key in runs[0]}


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def stamp(event: dict[str, Any]) -> float:
    """A daemon log line's own timestamp, as UNIX seconds."""
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine() -> dict[str, Any]:
    return {"cores": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()}


def emit(name: str, figures: dict[str, Any]) -> None:
    """The last line of every benchmark: one JSON object."""
    print(json.dumps({"benchmark": name, **figures, "machine": machine()}), flush=True)


class FileLoggedDaemon(Daemon):
    """A daemon on a fixed port whose output goes to a file, not a pipe: nothing in the
    benchmark's process parses its lines (that CPU would be charged to what is measured)."""

    def __init__(self, name: str, root: Path, extra: str = "", log_level: str = "warning") -> None:
        port = free_ports(1)[0]
        super().__init__(name, root, extra=extra, port=port)
        self.log_level = log_level
        self.log_path = root / f"{name}.out"
        self.fixed_address = f"127.0.0.1:{port}"

    def start(self, wait: bool = True, log_level: str | None = None) -> "FileLoggedDaemon":
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command(log_level or self.log_level), stdout=out, stderr=subprocess.STDOUT
            )
        self.address = self.fixed_address
        if wait:
            self.call("status")  # the control socket opens once the node listens
        return self


class Profiler:
    """``py-spy record -p PID -r 200 -f raw -o OUT`` beside a running process, until it exits.

    py-spy writes collapsed stacks (``frame;frame;... count``, idle samples left out);
    ``profile_top.py`` sums them per function."""

    RATE = 200  # samples/s: fine enough for a few seconds of work, light on the target

    def __init__(self, pid: int, out: Path) -> None:
        here = Path(sys.executable).parent / "py-spy"
        exe = str(here) if here.exists() else shutil.which("py-spy")
        if exe is None:
            raise SystemExit("--profile needs py-spy (pip install py-spy)")
        self.out = out
        self.proc = subprocess.Popen(
            [exe, "record", "-p", str(pid), "-r", str(self.RATE), "-f", "raw", "-o", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # py-spy attaches (reads the interpreter's memory) before sampling

    def wait(self) -> None:
        """After the target has exited: py-spy notices and writes its file."""
        self.proc.wait(30)
