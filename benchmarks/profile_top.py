"""Sum py-spy's raw (collapsed) stacks per function: self and inclusive shares.

    python benchmarks/profile_top.py OUT [OUT ...] [--top N] [--match TEXT] [--lines TEXT]

Reads the files ``py-spy record -f raw -o OUT`` writes (one ``frame;frame;...;leaf count``
line per distinct stack, idle samples already left out) and prints, over every sample of
every file: the functions with the most *self* samples (the leaf: where the time is spent),
then the most *inclusive* samples (anywhere on the stack: what the time is spent for). A
function is its name and file, whatever the line. Samples of threads other than the main one
(stacks starting in ``threading.py``: trio's worker threads) are counted apart as well.
py-spy leaves out samples of threads it sees idle, but not all waits look idle to it: samples
whose leaf is one of ``WAITS`` (trio's epoll wait, a worker thread waiting for a job) are
counted as waiting and left out of the tables (``--keep-waits`` keeps them), so the shares
are of the samples where work was done.
``--match`` keeps only stacks with a frame containing TEXT (e.g. one code path); ``--lines``
splits the self samples of the functions whose name contains TEXT by line (py-spy charges
time in C code, a hash or msgpack's packer, to the Python line that called it).
"""

import argparse
import re
from collections import Counter
from pathlib import Path

# Leaf functions that are a thread waiting, not working (py-spy does not always see it idle).
WAITS = ("EpollIOManager.get_events (", "WorkerThread._work (")

# "name (path/to/file.py:123)" -> "name (file.py)": one entry per function, not per line.
FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def function(frame: str) -> str:
    found = FRAME.match(frame.strip())
    if found is None:
        return frame.strip()
    path = found["file"]
    # Keep the package-relative part of a path: trionode/..., trio/..., or the file name.
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif "/lib/python3" in path:
        path = path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    elif "trionode/" in path:
        path = "trionode/" + path.split("trionode/", 1)[1]
    return f"{found['name']} ({path})"


def read(paths: list[Path], match: str | None) -> list[tuple[list[str], int]]:
    stacks = []
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            if match is not None and match not in stack:
                continue
            stacks.append((stack.split(";"), int(count)))
    return stacks


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--match", help="only stacks with a frame containing this text")
    parser.add_argument("--lines", help="self samples by line of the functions named with this text")
    parser.add_argument("--keep-waits", action="store_true", help="count waiting samples as work")
    args = parser.parse_args()
    stacks = read(args.files, args.match)
    waiting = 0
    if not args.keep_waits:
        waiting = sum(count for frames, count in stacks if frames[-1].startswith(WAITS))
        stacks = [(frames, count) for frames, count in stacks if not frames[-1].startswith(WAITS)]
    total = sum(count for _, count in stacks)
    if not total:
        raise SystemExit("no samples")
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    threads = 0
    for frames, count in stacks:
        names = [function(f) for f in frames]
        self_time[names[-1]] += count
        if args.lines and args.lines in names[-1]:
            lines[frames[-1].strip()] += count
        for name in set(names):
            inclusive[name] += count
        if "threading.py" in frames[0]:
            threads += count
    print(
        f"{total:,} samples of work ({len(args.files)} file(s); {waiting:,} more waiting, left out); "
        f"in threads other than the main one: {threads / total:.1%}"
    )
    for title, counter in (("self", self_time), ("inclusive", inclusive)):
        print(f"\n{title}:")
        for name, count in counter.most_common(args.top):
            print(f"  {count / total:6.1%}  {count:>7,}  {name}")
    if args.lines:
        print(f"\nself samples of {args.lines!r} by line:")
        for frame, count in lines.most_common(args.top):
            print(f"  {count / total:6.1%}  {count:>7,}  {frame}")


if __name__ == "__main__":
    main()
