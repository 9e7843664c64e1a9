"""Deterministic whole-network simulation (issue #9).

Many real nodes (the same ``Node`` as ``trionode run``) in one trio run, under
``trio.testing.MockClock(autojump_threshold=0)``, on a simulated network, everything drawn
from one seed: a failure found on seed 81274 replays bit for bit with
``trionode sim --seed 81274`` (or ``python -m trionode.sim --seed 81274``).

Modules, in the order data flows:

- ``link``: one simulated TCP connection (two ``trio.abc.Stream`` ends) with latency, jitter,
  bandwidth, loss modelled as retransmission delay, flow control, blackholing, FIN and reset.
- ``network``: hosts that listen and dial by "host:port" (each node's ``Transport``); links
  drawn per host pair from the seed; partition any groups and cut one pair, faults that
  compose, heal one fault or all, crash and restart a host.
- ``plan``: the scenario from its seed (``Spec`` -> ``Plan``): topology, link profiles, and
  the schedule (mining, transactions from wallets, partitions, cuts, heals, crashes and
  restarts, slow hosts).
- ``scenario``: runs a plan, in this order: ``lifecycle`` starts the nodes on real data dirs
  (tmpfs when there is one) and crashes (mid-work) and restarts them; ``events`` plays the schedule;
  ``settling`` heals, restarts, waits for quiescence, breaks equal-work ties and drains the
  mempools into blocks; then the checks, a graceful stop of every node and a reopening of
  every store. ``record`` keeps what the run saw, ``result`` is what it hands back and
  ``watchdog`` bounds its real time.
- ``invariants``: the checks (one tip, the most-work valid chain, supply = rewards issued,
  no transaction lost or applied twice, mempools in agreement, no misbehaviour points between
  honest nodes, stores valid on disk); ``tasks``: no task leaked, on each node's live task tree.
- ``timeline``: what happened, one line per event, in simulated time.
- ``determinism``: pins trio's scheduler to the seed.
- ``cli``: ``trionode sim`` and sweeps over seeds (``--runs``, ``--jobs``).

What makes a run repeatable: trio's scheduler order is pinned (``determinism``); time is
MockClock's (nodes read wall time only through ``Environment.wall``, here a function of the
mock clock); every random draw comes from a ``random.Random`` seeded from the scenario seed
and a name (node keys and handshake challenges, heartbeat nonces, backoff jitter, link jitter and loss, the plan);
signatures and proof of work run inline (``InlineSignatureChecker``, ``InlineSolver``: no
threads or processes); no control socket or signal handler; no order-dependent iteration
over sets of strings or objects in the node. ``tests/sim/test_scenario.py`` runs one seed in
two processes with different ``PYTHONHASHSEED`` values and compares their output byte for
byte.

A crash is ``Node.crash()`` just before a step of one of the node's own tasks, a seeded number
of its steps after the event's time or after its next block event (``lifecycle``): it lands
in the middle of the node's work, never while it idles. Every task is cancelled at its next
checkpoint, every connection reset, and the graceful flush (peers.json, bans, the store's
final commit) is skipped; the node restarts later on the same data dir and must come back
with exactly the tip and mempool it had when it died. The chain owner commits synchronously
after each batch, so a crash at a checkpoint cannot tear a SQLite transaction; tearing by
``kill -9`` mid-write is what ``tests/chain/test_crash.py`` covers with real processes.
"""
