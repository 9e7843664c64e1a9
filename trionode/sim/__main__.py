"""``python -m trionode.sim --seed S [--nodes N] [--events K] [--runs R]``."""

import sys

from trionode.sim.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
