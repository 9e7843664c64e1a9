"""Consensus between real daemons on 127.0.0.1: relay through the shipped configs, a partition
that heals into a reorganisation, catching up 500+ blocks, ``kill -9`` in the middle of a
sync, a peer that sends garbage, and peers redialled after a crash (issues #4 and #5)."""

import json
import os
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

from tests.integration.daemon import Daemon, cli, cli_json, free_ports, poll
from trionode.chain.amounts import COIN
from trionode.chain.block import Block
from trionode.chain.keys import KeyPair
from trionode.chain.params import ChainParams
from trionode.chain.pow import search
from trionode.chain.store import Store
from trionode.chain.tree import Chain
from trionode.wire import messages as m
from trionode.wire.framing import FrameDecoder
from trionode.wire.handshake import Handshake
from trionode.wire.identity import NodeIdentity

REPO = Path(__file__).resolve().parents[2]
# The [chain] section of daemon.CHAIN: stores prepared here must be of the daemons' network.
PARAMS = ChainParams(difficulty=1, mining_reward=50 * COIN)
# A sync batch (protocol.md 8.2).
BATCH = 500


def node_id(daemon: Daemon) -> str:
    node: str = daemon.wait_for("listening")["node_id"]
    return node


def wallet(daemon: Daemon, name: str) -> str:
    address: str = cli_json("wallet", "new", name, data_dir=daemon.data_dir)["address"]
    return address


def send(daemon: Daemon, sender: str, to: str, amount: str) -> str:
    result = cli_json("send", "--from", sender, "--to", to, "--amount", amount, data_dir=daemon.data_dir)
    assert result["amount"] == float(amount) and not isinstance(result["amount"], str)  # coins, a number
    txid: str = result["txid"]
    return txid


def pending(daemon: Daemon) -> set[str]:
    return {tx["txid"] for tx in daemon.call("pending")}


def confirmed(daemon: Daemon) -> set[str]:
    """Every txid on the daemon's main chain."""
    blocks = daemon.call("chain", **{"from": 0, "limit": 1_000})
    return {tx["txid"] for block in blocks for tx in block["transactions"]}


def balances(daemon: Daemon, *addresses: str) -> list[float]:
    return [daemon.call("balance", address=a)["balance"] for a in addresses]


def mine(daemon: Daemon, count: int) -> list[dict[str, Any]]:
    return [cli_json("mine", data_dir=daemon.data_dir) for _ in range(count)]


def same_tip(nodes: list[Daemon], tip: str) -> bool:
    return all(n.call("status")["tip"] == tip for n in nodes)


# ----------------------------------------------------------------------------- a. configs/


