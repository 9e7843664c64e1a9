"""``python -m trionode.cli`` is the ``trionode`` command, as ``python -m trionode`` is."""

import sys

from trionode.cli.entry import main

sys.exit(main())
