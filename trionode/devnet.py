"""``trionode devnet``: a local network of real nodes, set up like the seed's demo, in one command.

Starts N ``trionode run`` processes on free loopback ports, each with its own config
(``DIR/nodeK.toml``), data dir (``DIR/nodeK``) and log file (``DIR/nodeK.log``). Node K lists
only node K-1 as a seed, so discovery has to introduce the rest. Then alice is funded with a
few mined blocks, she sends bob 50 on node 1, the last node mines the payment, and every node
must agree on the tip and on bob's balance before the guide is printed. Ctrl+C sends SIGTERM
to every node and waits for their clean shutdown.

Waiting is driven by the nodes' own JSON log lines (read from their stdout by one thread per
node), never by sleeping. Nodes run in their own sessions, so the terminal's Ctrl+C reaches
only this process, which then stops them in order.
"""

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO, Any, Final

from trionode.chain.amounts import format_coins, parse_coins
from trionode.control.client import ControlClient, NodeNotRunning
from trionode.control.protocol import SOCKET_NAME, ControlError
from trionode.control.server import socket_path_problem
from trionode.lock_file import try_lock
from trionode.wallet import Wallet, WalletError, Wallets

DEFAULT_NODES: Final = 3
MAX_NODES: Final = 32
# 256 hashes a block on average: mined in milliseconds. Also the difficulty of configs/ and
# of a node run on defaults, so they are all one network and can join the devnet.
DEFAULT_DIFFICULTY: Final = 2
# Blocks mined to alice before she pays bob: 3 x 50 coins.
FUNDING_BLOCKS: Final = 3
PAYMENT: Final = 50
# Coins per block: the [chain] mining_reward default, which devnet configs keep.
REWARD: Final = 50
# Heartbeats every 5 s instead of 30 s: `top` shows round-trip times soon after start.
HEARTBEAT_INTERVAL: Final = 5
# A node that has not logged `listening` by then did not start (Python start-up takes ~0.5 s).
START_TIMEOUT: Final = 30.0
# Discovery, relay and mining on loopback take well under a second; this is for slow machines.
SETTLE_TIMEOUT: Final = 30.0
# A node drains its connections for at most 2 s when stopping; then it is killed.
STOP_TIMEOUT: Final = 10.0
# Records what devnet made here, so that a second run reuses it rather than guessing.
STATE_FILE: Final = "devnet.json"
# Locked (flock) by the running devnet: tells a second devnet from nodes run alone in DIR.
LOCK_FILE: Final = "devnet.lock"


class DevnetError(Exception):
    """devnet cannot start or went wrong; one line for the user, and an exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class NodeProcess:
    """One ``trionode run`` child and what its log lines have told us so far."""

    def __init__(self, index: int, root: Path, shown: Path, changed: threading.Condition) -> None:
        self.index = index
        self.name = f"node{index}"
        self.config = root / f"{self.name}.toml"
        self.data_dir = root / self.name
        self.log_file = root / f"{self.name}.log"
        self.shown = shown / self.name  # data dir as the user typed DIR, for the printed guide
        self.shown_log = shown / f"{self.name}.log"
        self._changed = changed
        self.proc: subprocess.Popen[str] | None = None
        self.node_id = ""
        self.address = ""
        self.peers: set[str] = set()
        self.tip = ""
        self.txs: set[str] = set()
        self.output: list[str] = []  # lines that are not JSON: a failed start prints one
        self.exited = False

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1]) if self.address else 0

    def start(self, port: int, seed: str | None, difficulty: int) -> None:
        self.node_id = self.address = self.tip = ""
        self.peers.clear()
        self.output.clear()
        self.exited = False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(_config_text(self, port, seed, difficulty))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trionode", "run", "--config", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # the terminal's Ctrl+C is ours to pass on, as SIGTERM
        )
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()

    def _pump(self, proc: "subprocess.Popen[str]") -> None:
        """Reads the node's stdout to the end (the lines are also in its log file)."""
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            with self._changed:
                if isinstance(event, dict):
                    self._note(event)
                elif line.strip():
                    self.output.append(line.strip())
                self._changed.notify_all()
        proc.wait()
        with self._changed:
            self.exited = True
            self._changed.notify_all()

    def _note(self, event: dict[str, Any]) -> None:
        name = event.get("event")
        if name == "node_started":
            self.node_id = str(event.get("node_id", ""))
        elif name == "listening":
            self.address = str(event.get("address", ""))
        elif name == "peer_connected":
            self.peers.add(str(event.get("peer")))
        elif name == "peer_disconnected":
            self.peers.discard(str(event.get("peer")))
        elif name == "block_accepted":
            self.tip = str(event.get("hash", ""))
        elif name == "tx_accepted":
            self.txs.add(str(event.get("txid", "")))

    def why_stopped(self) -> str:
        code = self.proc.returncode if self.proc is not None else None
        last = self.output[-1] if self.output else f"exit code {code}"
        return f"{last} (log: {self.shown_log})"

    def client(self) -> ControlClient:
        return ControlClient(self.data_dir, timeout=60.0)


