"""The event loop stays responsive under heavy work: heartbeats keep being answered (and, while
mining, transactions relayed and control verbs answered) while the node mines at a real
difficulty, validates a large sync batch, and runs ``validate``.

Real time and real TCP on 127.0.0.1 (MockClock would hide exactly what is measured here): a
probe peer sends a ``Heartbeat`` every 0.2 s on its own connection and times each echo.
"""

import itertools
import math
import time
from pathlib import Path

import trio

from tests.runtime.harness import EventSink, scripted_identity
from tests.runtime.scripted import FakePeer
from trionode.chain.amounts import COIN
from trionode.chain.block import Block
from trionode.chain.keys import KeyPair
from trionode.chain.params import GENESIS_TIMESTAMP_MS, ChainParams
from trionode.chain.pow import meets_target, search
from trionode.chain.store import Store
from trionode.chain.transaction import sign_transaction
from trionode.chain.tree import Chain
from trionode.control.verbs import status, validate
from trionode.net.transport import TcpTransport
from trionode.node.app import Environment, Node
from trionode.node.config import NodeConfig
from trionode.node.logging import make_capturing_logger
from trionode.node.workers import ProcessSolver, ThreadSignatureChecker
from trionode.wire import messages as m

# The probe's ping period and the bound on its echo latency (99th percentile).
PING_EVERY = 0.2
MAX_LATENCY = 0.5
# The node's own heartbeat period here: its pings to the probe must keep this rhythm.
HEARTBEAT_EVERY = 0.5
# A transaction relayed through the mining node, or a control verb answered, within this: one
# signature check in a thread and a chain owner round trip, on a loop that shares two cores
# with the miner's two worker processes.
MAX_ROUND_TRIP = 1.0
# Between two transactions sent while mining (pacing, not waiting for anything).
TX_EVERY = 0.25
# No test here may take longer (they run in real time).
TEST_LIMIT = 60.0
# An echo that never comes counts as this late.
LOST = math.inf
ALICE = KeyPair(bytes(31) + b"\x0a")
BOB = KeyPair(bytes(31) + b"\x0b")


# Block 1 at difficulty 6 paying ALICE, on a fixed timestamp: a funded sender for the mining
# test, too costly to mine there (~16.7 million hashes). Its nonce was found once with
# ``search``; a change to the block or header encoding needs a new one.
FUNDED_DIFFICULTY = 6
FUNDED_TIMESTAMP_MS = GENESIS_TIMESTAMP_MS + 60_000
FUNDED_NONCE = 59_741_999


def store_funded_block(root: Path) -> None:
    """Put block 1 (``FUNDED_NONCE``) in the store ``real_node(root, ...)`` will open."""
    (root / "node").mkdir(parents=True)
    chain = Chain(ChainParams(difficulty=FUNDED_DIFFICULTY), Store(root / "node" / "chain.db"))
    template = chain.template(ALICE.address, FUNDED_TIMESTAMP_MS)
    block = Block(template.header.with_nonce(FUNDED_NONCE), template.txs)
    assert meets_target(block.block_hash, block.header.target), "block 1 changed: search a new nonce"
    assert chain.add_block(block, int(time.time() * 1000)).status == "connected"
    chain.commit()
    chain.store.close()


def real_node(root: Path, params: ChainParams, *, mining: bool = False) -> tuple[Node, EventSink]:
    config = NodeConfig(
        data_dir=root / "node",
        listen_host="127.0.0.1",
        listen_port=0,
        chain=params,
        mining_enabled=mining,
        mining_workers=2,
        sync_interval=600.0,
        heartbeat_interval=HEARTBEAT_EVERY,
    )
    env = Environment(
        transport=TcpTransport(),
        solver=ProcessSolver(2),
        signatures=ThreadSignatureChecker(),
        control=False,
        signals=False,
    )
    sink = EventSink()
    return Node(config, env, make_capturing_logger(sink)), sink


async def connect(node: Node, peer_id: int) -> FakePeer:
    assert node.listen_address is not None
    host, port = node.listen_address.rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    return FakePeer(stream, scripted_identity(peer_id), clock=time.time)


