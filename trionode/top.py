"""`trionode top`: lands with issue #8 (the newcomer's first hour)."""


def run_top(*args: object) -> int:
    raise SystemExit("trionode: 'top' is not built yet (issue #8)")
