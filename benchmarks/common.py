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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.integration.daemon import PYTHON, Daemon, cli, cli_json, free_ports  # noqa: E402

__all__ = [
    "ROOT",
    "Daemon",
    "FileLoggedDaemon",
    "Profiler",
    "cli",
    "cli_json",
    "emit",
    "free_ports",
    "machine",
    "median",
    "percentile",
]


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


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
                [
                    PYTHON,
                    *("-m", "trionode", "run", "--config", str(self.config)),
                    *("--log-level", log_level or self.log_level, *self.run_args),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
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