class Probe:
    """Pings every ``PING_EVERY`` s on its own connection; ``latencies`` once stopped."""

    def __init__(self, peer: FakePeer) -> None:
        self.peer = peer
        self.sent: dict[int, float] = {}
        self.stop = trio.Event()

    async def run(self) -> None:
        nonce = 0
        while not self.stop.is_set():
            nonce += 1
            self.sent[nonce] = trio.current_time()
            await self.peer.heartbeat(nonce)
            with trio.move_on_after(PING_EVERY):
                await self.stop.wait()

    async def latencies(self) -> list[float]:
        """Echo delay per ping (``LOST`` if none came within a grace period)."""
        with trio.move_on_after(2.0):
            while len(self._echoes()) < len(self.sent):
                await self.peer.wait_for("Heartbeat", count=len(self.peer.of_type("Heartbeat")) + 1)
        echoes = self._echoes()
        return [echoes[n] - sent if n in echoes else LOST for n, sent in self.sent.items()]

    def node_ping_gaps(self) -> list[float]:
        """Seconds between the heartbeats the node itself sent (its heartbeat loop's rhythm)."""
        times = [t for t, hb in self.peer.of_type("Heartbeat") if not hb.echo]
        return [b - a for a, b in itertools.pairwise(times)]

    def _echoes(self) -> dict[int, float]:
        return {hb.nonce: t for t, hb in self.peer.of_type("Heartbeat") if hb.echo}


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


async def start_probe(nursery: trio.Nursery, node: Node) -> Probe:
    peer = await connect(node, 0xB0B)
    nursery.start_soon(peer.run)
    # Claims no more work than the node has: the node never tries to sync from the probe.
    await peer.hello(node.network, work=node.chain.work, height=0, tip=node.network)
    await peer.wait_for("Hello")
    probe = Probe(peer)
    nursery.start_soon(probe.run)
    return probe


async def test_heartbeats_relay_and_control_are_answered_while_mining_at_a_real_difficulty(
    tmp_path: Path,
) -> None:
    # Difficulty 6: ~16.7 million hashes a block, seconds of work for two worker processes.
    store_funded_block(tmp_path)
    node, sink = real_node(tmp_path, ChainParams(difficulty=FUNDED_DIFFICULTY), mining=True)
    relay_delays: list[float] = []
    status_delays: list[float] = []
    with trio.fail_after(TEST_LIMIT):  # real time: a hang must fail, not block the run
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            assert node.owner.snapshot.height == 1
            probe = await start_probe(nursery, node)
            source, listener = await connect(node, 0x5E4D), await connect(node, 0x715E)
            for peer in (source, listener):
                nursery.start_soon(peer.run)
                await peer.hello(node.network, work=node.chain.work, height=1, tip=node.network)
            await sink.wait_for("mining_started")
            with trio.move_on_after(10):  # the worker processes are up and searching
                while node.miner.hashrate == 0:  # noqa: ASYNC110 - no event for the first round
                    await trio.sleep(0.05)
            assert node.miner.hashrate > 0, "the miner never completed a round"
            # The measurement window: ~15 pings while both cores hash; meanwhile a transaction
            # every TX_EVERY goes in from one peer and must come out to the other, and the
            # control verb ``status`` is called.
            deadline = trio.current_time() + 3.0
            sent_txids: list[bytes] = []
            while trio.current_time() < deadline:
                tx = sign_transaction(
                    ALICE, node.network, BOB.address, COIN // 100, len(sent_txids), int(time.time() * 1000)
                )
                sent = trio.current_time()
                await source.send(m.NewTransaction(tx=tx))
                sent_txids.append(tx.txid)
                arrived, _ = await listener.wait_for("NewTransaction", count=len(sent_txids), within=10)
                relay_delays.append(arrived - sent)
                asked = trio.current_time()
                answer = await status(node, {})
                status_delays.append(trio.current_time() - asked)
                assert answer["height"] >= 1
                await trio.sleep(TX_EVERY)  # pacing: nothing is awaited here
            probe.stop.set()
            latencies = await probe.latencies()
            assert node.miner.active == 1 and node.miner.hashrate > 100_000
            node.stop()
    assert len(latencies) >= 15
    assert p99(latencies) < MAX_LATENCY, sorted(latencies)
    assert [msg.tx.txid for _, msg in listener.of_type("NewTransaction")] == sent_txids
    assert len(relay_delays) >= 5 and max(relay_delays) < MAX_ROUND_TRIP, relay_delays
    assert max(status_delays) < MAX_ROUND_TRIP, status_delays
    # The node's own pings kept their rhythm: never near the 3 silent intervals that get a
    # connection dropped, and about one per interval overall.
    gaps = probe.node_ping_gaps()
    assert len(gaps) >= 4 and max(gaps) < 3 * HEARTBEAT_EVERY, gaps
    assert sum(gaps) / len(gaps) < 1.5 * HEARTBEAT_EVERY, gaps