def _config_text(node: NodeProcess, port: int, seed: str | None, difficulty: int) -> str:
    peers = f'["{seed}"]' if seed else "[]"
    return f"""\
# {node.name} of a devnet made by `trionode devnet` (rewritten on each devnet run).
# While devnet is stopped you can run this node alone: trionode run --config {node.config}

[node]
data_dir = "{node.data_dir}"

[p2p]
listen = "127.0.0.1:{port}"
# Only the previous node: discovery introduces the others.
peers = {peers}
# Faster than the default 30 s, so that `trionode top` shows round-trip times soon.
heartbeat_interval = {HEARTBEAT_INTERVAL}

[chain]
# Every node of the devnet has this section: the genesis block, and so the network, comes
# from it.
difficulty = {difficulty}

[mining]
# Blocks this easy are mined on the event loop; no worker processes needed.
workers = 1

[log]
level = "info"
file = "{node.log_file}"
"""


class Devnet:
    def __init__(self, nodes: int, root: Path, shown: Path, difficulty: int) -> None:
        self.root = root
        self.shown = shown
        self.difficulty = difficulty
        self.changed = threading.Condition()
        self.nodes = [NodeProcess(i, root, shown, self.changed) for i in range(1, nodes + 1)]

    # ------------------------------------------------------------- waiting on log lines

    def wait(self, probe: Callable[[], bool], what: str, timeout: float = SETTLE_TIMEOUT) -> None:
        """Until ``probe()`` (called under the lock, on what the log lines said) holds."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not probe():
                for node in self.nodes:
                    if node.exited:
                        raise DevnetError(f"{node.name} stopped: {node.why_stopped()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DevnetError(
                        f"{what} did not happen within {timeout:.0f} s; see the logs in {self.shown}"
                    )
                self.changed.wait(left)

    # ------------------------------------------------------------- start, demo, stop

    def start(self, ports: dict[str, int]) -> None:
        say(f"starting {_nodes(len(self.nodes))} in {self.shown}/ (difficulty {self.difficulty})")
        previous: NodeProcess | None = None
        for node in self.nodes:
            seed = previous.address if previous is not None else None
            self._start_one(node, ports.get(node.name, 0), seed)
            if node.exited and ports.get(node.name) and any("in use" in line for line in node.output):
                self._start_one(node, 0, seed)  # its port of last time is taken: any will do
            if node.exited:
                raise DevnetError(f"{node.name} did not start: {node.why_stopped()}")
            # The config now names the port it got, so the node can be restarted alone.
            node.config.write_text(_config_text(node, node.port, seed, self.difficulty))
            how = f"seed {previous.name}" if previous is not None else "no seed"
            say(f"  {node.name} listening on {node.address} ({how}, pid {node.pid})")
            previous = node
        self.save_state()

    def _start_one(self, node: NodeProcess, port: int, seed: str | None) -> None:
        node.start(port, seed, self.difficulty)
        self.wait(lambda: bool(node.address) or node.exited, f"{node.name} listening", START_TIMEOUT)

    def connect(self) -> None:
        if len(self.nodes) < 2:
            return
        want = min(len(self.nodes) - 1, 2)
        self.wait(lambda: self._connected(want), "discovery (every node connected)")
        with self.changed:
            index = {n.node_id: n.index for n in self.nodes}
            links = sorted(
                {
                    (min(n.index, index[p]), max(n.index, index[p]))
                    for n in self.nodes
                    for p in n.peers
                    if p in index
                }
            )
        shown = ", ".join(f"node{a}-node{b}" for a, b in links) if len(links) <= 6 else f"{len(links)} links"
        say(f"  connected: {shown} (seeds made a line; discovery did the rest)")

    def _connected(self, want: int) -> bool:
        """Every node has ``want`` peers and every node is reachable from node 1."""
        ids = {n.node_id: n for n in self.nodes}
        if any(len(n.peers & ids.keys()) < want for n in self.nodes):
            return False
        seen = {self.nodes[0].node_id}
        todo = [self.nodes[0]]
        while todo:
            for peer in todo.pop().peers:
                if peer in ids and peer not in seen:
                    seen.add(peer)
                    todo.append(ids[peer])
        return len(seen) == len(self.nodes)

    def demo(self) -> str:
        """The seed's demo for real: alice is funded, sends bob 50, the network sees it."""
        from trionode.cli import pay

        first, last = self.nodes[0], self.nodes[-1]
        wallets = Wallets(first.data_dir)
        alice, bob = _wallet(wallets, "alice"), _wallet(wallets, "bob")
        with first.client() as client:
            for _ in range(FUNDING_BLOCKS):
                mined = client.call("mine", to=alice.address.hex())
            self._agree(mined["hash"])
            say(
                f"  mined {FUNDING_BLOCKS} blocks to alice on {first.name}: she has {FUNDING_BLOCKS * REWARD} coins"
            )
            sent = pay(client, alice, bob.address, parse_coins(PAYMENT))
        txid = sent["txid"]
        self.wait(lambda: txid in last.txs, f"transaction {txid[:12]} reaching {last.name}")
        with last.client() as client:
            mined = client.call("mine")
        self._agree(mined["hash"])
        say(
            f"  alice sent bob {PAYMENT} on {first.name} (txid {txid[:16]}...); {last.name} got it"
            f" and mined it in block {mined['height']}"
        )
        return bob.address.hex()

    def paid_bob(self) -> str | None:
        """Bob's address if an earlier run already paid him (a reused DIR), else None."""
        try:
            bob = Wallets(self.nodes[0].data_dir).load("bob").address.hex()
        except WalletError:
            return None
        with self.nodes[0].client() as client:
            return bob if client.call("balance", address=bob)["balance"] > 0 else None

    def _agree(self, tip: str) -> None:
        self.wait(lambda: all(n.tip == tip for n in self.nodes), f"every node accepting block {tip[:12]}")

    def check(self, bob: str) -> tuple[int, str]:
        """What every node says, through its control socket: one tip, bob's balance."""
        tips, balances = set(), set()
        height = 0
        for node in self.nodes:
            with node.client() as client:
                status = client.call("status")
                tips.add(status["tip"])
                height = status["height"]
                balances.add(format_coins(parse_coins(client.call("balance", address=bob)["balance"])))
        if len(tips) != 1:
            raise DevnetError(f"the nodes disagree on the tip: {sorted(tips)}")
        say(f"  every node: height {height}, tip {next(iter(tips))[:16]}..., bob has {', '.join(balances)}")
        return height, next(iter(tips))

    def stop(self) -> bool:
        """SIGTERM every node, wait for their clean exit; kill what is left. True if clean."""
        running = [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]
        if running:
            say(f"stopping {len(running)} node{'s' if len(running) != 1 else ''}...")
        for node in running:
            assert node.proc is not None
            node.proc.send_signal(signal.SIGTERM)
        clean = True
        deadline = time.monotonic() + STOP_TIMEOUT
        for node in self.nodes:
            if node.proc is None:
                continue
            try:
                code = node.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()
                say(f"  {node.name} did not stop within {STOP_TIMEOUT:.0f} s: killed")
                clean = False
                continue
            if node in running and code != 0 and (node.address or code != -signal.SIGTERM):
                # (SIGTERM before the node set up its handlers: it was still starting, no harm.)
                say(f"  {node.name} exited with code {code} (log: {node.shown_log})")
                clean = False
        return clean

    def kill(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.kill()
                node.proc.wait()

    def watch(self) -> None:
        """Until Ctrl+C: report nodes that stop by themselves (`trionode stop`, a crash)."""
        reported: set[str] = set()
        with self.changed:
            while True:
                for node in self.nodes:
                    if node.exited and node.name not in reported:
                        reported.add(node.name)
                        say(f"{node.name} stopped: {node.why_stopped()}")
                if len(reported) == len(self.nodes):
                    say("every node has stopped")
                    return
                self.changed.wait()

    # ------------------------------------------------------------- state

    def save_state(self, ports: dict[str, int] | None = None) -> None:
        state = {
            "nodes": len(self.nodes),
            "difficulty": self.difficulty,
            "ports": {n.name: n.port for n in self.nodes} if ports is None else ports,
        }
        (self.root / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


def _wallet(wallets: Wallets, name: str) -> Wallet:
    try:
        return wallets.load(name)
    except WalletError:
        return wallets.new(name)


def say(text: str) -> None:
    print(text, flush=True)


def load_state(root: Path) -> dict[str, Any] | None:
    """What an earlier devnet run left in DIR; None for a new or empty DIR."""
    path = root / STATE_FILE
    if not root.exists():
        return None
    if not root.is_dir():
        raise DevnetError(f"{root} is a file; choose another --dir", 2)
    if not path.exists():
        if any(p.name != LOCK_FILE for p in root.iterdir()):
            raise DevnetError(
                f"{root} is not empty and was not made by trionode devnet; choose another --dir", 2
            )
        return None
    try:
        state = json.loads(path.read_text())
        if not isinstance(state, dict):
            raise ValueError("not a JSON object")
        return state
    except (OSError, ValueError) as exc:
        raise DevnetError(f"{path}: unreadable ({exc}); remove {root} to start afresh") from None


def _running_in(root: Path) -> list[str]:
    """Nodes of an earlier devnet in ``root`` that still answer on their control socket."""
    alive = []
    for sock in sorted(root.glob(f"node*/{SOCKET_NAME}")):
        try:
            with ControlClient(sock.parent, timeout=2.0) as client:
                client.call("status")
            alive.append(sock.parent.name)
        except (NodeNotRunning, ControlError, OSError):
            pass
    return alive


def _claim(root: Path) -> IO[bytes] | None:
    """Lock ``root`` for this devnet while the returned file stays open; None if another
    devnet holds it. The nodes do not inherit the lock (Popen closes other descriptors)."""
    return try_lock(root / LOCK_FILE)


def _running_alone(directory: Path, alive: list[str]) -> str:
    """Nodes of a stopped devnet that someone runs by hand: name them and how to stop them."""
    names = " and ".join([", ".join(alive[:-1]), alive[-1]] if len(alive) > 1 else alive)
    stops = "; ".join(f"trionode --data-dir {directory / name} stop" for name in alive)
    if len(alive) == 1:
        return f"{names} is running on its own; stop it first: {stops}"
    return f"{names} are running on their own; stop them first: {stops}"


@contextmanager
def _stop_signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP stop the devnet. SIGINT too, because a shell without job
    control starts background commands with SIGINT ignored, which Python would keep."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _nodes(count: int) -> str:
    return "1 node" if count == 1 else f"{count} nodes"


def _check_ranges(nodes: int | None, difficulty: int | None) -> None:
    if nodes is not None and not 1 <= nodes <= MAX_NODES:
        raise DevnetError(f"--nodes must be 1..{MAX_NODES}, got {nodes}", 2)
    if difficulty is not None and not 0 <= difficulty <= 8:
        raise DevnetError(f"--difficulty must be 0..8 for a devnet, got {difficulty}", 2)


def run_devnet(nodes: int | None, directory: Path, difficulty: int | None) -> int:
    # The flags first: a value no devnet can have gets the range, not a comparison with DIR's.
    _check_ranges(nodes, difficulty)
    state = load_state(directory)
    if state is not None:
        old_difficulty = state.get("difficulty", DEFAULT_DIFFICULTY)
        if difficulty is not None and difficulty != old_difficulty:
            raise DevnetError(
                f"{directory} holds a devnet of difficulty {old_difficulty} (another network); "
                f"run with --difficulty {old_difficulty}, or remove {directory} to start afresh",
                2,
            )
        difficulty = int(old_difficulty)
        nodes = int(state.get("nodes", DEFAULT_NODES)) if nodes is None else nodes
    nodes = DEFAULT_NODES if nodes is None else nodes
    difficulty = DEFAULT_DIFFICULTY if difficulty is None else difficulty
    _check_ranges(nodes, difficulty)  # again: DIR's devnet.json may hold anything
    root = directory.absolute()
    if socket_path_problem(root / f"node{nodes}") is not None:
        raise DevnetError(f"{root} is too deep for a control socket path; choose a shorter --dir", 2)
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = _claim(root)
    except OSError as exc:
        raise DevnetError(f"{directory}: cannot create: {exc.strerror}") from None
    if lock is None:
        raise DevnetError(
            f"a devnet is already running in {directory}; stop it first (Ctrl+C in its terminal)"
        )
    with lock:
        if state is not None:
            alive = _running_in(root)
            if alive:
                raise DevnetError(_running_alone(directory, alive))
        return _run(Devnet(nodes, root, directory, difficulty), state)


def _run(net: Devnet, state: dict[str, Any] | None) -> int:
    """Start, demo, watch and stop the devnet, holding its directory's lock."""
    directory = net.shown
    ports = {str(k): int(v) for k, v in (state or {}).get("ports", {}).items()}
    net.save_state(ports)  # at once: an interrupted first run leaves a dir devnet knows again
    try:
        with _stop_signals():
            try:
                net.start(ports)
                net.connect()
                bob = net.paid_bob()
                if bob is None:
                    bob = net.demo()
                else:
                    say(f"  reusing the chains in {directory}: bob was paid before, no new demo blocks")
                height, tip = net.check(bob)
                print_guide(net, bob, height, tip)
                net.watch()
            except KeyboardInterrupt:
                pass  # the first one stops the nodes cleanly; a second one kills them
            clean = net.stop()
            say("devnet stopped" if clean else "devnet stopped, not cleanly (see above)")
            return 0 if clean else 1
    except Exception as exc:
        # Whatever went wrong, no node outlives the devnet that started it.
        try:
            net.stop()
        except KeyboardInterrupt:
            net.kill()
        if isinstance(exc, DevnetError | ControlError | NodeNotRunning | WalletError):
            raise DevnetError(f"devnet: {exc}") from None
        raise
    except BaseException:
        net.kill()
        raise


def print_guide(net: Devnet, bob: str, height: int, tip: str) -> None:
    first, last = net.nodes[0], net.nodes[-1]
    lines = ["", f"devnet ready: {_nodes(len(net.nodes))}, height {height}, tip {tip[:16]}...", ""]
    width = max(len(n.address) for n in net.nodes)
    for node in net.nodes:
        lines.append(
            f"  {node.name}  {node.address:<{width}}  pid {node.pid:<7}  "
            f"trionode --data-dir {node.shown} status   (log: {node.shown_log})"
        )
    tries = [
        (f"trionode top --data-dir {net.shown}", "every node, live"),
        (f"trionode --data-dir {first.shown} send --from alice --to bob --amount 5", "alice pays bob"),
        (f"trionode --data-dir {last.shown} mine", f"{last.name} mines it; every node accepts it"),
        (f"trionode --data-dir {last.shown} balance {bob}", "bob's balance"),
        (f"tail -f {first.shown_log} | jq -c 'select(.event==\"block_accepted\")'", "follow blocks"),
    ]
    column = max(len(command) for command, _ in tries) + 2
    lines += [
        "",
        f"Wallets alice and bob are in {first.shown}/wallets; bob's address is {bob}.",
        "Try, in another terminal:",
        *(f"  {command:<{column}}# {why}" for command, why in tries),
        "",
        "Ctrl+C stops every node (their chains stay in their data dirs; run devnet again to reuse them).",
    ]
    say("\n".join(lines))
