"""A five-node network in network namespaces, partitioned, mined on both sides, healed.

Each node runs in its own namespace (``ip netns exec``) with a veth into a hub namespace
holding two bridges; the partition moves the hub ends of nodes 0 and 1 from the first bridge
to the second, cutting them off from 2, 3 and 4 (packets are dropped, not refused: TCP
connections hang until the 3-heartbeat timeout). Both sides mine and take transactions; a
double spend is sent to both. After the heal every node must reach the side with more work,
every transaction must be confirmed once, and exactly one half of the double spend.

Needs root and ``ip`` (iproute2), as CI has; skipped with the reason where either is missing
or namespaces are not permitted. State is read through each node's control socket, which is
a path in the shared file system, so the test itself stays in the root namespace.
"""

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hostile.daemons import PARAMS, Node
from tests.hostile.encoder import COIN, Key, transaction
from tests.hostile.expect import wait_until
from tests.hostile.peer import count
from trionode.control.client import NodeNotRunning
from trionode.control.protocol import ControlError

SIDE_A = (0, 1)  # the minority side: mines fewer blocks
SIDE_B = (2, 3, 4)
PORT = 5001
TAG = f"tn{os.getpid() % 100_000}"  # names unique to this run (veth names: 15 chars at most)


def ip(*args: str, ns: str | None = None) -> None:
    command = ["ip", *args] if ns is None else ["ip", "netns", "exec", ns, "ip", *args]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=30)


def build(hub: str, names: list[str], prefix: str) -> None:
    """The hub namespace with two bridges, and one namespace per node wired into ``br0``.

    Every step the test needs, in the order it needs them: creating namespaces, ``ip netns
    exec`` (which remounts /sys), veth pairs moved between namespaces, bridges, addresses."""
    ip("netns", "add", hub)
    for bridge in ("br0", "br1"):
        ip("link", "add", bridge, "type", "bridge", ns=hub)
        ip("link", "set", bridge, "up", ns=hub)
    for i, ns in enumerate(names):
        ip("netns", "add", ns)
        inside, outside = f"{prefix}i{i}", f"{prefix}o{i}"
        ip("link", "add", inside, "type", "veth", "peer", "name", outside)
        ip("link", "set", inside, "netns", ns)
        ip("link", "set", outside, "netns", hub)
        ip("addr", "add", f"10.77.0.{i + 1}/24", "dev", inside, ns=ns)
        ip("link", "set", inside, "up", ns=ns)
        ip("link", "set", "lo", "up", ns=ns)
        ip("link", "set", outside, "master", "br0", "up", ns=hub)


def tear_down(hub: str, names: list[str], prefix: str) -> None:
    """Deleting a namespace deletes its veth ends and bridges; a pair that never left the
    root namespace (a step refused half way) is deleted by name."""
    for ns in [*names, hub]:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    for i in range(len(names)):
        subprocess.run(["ip", "link", "del", f"{prefix}i{i}"], capture_output=True)


def netns_unavailable() -> str | None:
    """Why this machine cannot run the test, or None: the whole setup is tried on a small
    scale (a hub and one node), so a refusal skips the test instead of failing its setup."""
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed (apt-get install iproute2)"
    if os.geteuid() != 0:
        return "creating network namespaces needs root (CI runs as root)"
    hub, names, prefix = f"{TAG}ph", [f"{TAG}pn"], f"{TAG}p"
    try:
        build(hub, names, prefix)
    except subprocess.CalledProcessError as exc:
        step = " ".join(exc.cmd)
        return f"network namespaces are not usable here: `{step}` failed: {exc.stderr.strip()}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"network namespaces are not usable here: {exc}"
    finally:
        tear_down(hub, names, prefix)
    return None


@pytest.fixture(scope="module")
def namespaces() -> Iterator[list[str]]:
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(reason)
    hub = f"{TAG}hub"
    names = [f"{TAG}n{i}" for i in range(5)]
    try:
        build(hub, names, TAG)
        yield names
    finally:
        tear_down(hub, names, TAG)


def move(indices: tuple[int, ...], bridge: str) -> None:
    for i in indices:
        ip("link", "set", f"{TAG}o{i}", "master", bridge, ns=f"{TAG}hub")


def call(node: Node, verb: str, **args: Any) -> Any:
    try:
        return node.control(verb, **args)
    except (NodeNotRunning, ControlError, OSError):
        return None


def peers_connected(node: Node) -> set[str]:
    rows = call(node, "peers") or []
    return {row["address"] for row in rows if row["connected"]}


def tips(nodes: list[Node]) -> set[str]:
    return {(call(node, "status") or {}).get("tip", "?") for node in nodes}