def build_loaded_chain(
    path: Path, params: ChainParams, blocks: int, txs_per_block: int
) -> tuple[list[Block], int]:
    """``blocks`` blocks on real-time timestamps, each with ``txs_per_block`` signed transfers."""
    chain = Chain(params, Store(path))
    now_ms = int(time.time() * 1000)
    out = []
    nonce = 0
    for i in range(blocks):
        if i > 0:
            for _ in range(txs_per_block):
                tx = sign_transaction(ALICE, params.network, BOB.address, COIN // 100, nonce, now_ms)
                chain.add_transaction(tx, now_ms + i, signature_checked=True)
                nonce += 1
        template = chain.template(ALICE.address, now_ms + i)
        found = search(template.header.prefix(), template.header.target, 0, 1 << 24)
        assert found is not None
        block = Block(template.header.with_nonce(found), template.txs)
        assert chain.add_block(block, now_ms + i, signatures_checked=True).status == "connected"
        out.append(block)
    work = chain.work
    chain.store.close()
    return out, work


async def test_heartbeats_are_answered_while_a_500_block_batch_and_validate_run(tmp_path: Path) -> None:
    params = ChainParams(difficulty=1)
    blocks, work = build_loaded_chain(tmp_path / "prepared.db", params, 500, 20)
    node, sink = real_node(tmp_path, params)
    with trio.fail_after(TEST_LIMIT):  # real time: a hang must fail, not block the run
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            probe = await start_probe(nursery, node)
            await trio.sleep(0.4)  # a few pings at rest first
            # A peer with the whole chain: the node asks it and gets 500 blocks in one frame.
            feeder = await connect(node, 0xFEED)
            nursery.start_soon(feeder.run)
            await feeder.hello(node.network, work=work, height=500, tip=blocks[-1].block_hash)
            await feeder.wait_for("RequestChain")
            batch_sent = trio.current_time()
            await feeder.send(m.ResponseChain(blocks=blocks))
            # The node asks for more only once the whole batch is validated and stored.
            batch_done, _ = await feeder.wait_for("RequestChain", count=2, within=30)
            await feeder.send(m.ResponseChain(blocks=[]))
            await sink.wait_for("sync_progress", height=500, within=30)
            assert node.owner.snapshot.tip == blocks[-1].block_hash.hex()
            synced = len(probe.sent)
            # The full re-check runs in a thread: the loop must keep answering meanwhile.
            checks = 0
            deadline = trio.current_time() + 2.0
            while trio.current_time() < deadline or checks < 1:
                result = await validate(node, {})
                assert result["valid"] is True and result["height"] == 500
                checks += 1
            probe.stop.set()
            latencies = await probe.latencies()
            node.stop()
    during_batch = [t for t in probe.sent.values() if batch_sent <= t <= batch_done]
    assert len(during_batch) >= 2, f"the batch took {batch_done - batch_sent:.2f} s: too short to measure"
    assert synced >= 3 and len(latencies) >= synced + 8
    assert p99(latencies) < MAX_LATENCY, sorted(latencies)
    # The node's own pings kept their rhythm: never near the 3 silent intervals that get a
    # connection dropped, and about one per interval overall.
    gaps = probe.node_ping_gaps()
    assert len(gaps) >= 4 and max(gaps) < 3 * HEARTBEAT_EVERY, gaps
    assert sum(gaps) / len(gaps) < 1.5 * HEARTBEAT_EVERY, gaps