def test_three_nodes_from_the_shipped_configs_relay_and_agree(tmp_path: Path, daemons: list[Daemon]) -> None:
    """configs/node1..3.toml as shipped, but on free ports and temporary data dirs."""
    ports = free_ports(3)
    nodes = []
    for i in (1, 2, 3):
        text = (REPO / "configs" / f"node{i}.toml").read_text()
        for j, port in enumerate(ports, 1):
            assert f'"127.0.0.1:{5000 + j}"' in text
            text = text.replace(f'"127.0.0.1:{5000 + j}"', f'"127.0.0.1:{port}"')
        data_dir = f'data_dir = "data/node{i}"'
        assert data_dir in text
        text = text.replace(data_dir, f'data_dir = "{tmp_path / f"node{i}"}"')
        nodes.append(Daemon.from_config(f"node{i}", tmp_path, text))
    for node in nodes:
        daemons.append(node.start())
    n1, n2, n3 = nodes
    assert [n.address for n in nodes] == [f"127.0.0.1:{p}" for p in ports]
    ids = [node_id(n) for n in nodes]
    for node in nodes:  # each lists the other two: a full mesh
        for other in ids:
            if other != node_id(node):
                node.wait_for("peer_connected", peer=other)

    alice = wallet(n1, "alice")
    bob = wallet(n2, "bob")
    first = cli_json("mine", "--to", "alice", data_dir=n1.data_dir)
    for node in (n2, n3):
        node.wait_for("block_accepted", hash=first["hash"])
    txid = send(n1, "alice", bob, "12.5")
    for node in (n2, n3):
        node.wait_for("tx_accepted", txid=txid)
        assert [t["txid"] for t in cli_json("pending", data_dir=node.data_dir)] == [txid]
    assert "node" not in {w["name"] for w in cli_json("wallet", "list", data_dir=n3.data_dir)}
    mined = cli_json("mine", data_dir=n3.data_dir)  # the reward goes to node 3's own wallet
    # ... the wallet "node", created by this first use.
    assert cli_json("wallet", "show", "node", data_dir=n3.data_dir)["address"] == mined["to"]
    for node in (n1, n2):
        node.wait_for("block_accepted", hash=mined["hash"])
    for node in nodes:
        status = node.call("status")
        assert (status["height"], status["tip"], status["pending"]) == (2, mined["hash"], 0)
        assert balances(node, alice, bob, mined["to"]) == [37.5, 12.5, 50]
    assert cli_json("balance", "bob", data_dir=n2.data_dir)["balance"] == 12.5

    # block, by height and by hash, agrees with chain; sync has nothing to replace here.
    by_height = cli_json("block", "2", data_dir=n1.data_dir)
    assert by_height == cli_json("block", mined["hash"], data_dir=n2.data_dir)
    assert by_height["hash"] == mined["hash"] and {t["txid"] for t in by_height["transactions"]} >= {txid}
    synced = cli_json("sync", data_dir=n1.data_dir)
    assert synced == {"height": 2, "tip": mined["hash"], "replaced": False, "peers": 2}
    # disconnect drops the peer (both sides log it). Node 1 does not redial it; node 3, which
    # lists node 1 in its config, does: the link comes back, inbound at node 1.
    before = len(n1.matching("peer_connected", peer=ids[2]))
    assert cli_json("disconnect", ids[2], data_dir=n1.data_dir)["node_id"] == ids[2]
    n1.wait_for("peer_disconnected", peer=ids[2], reason="disconnect_requested")
    n3.wait_for("peer_disconnected", peer=ids[0], reason="peer_error:disconnect")
    n1.wait_until(lambda: len(n1.matching("peer_connected", peer=ids[2])) > before, what="node 3 to redial")
    assert all(e["direction"] == "inbound" for e in n1.matching("peer_connected", peer=ids[2])[before:])
    assert "not connected" in cli("disconnect", "0" * 32, data_dir=n1.data_dir, check=False).stderr
    # A second `mine` rewards the same wallet, not a new one.
    again = cli_json("mine", data_dir=n3.data_dir)
    assert (again["height"], again["to"]) == (3, mined["to"])
    assert [w["name"] for w in cli_json("wallet", "list", data_dir=n3.data_dir)].count("node") == 1
    assert balances(n3, mined["to"]) == [100]
    for node in nodes:
        assert node.stop() == 0


# ----------------------------------------------------------------------------- b. fork


def shared_history(data_dirs: list[Path], payees: list[str]) -> list[Block]:
    """The same first blocks (one paying each payee) in every data dir's store."""
    blocks: list[Block] = []
    now_ms = int(time.time() * 1000) - 60_000
    for n, data_dir in enumerate(data_dirs):
        data_dir.mkdir(parents=True, exist_ok=True)
        chain = Chain(PARAMS, Store(data_dir / "chain.db"))
        for i, payee in enumerate(payees):
            if n == 0:
                template = chain.template(bytes.fromhex(payee), now_ms + i)
                nonce = search(template.header.prefix(), template.header.target, 0, 1 << 20)
                assert nonce is not None
                blocks.append(Block(template.header.with_nonce(nonce), template.txs))
            assert chain.add_block(blocks[i], now_ms + 1_000).status == "connected"
        chain.commit()
        chain.store.close()
    return blocks


