"""Making one trio run repeatable: the scheduler's order.

trio runs the tasks that became runnable together in a deliberately varied order: each batch
is reversed with probability 1/2, drawn from a module-level ``random.Random`` in
``trio._core._run`` (``_r``). The order tasks *enter* a batch is not stable either: waking
the waiters of a ``trio.Event`` or of a cancel scope iterates a ``set`` of tasks, ordered by
memory address. trio's own switch for Hypothesis (``_ALLOW_DETERMINISTIC_SCHEDULING``, set by
its Hypothesis plugin) fixes both: each batch is sorted by task creation number, then
shuffled by ``_r``. We turn that switch on and seed ``_r`` for the duration of one run, and
restore both afterwards. These are private names; ``deterministic_scheduling`` fails loudly
if a trio release renames them rather than silently running nondeterministically.

The rest of determinism is the node's: every clock read goes through trio's clock or the
injected ``Environment.wall``, every random draw through the injected ``random.Random``, no
threads or processes (``InlineSolver``, ``InlineSignatureChecker``), no control socket or
signal handler, and no iteration over sets whose order depends on ``PYTHONHASHSEED`` or
addresses in a way that changes what the node does.
"""

import contextlib
from collections.abc import Iterator

import trio
from trio._core import _run as trio_run


@contextlib.contextmanager
def deterministic_scheduling(seed: int) -> Iterator[None]:
    flag = "_ALLOW_DETERMINISTIC_SCHEDULING"
    if not hasattr(trio_run, flag) or not hasattr(trio_run, "_r"):
        raise RuntimeError(
            f"trio {trio.__version__} has no {flag}/_r in trio._core._run: "
            "the simulator cannot make its scheduler deterministic"
        )
    old_flag = getattr(trio_run, flag)
    old_state = trio_run._r.getstate()
    setattr(trio_run, flag, True)
    trio_run._r.seed(f"trio-scheduler:{seed}")
    try:
        yield
    finally:
        setattr(trio_run, flag, old_flag)
        trio_run._r.setstate(old_state)
