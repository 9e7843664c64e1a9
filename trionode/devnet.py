"""`trionode devnet`: lands with issue #8 (the newcomer's first hour)."""


def run_devnet(*args: object) -> int:
    raise SystemExit("trionode: 'devnet' is not built yet (issue #8)")