def test_partitioned_groups_reconnect_reorganise_and_lose_no_transaction(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    names = ["a1", "a2", "b1", "b2"]
    for name in names:
        (tmp_path / name).mkdir()
    # Wallets first (they need no node), then a history both groups share, written straight
    # into each store: alice and carol each own a block reward before the network splits.
    seeds = {name: Daemon(name, tmp_path) for name in names}
    alice, bob = wallet(seeds["a1"], "alice"), wallet(seeds["a2"], "bob")
    carol, dave = wallet(seeds["b1"], "carol"), wallet(seeds["b2"], "dave")
    shared_history([tmp_path / n for n in names], [alice, carol])
    # Two groups with no link between them (a2 and b2 know only their group's seed).
    a1 = seeds["a1"].start()
    a2 = Daemon("a2", tmp_path, peers=(a1.address,)).start()
    b1 = seeds["b1"].start()
    b2 = Daemon("b2", tmp_path, peers=(b1.address,)).start()
    nodes = [a1, a2, b1, b2]
    daemons.extend(nodes)
    assert [n.wait_for("node_started")["height"] for n in nodes] == [2, 2, 2, 2]
    a2.wait_for("peer_connected", peer=node_id(a1))
    b2.wait_for("peer_connected", peer=node_id(b1))

    # Group A: one transaction mined into A's one block, one left pending.
    a_mined = send(a1, "alice", bob, "10")
    a2.wait_for("tx_accepted", txid=a_mined)
    (a_block,) = mine(a2, 1)
    assert a_block["txs"] == 2
    a1.wait_for("block_accepted", hash=a_block["hash"])
    a_pending = send(a1, "alice", bob, "5")
    a2.wait_for("tx_accepted", txid=a_pending)
    # Group B: more work (three blocks), carrying its own transaction.
    b_tx = send(b1, "carol", dave, "7")
    b2.wait_for("tx_accepted", txid=b_tx)
    b_blocks = mine(b2, 3)
    b_tip = b_blocks[-1]["hash"]
    b1.wait_for("block_accepted", hash=b_tip)
    assert a1.call("status")["height"] == 3 and b1.call("status")["height"] == 5

    # Heal: one link between the groups is enough.
    connected = cli_json("connect", b1.address, data_dir=a1.data_dir)
    assert connected["node_id"] == node_id(b1)
    poll(lambda: same_tip(nodes, b_tip), timeout=30, what="every node on the most-work tip")
    for loser in (a1, a2):
        reorg = loser.wait_for("chain_reorganized")
        assert (reorg["old_tip"], reorg["depth"]) == (a_block["hash"], 1)
    for winner in (b1, b2):
        assert not winner.matching("chain_reorganized")
    # Nothing sent on the losing side is lost: not on the winning chain, so back in every
    # mempool (relayed to the winners after the reorganisation), in nonce order.
    poll(
        lambda: all({a_mined, a_pending} <= pending(n) for n in nodes),
        timeout=30,
        what="the losing side's transactions in every mempool",
    )
    for node in nodes:
        on_chain = confirmed(node)
        assert b_tx in on_chain and a_mined not in on_chain and a_pending not in on_chain
        assert balances(node, alice, bob, carol, dave) == [50, 0, 43, 7]
    # The next block, mined by a node of the losing side, confirms them everywhere.
    (last,) = mine(a1, 1)
    assert last["height"] == 6 and last["txs"] == 3
    poll(lambda: same_tip(nodes, last["hash"]), timeout=30, what="every node on the new tip")
    for node in nodes:
        assert {a_mined, a_pending} <= confirmed(node)
        assert pending(node) == set()
        assert balances(node, alice, bob, carol, dave) == [35, 15, 43, 7]


# ----------------------------------------------------------------------------- c, d. sync


def mined_source(root: Path, min_height: int) -> tuple[Daemon, int]:
    """A daemon that mined at full speed (difficulty 1) past ``min_height``, then stopped;
    its config now has mining off. Returns it (not running) and its height."""
    source = Daemon("source", root, extra="[mining]\nenabled = true")
    source.start()
    try:
        source.wait_until(
            lambda: source.by_event.get("block_mined", [{}])[-1].get("height", 0) >= min_height,
            timeout=60,
            what=f"block_mined at height {min_height}",
        )
    finally:
        code = source.stop()
    assert code == 0
    height: int = source.wait_for("node_stopped")["height"]
    assert height >= min_height
    source.config.write_text(source.config.read_text().replace("enabled = true", "enabled = false"))
    return source, height


def test_empty_node_catches_up_500_blocks_then_gets_one_block_as_one_block(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    source, height = mined_source(tmp_path, BATCH + 100)
    daemons.append(source.start())
    tip = source.call("status")["tip"]
    late = Daemon("late", tmp_path, peers=(source.address,)).start()
    daemons.append(late)
    late.wait_for("sync_progress", height=height, timeout=60)
    progress = late.matching("sync_progress")
    assert all(p["target"] == height for p in progress)
    assert len(progress) >= 2 and progress[0]["blocks"] == BATCH  # full batches while behind
    assert [p["blocks"] for p in progress] == sorted({p["blocks"] for p in progress})
    assert progress[-1]["blocks"] == height  # every block once
    assert late.call("status")["tip"] == tip
    checked = cli_json("validate", data_dir=late.data_dir)
    assert (checked["valid"], checked["height"], checked["errors"]) == (True, height, [])

    # One block behind: the catch-up moves one block, not the chain.
    seen = len(late.events)
    (block,) = mine(source, 1)
    late.wait_for("block_accepted", hash=block["hash"])
    late.wait_until(lambda: late.call("status")["height"] == height + 1, what="the new tip")
    since = late.events[seen:]
    assert [e["height"] for e in since if e["event"] == "block_accepted"] == [height + 1]
    assert all(e["blocks"] <= 1 for e in since if e["event"] == "sync_progress")

    # One block behind after a restart: no relay to ride on, so a sync fetches it, and the
    # locator makes that sync one block long.
    assert late.stop() == 0
    (block,) = mine(source, 1)
    late.start()
    late.wait_for("sync_progress", height=height + 2)
    (progress,) = late.matching("sync_progress")
    assert (progress["blocks"], progress["target"]) == (1, height + 2)
    assert [e["height"] for e in late.matching("block_accepted")] == [height + 2]
    assert late.call("status")["tip"] == block["hash"]


def test_kill_9_during_a_sync_leaves_a_valid_store_that_catches_up(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    source, height = mined_source(tmp_path, 5 * BATCH)
    daemons.append(source.start())
    tip = source.call("status")["tip"]
    late = Daemon("late", tmp_path, peers=(source.address,)).start()
    daemons.append(late)
    first = late.wait_for("sync_progress", timeout=60)
    late.kill()  # SIGKILL, with batches still to come
    assert first["height"] == BATCH < height
    # Every file is readable after the kill.
    assert len((late.data_dir / "node_id").read_text().strip()) == 32
    if (late.data_dir / "peers.json").exists():
        json.loads((late.data_dir / "peers.json").read_text())

    late.start()
    reopened = late.wait_for("node_started")["height"]
    # What was logged as synced was durable; what was not yet synced is not there.
    assert BATCH <= reopened < height
    checked = cli_json("validate", data_dir=late.data_dir)
    assert checked["valid"] is True and checked["errors"] == []
    assert checked["height"] >= reopened
    late.wait_for("sync_progress", height=height, timeout=60)
    assert late.call("status")["tip"] == tip
    assert cli_json("validate", data_dir=late.data_dir)["valid"] is True
    assert late.stop() == 0


# ----------------------------------------------------------------------------- e. garbage


def frame_reader(sock: socket.socket) -> list[m.Envelope]:
    """Every message until the node closes the socket (or 10 s pass)."""
    decoder = FrameDecoder()
    got: list[m.Envelope] = []
    sock.settimeout(10)
    while True:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return got
        if not data:
            return got
        got.extend(m.decode_message(body) for body in decoder.feed(data))


def test_garbage_sender_is_dropped_while_honest_peers_keep_relaying(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    n1 = Daemon("n1", tmp_path).start()
    n2 = Daemon("n2", tmp_path, peers=(n1.address,)).start()
    daemons += [n1, n2]
    id1, id2 = node_id(n1), node_id(n2)
    n1.wait_for("peer_connected", peer=id2)
    n2.wait_for("peer_connected", peer=id1)

    # Junk before any handshake, connection after connection, while the honest pair works.
    stop = threading.Event()
    junk_sent: list[bytes] = []

    def spray() -> None:
        while not stop.is_set():
            size = 1 + len(junk_sent) % 64
            junk = (b"\xff\xff\xff\xff" if len(junk_sent) % 2 else struct.pack(">I", size)) + os.urandom(size)
            with socket.create_connection(("127.0.0.1", n1.port), timeout=10) as sock:
                sock.sendall(junk)
                frame_reader(sock)
            junk_sent.append(junk)

    sprayer = threading.Thread(target=spray, daemon=True)
    sprayer.start()
    try:
        # Junk after a valid handshake: the established peer is disconnected.
        identity = NodeIdentity(KeyPair(bytes(range(32))))
        liar = identity.node_id
        with socket.create_connection(("127.0.0.1", n1.port), timeout=10) as sock:
            network = bytes.fromhex(n1.wait_for("node_started")["network"])
            hello = m.Hello(1, network, liar, 0, 0, network, 16, "x", identity.key.public_key, bytes(16))
            handshake = Handshake(hello, outbound=True, identity=identity)
            for message in handshake.start():
                sock.sendall(m.encode_message(message, liar, time.time()))
            decoder, replies = FrameDecoder(), []
            while not handshake.complete:
                for body in decoder.feed(sock.recv(65536)):
                    replies.append(m.decode_message(body))
                    result = handshake.receive(replies[-1])
                    assert not result.close, result
                    for message in result.send:
                        sock.sendall(m.encode_message(message, liar, time.time()))
            n1.wait_for("peer_connected", peer=liar.hex())
            sock.sendall(b"\x00\x00\x00\x05hello")
            replies += frame_reader(sock)
        assert [r.type for r in replies[:2]] == ["Hello", "HelloProof"]
        assert replies[-1].type == "Error" and replies[-1].message.code == "protocol_error"  # type: ignore[union-attr]
        dropped = n1.wait_for("peer_disconnected", peer=liar.hex())
        assert dropped["reason"].startswith("protocol_error:")

        # Meanwhile blocks and transactions flow both ways between the honest nodes.
        alice = wallet(n2, "alice")
        first = cli_json("mine", "--to", alice, data_dir=n2.data_dir)
        n1.wait_for("block_accepted", hash=first["hash"])
        txid = send(n2, "alice", "00" * 20, "1")
        n1.wait_for("tx_accepted", txid=txid)
        second = cli_json("mine", data_dir=n1.data_dir)
        n2.wait_for("block_accepted", hash=second["hash"])
        n2.wait_until(lambda: txid in confirmed(n2), what="the transaction confirmed")
        n1.wait_until(lambda: len(junk_sent) >= 20, what="20 junk connections")
    finally:
        stop.set()
        sprayer.join(15)
    failed = n1.matching("handshake_failed")
    assert len(failed) >= 20
    assert all(e["reason"].startswith("protocol_error:") for e in failed), {e["reason"] for e in failed}
    assert not n1.matching("peer_disconnected", peer=id2)
    assert not n1.matching("peer_banned")  # loopback, no node id: nothing to blame but close
    assert [p["node_id"] for p in n1.call("peers") if p["connected"]] == [id2]


# ----------------------------------------------------------------------------- f. redial


def test_kill_9_then_restart_redials_peers_it_only_knew_from_peers_json(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    b = Daemon("b", tmp_path).start()
    a = Daemon("a", tmp_path, peers=(b.address,)).start()
    daemons += [a, b]
    a_id = node_id(a)
    assert b.wait_for("peer_connected", peer=a_id)["direction"] == "inbound"
    b.call("peers")  # writes peers.json now rather than within the next 5 s
    a.kill()
    b.kill()
    # b learnt a's listen address from a's Hello (a dialled in from an ephemeral port).
    saved = json.loads((b.data_dir / "peers.json").read_text())
    assert saved[a_id]["address"] == a.address

    b.start()  # a is down: b reloads it as disconnected and keeps redialling it
    listed = [p for p in b.call("peers") if p["node_id"] == a_id]
    assert [(p["address"], p["connected"]) for p in listed] == [(a.address, False)]
    b.wait_for("dial_failed", address=a.address)
    # a comes back on its address, knowing nothing of b: only b's redial can reconnect them.
    (a.data_dir / "peers.json").unlink(missing_ok=True)
    a.config.write_text(
        a.config.read_text()
        .replace(f'peers = ["{b.address}"]', "peers = []")
        .replace('listen = "127.0.0.1:0"', f'listen = "{a.address}"')
    )
    a.start()
    again = b.wait_for("peer_connected", peer=a_id, timeout=30)
    assert again["direction"] == "outbound" and again["address"] == a.address
    assert a.stop() == 0 and b.stop() == 0
