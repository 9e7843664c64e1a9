"""Shared bits of the benchmark scripts: medians, the machine, the JSON result line, daemons.

Every benchmark prints human-readable figures and, last, one JSON line (``emit``) that
``run_all`` collects. Daemons are the same helper the integration tests use.
"""

import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.integration.daemon import Daemon, cli, cli_json  # noqa: E402

__all__ = ["ROOT", "Daemon", "cli", "cli_json", "emit", "machine", "median", "percentile"]


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
