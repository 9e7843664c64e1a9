"""``kill -9`` at random moments of a busy run, repeated: every restart opens and validates
the store and catches up, and no accepted transaction is lost.

Three daemons in a full mesh: A and B mine continuously (difficulty 4, one worker process
each: dozens of blocks a second, so the miners race, fork and reorganise, and a restarted
miner first mines on its stale tip), C only relays. Two wallets submit transactions all along, one
to C and one to B. A random node is killed at a random moment, stays down a random while,
and is restarted. CI runs the short version; ``python -m pytest -m slow tests/hostile``
runs the long one (``TRIONODE_FAULT_SEED`` replays a run: the seed is printed).
"""

import json
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.hostile.daemons import Node, free_port
from tests.hostile.encoder import COIN, Key, Params, transaction
from tests.hostile.expect import wait_until
from tests.hostile.peer import count
from trionode.control.client import NodeNotRunning
from trionode.control.protocol import ControlError

FAULT_PARAMS = Params(difficulty=4)
KILLS_SHORT = 6
KILLS_LONG = 60
AMOUNT = COIN // 10_000


class Wallet(threading.Thread):
    """Submits transactions to ``entry`` one after another; keeps the txids it accepted."""

    def __init__(self, entry: Node, key: Key) -> None:
        super().__init__(daemon=True)
        self.entry = entry
        self.key = key
        self.accepted: list[str] = []
        self.rejected: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        nonce: int | None = None
        while not self.halt.wait(0.02):
            try:
                if nonce is None:  # (re)learn where we are: the node's ledger plus its pool
                    account = self.entry.control("balance", address=self.key.address.hex())
                    if account["spendable"] < 1:
                        continue
                    nonce = int(account["next_nonce"])
                tx = transaction(self.key, FAULT_PARAMS.network, os.urandom(20), AMOUNT, nonce)
                self.accepted.append(self.entry.control("submit", tx=tx)["txid"])
                nonce += 1
            except ControlError as exc:
                if "rejected" in str(exc):
                    self.rejected.append(str(exc))
                nonce = None  # the node died mid-call, or disagrees: ask again
            except (NodeNotRunning, OSError):
                nonce = None


def readable_state(node: Node) -> None:
    """What a kill -9 must leave readable (INTERFACE.md, "Data dir")."""
    node_id = (node.data_dir / "node_id").read_text().strip()
    assert len(node_id) == 32 and int(node_id, 16) >= 0
    for name in ("peers.json", "bans.json"):
        path = node.data_dir / name
        if path.exists():
            json.loads(path.read_text())


def status(node: Node) -> dict[str, Any] | None:
    try:
        result: dict[str, Any] = node.control("status")
        return result
    except (NodeNotRunning, ControlError, OSError):
        return None


def converged(nodes: list[Node]) -> str | None:
    """The common tip once every node is up, connected and on the same tip."""
    seen = [status(node) for node in nodes]
    if any(s is None or s["peers"] < 1 for s in seen):
        return None
    tips = {s["tip"] for s in seen if s is not None}
    return tips.pop() if len(tips) == 1 else None


def main_chain_txids(node: Node) -> list[str]:
    txids: list[str] = []
    height = 0
    while True:
        blocks = node.control("chain", **{"from": height, "limit": 1000})
        for block in blocks:
            txids += [tx["txid"] for tx in block["transactions"][1:]]
        if len(blocks) < 1000:
            return txids
        height += 1000


def log_count(node: Node, event: str) -> int:
    text = node.log_file.read_text() if node.log_file.exists() else ""
    return text.count(f'"event":"{event}"')


