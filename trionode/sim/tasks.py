"""What a node's tasks must look like, checked on the live task tree: no task leaked.

A leaked task is one that outlives what it was for. trio cannot show it by itself: a node's
root nursery ends with ``root.cancel_scope.cancel()``, which ends every task, leaked or not,
without a word. So the simulator looks at each node's tree while the node runs:

- ``check_node`` once the network has settled (quiet: no connection is being made or closed
  for reasons of its own, no block or transaction is on its way);
- ``ShutdownWatch`` during a graceful stop, at each step of the node's root task until it
  cancels everything: the last such look is the state that cancel ends.

What is expected, by nursery:

- the root nursery: the node's loops, each once (the tasks it had when it reported started:
  ``baseline``), and tasks working for one connection (an argument ``conn``: the mempool
  offer, a sync session) while that connection is open;
- the connections' nursery (``PeerManager.nursery``): one task per connection that is
  registered, in its handshake, or closing (for at most ``WIND_DOWN``), and dials in flight;
  every registered connection has its task;
- a connection's task: its writer, and nothing else once the network is quiet.

Anything else is a leak, and so is a task of a connection that closed more than
``WIND_DOWN`` ago (the reader is cancelled at the close, the writer has ``CLOSE_DRAIN`` to
flush, the stream's close another ``CLOSE_DRAIN``: nothing of an honest connection is left).
"""

import inspect
from typing import Final

import trio
from trio.lowlevel import Task

from trionode.net import dialer
from trionode.net.connection import CLOSE_DRAIN, Connection
from trionode.node.app import Node

# How long after its close a connection's tasks may still run (see the module docstring).
WIND_DOWN: Final = 2 * CLOSE_DRAIN
# Task names start with the function's module: these are a dial in flight (bounded by the
# dialer's own timeout) and a connection's writer.
DIALER: Final = dialer.__name__ + "."
CONNECTION: Final = Connection.__module__ + ".Connection."


def short_name(task: Task) -> str:
    return task.name.removeprefix("trionode.")


def in_order(nursery: trio.Nursery) -> list[Task]:
    """A nursery's tasks in a stable order (a set's order varies from run to run)."""
    return sorted(nursery.child_tasks, key=lambda t: (t.name, t._counter))


def descendants(task: Task) -> list[Task]:
    found = []
    for nursery in task.child_nurseries:
        for kid in in_order(nursery):
            found.append(kid)
            found += descendants(kid)
    return found


def connection_of(task: Task) -> Connection | None:
    """The connection a task works for: its function's ``conn`` argument or local."""
    frame = getattr(task.coro, "cr_frame", None)
    if frame is None:
        return None
    conn = frame.f_locals.get("conn")
    return conn if isinstance(conn, Connection) else None


def not_started(task: Task) -> bool:
    coro = task.coro
    return inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == inspect.CORO_CREATED


def closed_for(conn: Connection, now: float) -> float:
    """Seconds since ``conn`` closed (0 while open)."""
    if not conn.closing:
        return 0.0
    deadline = getattr(conn, "_drain_deadline", None)  # set by close(): the close's time + CLOSE_DRAIN
    if not isinstance(deadline, float):
        return 0.0
    return max(0.0, now - (deadline - CLOSE_DRAIN))


def baseline(node: Node) -> frozenset[str]:
    """The root nursery's tasks right after the node reported started: its loops."""
    root = node._nursery
    return frozenset(t.name for t in root.child_tasks) if root is not None else frozenset()


def check_node(node: Node, loops: frozenset[str], *, quiet: bool) -> list[str]:
    """What in ``node``'s task tree is not accounted for (leaks), as text.

    ``quiet``: the network has settled, so a connection's task has nothing under it but its
    writer, and a task working for a connection needs it open.
    """
    root = node._nursery
    manager = node.manager
    if root is None or manager.nursery is None:
        return []
    now = trio.current_time()
    problems: list[str] = []
    live = {id(c) for c in manager.connections.values()} | {id(c) for c in manager.handshaking}
    seen_loops: set[str] = set()
    for task in in_order(root):
        if task.name in loops and task.name not in seen_loops:
            seen_loops.add(task.name)
            continue
        conn = connection_of(task)
        if not_started(task) or (conn is not None and _expected(conn, now, live, quiet)):
            continue
        whose = "" if conn is None else f" for the connection {_state(conn, now)}"
        problems.append(f"{short_name(task)}{whose} in the root nursery")
    running: set[int] = set()
    for task in in_order(manager.nursery):
        conn = connection_of(task)
        if conn is None:
            if not (task.name.startswith(DIALER) or not_started(task)):
                problems.append(f"{short_name(task)} in the connections' nursery")
            continue
        running.add(id(conn))
        if not _expected(conn, now, live, quiet=False):
            problems.append(f"{short_name(task)} of the connection {_state(conn, now)}")
        elif quiet:
            below = descendants(task)
            writers = [t for t in below if t.name.startswith(CONNECTION)]
            extra = [t for t in below if not t.name.startswith(CONNECTION)] + writers[1:]
            if extra:
                names = ", ".join(short_name(t) for t in extra)
                problems.append(f"{names} under the task of the connection {_state(conn, now)}")
    for _, conn in sorted(manager.connections.items()):
        if id(conn) not in running:
            problems.append(f"the connection {_state(conn, now)} is registered, but no task runs it")
    return problems


def _expected(conn: Connection, now: float, live: set[int], quiet: bool) -> bool:
    """May a task work for ``conn`` now? While it is open (once quiet: and registered or in
    its handshake), and for ``WIND_DOWN`` after its close."""
    if conn.closing:
        return not quiet and closed_for(conn, now) <= WIND_DOWN
    return not quiet or id(conn) in live


def _state(conn: Connection, now: float) -> str:
    who = (conn.peer_id or conn.remote)[:8]
    if conn.closing:
        return f"to {who} closed {closed_for(conn, now):.1f}s ago ({conn.close_reason})"
    return f"to {who}, open"


class ShutdownWatch(trio.abc.Instrument):
    """Looks at stopping nodes' task trees at each step of their root task, until the root
    cancel: what is left at the last look is what ``Node.run`` ends without a word.

    At that look the shutdown drain is over: every connection should have closed and its
    task ended (a connection's tasks end within ``WIND_DOWN`` of its close, and the drain
    waits ``SHUTDOWN_DRAIN``), so one still running is reported too. Installed only while
    nodes stop (an instrument's hook runs at every task step of the run).
    """

    def __init__(self, nodes: dict[Task, tuple[str, Node, frozenset[str]]]) -> None:
        self.nodes = nodes  # the task running each node -> its name, node and loops
        self.last: dict[str, list[str]] = {}  # name -> problems at the last look before the cancel
        self.errors: list[str] = []

    def before_task_step(self, task: Task) -> None:
        entry = self.nodes.get(task)
        if entry is None:
            return
        name, node, loops = entry
        root = node._nursery
        if root is None or root.cancel_scope.cancel_called:
            return
        try:
            problems = check_node(node, loops, quiet=False)
            if node.stopping:  # the drain is over (or was never needed): nothing may be left
                now = trio.current_time()
                manager = node.manager
                left = [*manager.connections.values(), *sorted(manager.handshaking, key=lambda c: c.remote)]
                problems += [
                    f"the connection {_state(c, now)} still runs at the end of the drain" for c in left
                ]
            self.last[name] = problems
        except Exception as exc:  # an instrument that raises is silently disabled by trio
            self.errors.append(f"{name}: the task check raised {type(exc).__name__}: {exc}")
