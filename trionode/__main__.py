"""``python -m trionode`` is the ``trionode`` command."""

import sys

from trionode.cli import main

sys.exit(main())