def run_faults(make: Callable[..., Node], kills: int) -> None:
    seed = int(os.environ.get("TRIONODE_FAULT_SEED", random.randrange(1 << 32)))
    print(f"fault run: {kills} kills, TRIONODE_FAULT_SEED={seed}")
    rng = random.Random(seed)
    ports = [free_port() for _ in range(3)]
    addresses = [f"127.0.0.1:{port}" for port in ports]
    keys = [Key(), Key()]
    nodes = []
    for i, name in enumerate(("a", "b", "c")):
        mining = {"enabled": i < 2, "address": keys[i].address.hex() if i < 2 else "", "workers": 1}
        node = make(
            name,
            FAULT_PARAMS,
            listen=addresses[i],
            peers=tuple(a for a in addresses if a != addresses[i]),
            mining=mining,
            log_level="info",
            start=False,
        )
        nodes.append(node.start())
    a, b, c = nodes
    wait_until(
        lambda: converged(nodes) and all((status(n) or {}).get("height", 0) >= 3 for n in nodes),
        60,
        "a start",
    )
    wallets = [Wallet(c, keys[0]), Wallet(b, keys[1])]
    for wallet in wallets:
        wallet.start()
    try:
        for round_ in range(kills):
            # Every third kill lands on a moment chosen by the node's own log: just after a
            # reorganisation, or in the middle of a catch-up sync; the others at random moments
            # (mining, relaying, syncing...).
            moment = ("random", "after_reorg", "random")[round_ % 3]
            victim = rng.choice(nodes)
            if moment == "after_reorg":
                seen = {id(n): log_count(n, "chain_reorganized") for n in nodes}
                try:
                    victim = wait_until(
                        lambda seen=seen: next(
                            (n for n in nodes if log_count(n, "chain_reorganized") > seen[id(n)]), None
                        ),
                        10,
                        "a reorganisation",
                    )
                except AssertionError:
                    moment = "random"  # the miners did not race within 10 s: a random kill
            else:
                time.sleep(rng.uniform(0.3, 2.0))
            victim.kill9()
            count("fault: kill -9 of a busy node")
            if moment == "after_reorg":
                count("fault: kill -9 just after a reorganisation")
            readable_state(victim)
            time.sleep(rng.uniform(1.0, 3.0) if round_ % 2 else rng.uniform(0.0, 1.5))  # others go on
            ahead = max((s or {}).get("height", 0) for s in map(status, nodes) if s is not None)
            batches = log_count(victim, "sync_progress")
            victim.start()  # listening and control.sock: the store opened and its chain replayed
            check = victim.control("validate")
            assert check["valid"], check["errors"]
            if round_ % 2 and (status(victim) or {}).get("height", ahead) < ahead:
                # Behind: kill it again as soon as its catch-up sync has applied a batch.
                try:
                    wait_until(
                        lambda v=victim, b=batches: log_count(v, "sync_progress") > b, 10, "a sync batch"
                    )
                except AssertionError:
                    pass  # caught up by relay instead of a sync: a plain restart, then
                else:
                    victim.kill9()
                    count("fault: kill -9 during a catch-up sync")
                    readable_state(victim)
                    victim.start()
                    check = victim.control("validate")
                    assert check["valid"], check["errors"]
            wait_until(lambda v=victim, h=ahead: (status(v) or {}).get("height", -1) >= h, 60, "catch-up")
    finally:
        for wallet in wallets:
            wallet.halt.set()
            wallet.join(30)
    # Quiet down: the miners stop (gracefully, this time) and come back without mining.
    for miner in (a, b):
        if miner.alive:
            assert miner.stop(timeout=15) == 0
        miner.mining["enabled"] = False
        miner.write_config()
        miner.start()
    if not c.alive:
        c.start()
    tip = wait_until(lambda: converged(nodes), 90, "convergence")
    # Mine what is still pending anywhere, until every pool is empty and all agree.
    for _ in range(10):
        pending = [node for node in nodes if node.control("pending")]
        if not pending:
            break
        pending[0].control("mine")
        tip = wait_until(lambda: converged(nodes), 60, "convergence after mining")
    assert all(not node.control("pending") for node in nodes)
    txids = main_chain_txids(c)
    assert len(txids) == len(set(txids)), "a transaction was confirmed twice"
    accepted = [txid for wallet in wallets for txid in wallet.accepted]
    lost = set(accepted) - set(txids)
    assert not lost, f"{len(lost)} of {len(accepted)} accepted transactions lost: {sorted(lost)[:5]}"
    assert not [r for wallet in wallets for r in wallet.rejected], [w.rejected for w in wallets]
    assert len(accepted) >= 10 * kills
    for node in nodes:
        check = node.control("validate")
        assert check["valid"] and check["tip"] == tip, check
    count("fault: transactions checked for loss", len(accepted))
    count("fault: blocks mined", sum(log_count(n, "block_mined") for n in nodes))
    count("fault: reorganisations seen", sum(log_count(n, "chain_reorganized") for n in nodes))
    for node in nodes:
        assert node.stop(timeout=15) == 0


def test_kill_9_at_random_moments_short(spawn: Callable[..., Node]) -> None:
    run_faults(spawn, KILLS_SHORT)


@pytest.mark.slow
def test_kill_9_at_random_moments_long(tmp_path: Path, spawn: Callable[..., Node]) -> None:
    run_faults(spawn, KILLS_LONG)
