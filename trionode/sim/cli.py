"""`trionode sim`: lands with issue #9."""


def main(argv: list[str]) -> int:
    raise SystemExit("trionode: 'sim' is not built yet (issue #9)")