def submit(node: Node, key: Key, nonce: int, amount: int = COIN // 1000, to: bytes | None = None) -> str:
    tx = transaction(key, PARAMS.network, to or os.urandom(20), amount, nonce)
    txid: str = node.control("submit", tx=tx)["txid"]
    return txid


def confirmed(node: Node) -> list[str]:
    blocks = node.control("chain", **{"from": 0, "limit": 1000})
    return [tx["txid"] for block in blocks for tx in block["transactions"][1:]]


def run_partition(namespaces: list[str], spawn: Callable[..., Node], rounds: int, hold: float) -> None:
    """Split, then ``rounds`` of transactions and mining on both sides ``hold`` s apart, heal."""
    addresses = [f"10.77.0.{i + 1}:{PORT}" for i in range(5)]
    nodes: list[Node] = []
    for i, ns in enumerate(namespaces):
        node = spawn(
            f"part{rounds}-{i}",
            listen=addresses[i],
            peers=tuple(a for a in addresses if a != addresses[i]),
            prefix=("ip", "netns", "exec", ns),
            log_level="info",
            start=False,
        )
        nodes.append(node)
    for node in nodes:
        node.start(wait=False)
    for node in nodes:
        node.address = node.wait_for("listening")["address"]
        wait_until(lambda n=node: call(n, "status") is not None, 30, "control socket")
    wait_until(lambda: all(len(peers_connected(n)) >= 4 for n in nodes), 60, "a full mesh")
    # Fund three wallets before the split: A spends on side A, B on side B, D double-spends.
    ka, kb, kd = Key(), Key(), Key()
    for key in (ka, kb):
        nodes[0].control("mine", to=key.address.hex())
    wait_until(lambda: len(tips(nodes)) == 1, 30, "funding blocks everywhere")
    fund_d = submit(nodes[0], ka, 0, 10 * COIN, to=kd.address)
    nodes[0].control("mine")
    wait_until(lambda: len(tips(nodes)) == 1, 30, "the double spender's funds everywhere")

    move(SIDE_A, "br1")  # the partition
    count("fault: network partition")
    for i in range(5):
        other = SIDE_B if i in SIDE_A else SIDE_A
        far = {addresses[j] for j in other}
        wait_until(lambda n=nodes[i], far=far: not peers_connected(n) & far, 30, "the split to be noticed")
    # Both sides take transactions and mine; side B mines twice as much (the most-work chain).
    spend_a = submit(nodes[1], kd, 0, 5 * COIN)  # the same coins, on both sides
    spend_b = submit(nodes[4], kd, 0, 5 * COIN)
    side_a: list[str] = []
    side_b: list[str] = []
    for round_ in range(rounds):
        if round_:
            time.sleep(hold)  # the partition lasts: redials fail and back off meanwhile
        for _ in range(3):
            side_a.append(submit(nodes[1], ka, 1 + len(side_a)))
            side_b.append(submit(nodes[3], kb, len(side_b)))
        nodes[0].control("mine")
        for _ in range(2):
            nodes[2].control("mine")
    wait_until(lambda: len(tips([nodes[i] for i in SIDE_A])) == 1, 30, "side A to agree")
    wait_until(lambda: len(tips([nodes[i] for i in SIDE_B])) == 1, 30, "side B to agree")
    tip_a = call(nodes[0], "status")
    tip_b = call(nodes[2], "status")
    assert tip_b["work"] > tip_a["work"] and tip_a["tip"] != tip_b["tip"]

    move(SIDE_A, "br0")  # the heal: nothing is told to reconnect; redial and sync do it
    wait_until(lambda: tips(nodes) == {tip_b["tip"]}, 150, "every node on the most-work chain")
    for i in SIDE_A:
        # Side A's blocks are disconnected (once B's branch has more work, maybe before its tip).
        reorgs = nodes[i].wait_until(lambda n=nodes[i]: n.matching("chain_reorganized", old_tip=tip_a["tip"]))
        assert [r["depth"] for r in reorgs] == [rounds]
    # Side A's transactions came back from its abandoned blocks; one more block confirms them.
    wait_until(lambda: set(side_a) <= {t["txid"] for t in call(nodes[2], "pending") or []}, 60, "relay")
    nodes[2].control("mine")
    wait_until(lambda: len(tips(nodes)) == 1 and tips(nodes) != {tip_b["tip"]}, 60, "the last block")
    final = confirmed(nodes[2])
    assert len(final) == len(set(final))
    assert {fund_d, *side_a, *side_b} <= set(final)
    assert (spend_a in final) != (spend_b in final), "exactly one half of the double spend"
    for node in nodes:
        assert call(node, "pending") == []
        assert node.control("balance", address=kd.address.hex())["balance"] == 5
        assert node.control("validate")["valid"] is True
        assert not node.matching("peer_banned")
    count("fault: transactions checked for loss", 1 + len(side_a) + len(side_b) + 2)
    for node in nodes:
        assert node.stop(timeout=15) == 0


def test_a_partitioned_network_heals_onto_the_most_work_chain_and_loses_nothing(
    namespaces: list[str], spawn: Callable[..., Node]
) -> None:
    run_partition(namespaces, spawn, rounds=2, hold=0.0)


@pytest.mark.slow
def test_a_long_partition_heals_after_the_redial_backoff(
    namespaces: list[str], spawn: Callable[..., Node]
) -> None:
    """A minute apart: failed redials back off towards 60 s before the heal."""
    run_partition(namespaces, spawn, rounds=12, hold=5.0)


def test_a_refused_setup_step_skips_the_test_with_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Namespaces may be allowed and a later step refused (a container without bridges, or
    where ``ip netns exec`` cannot remount /sys): the probe must say so, not pass."""
    fake = tmp_path / "ip"
    fake.write_text(
        '#!/bin/sh\ncase "$*" in *"type bridge"*) echo "RTNETLINK answers: Operation not permitted" >&2; '
        "exit 2;; esac\nexit 0\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    reason = netns_unavailable()
    assert reason is not None and "type bridge" in reason and "Operation not permitted" in reason, reason
