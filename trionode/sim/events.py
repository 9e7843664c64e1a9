"""Playing one planned event against the network as it is when the event comes due.

The plan (``plan``) says what happens and when, before anything runs; this says how, against
live state: a node that is down neither mines nor sends, a send spends a seeded share of what
its wallet can spend at that moment, network faults go to ``SimNetwork`` (each partition and
cut is a fault of its own, named by its number, so a heal can end one of them or all), and a
crash is armed to land in the middle of the node's work (``Fleet.arm_crash``).

A send also notes what the invariants need to tell a double spend from a lost transaction:
the wallet takes its nonce from the sending node's view, so if that node had accepted a
transaction with the same nonce that it no longer holds, confirms or dropped, this send hides
the loss unless it is noted (``Record.reuses``). A submission that returns without error is
an acceptance, logged or not.
"""

from collections.abc import Sequence

from trionode.chain.amounts import format_coins
from trionode.chain.errors import ValidationError
from trionode.chain.keys import KeyPair
from trionode.chain.params import ChainParams
from trionode.chain.transaction import sign_transaction
from trionode.chain.tree import Chain
from trionode.node.app import Node
from trionode.sim.lifecycle import Fleet, SimNode, wall
from trionode.sim.plan import Event
from trionode.sim.record import Record
from trionode.sim.timeline import short


class EventPlayer:
    def __init__(self, fleet: Fleet, record: Record, keys: Sequence[KeyPair], params: ChainParams) -> None:
        self.fleet = fleet
        self.net = fleet.net
        self.record = record
        self.timeline = record.timeline
        self.keys = keys
        self.params = params

    async def apply(self, ev: Event) -> None:
        nodes = self.fleet.nodes
        kind = ev.kind
        sn = nodes[ev.node] if ev.node >= 0 else None
        if kind == "mine":
            assert sn is not None
            if self._usable(sn, "mine"):
                assert sn.node is not None
                self.timeline.add(sn.name, f"mine (reward to w{ev.wallet})")
                sn.node.spawn(sn.node.miner.mine_one, self.keys[ev.wallet].address)
        elif kind == "send":
            assert sn is not None
            if self._usable(sn, f"send from w{ev.wallet}"):
                assert sn.node is not None
                sn.node.spawn(self._send, sn, sn.node, ev)
        elif kind == "partition":
            self.record.stats["partitions"] += 1
            groups = [[nodes[i].host for i in g] for g in ev.groups]
            text = " | ".join(" ".join(nodes[i].name for i in g) for g in ev.groups)
            self.timeline.add("net", f"partition #{ev.fault}: {text}")
            self.net.partition(*groups, fault=f"#{ev.fault}")
        elif kind == "cut":
            assert sn is not None
            other = nodes[ev.other]
            self.timeline.add("net", f"cut #{ev.fault}: {sn.name}-{other.name}")
            self.net.cut(sn.host, other.host, fault=f"#{ev.fault}")
        elif kind == "heal":
            self.timeline.add("net", f"heal #{ev.fault}" if ev.fault >= 0 else "heal all")
            self.net.heal(f"#{ev.fault}" if ev.fault >= 0 else None)
        elif kind == "crash":
            assert sn is not None
            if self._usable(sn, "crash"):
                self.fleet.arm_crash(sn, ev.steps, ev.trigger)
        elif kind == "restart":
            assert sn is not None
            await self.fleet.restart(sn)
        elif kind == "slow":
            assert sn is not None
            self.net.set_slow(sn.host, ev.extra)
            self.timeline.add(
                "net", f"{sn.name} links +{ev.extra:.2f}s" if ev.extra else f"{sn.name} links normal"
            )

    def _usable(self, sn: SimNode, what: str) -> bool:
        if sn.node is None or self.fleet.down(sn):
            self.timeline.add(sn.name, f"down: no {what}", major=False)
            return False
        return True

    async def _send(self, sn: SimNode, node: Node, ev: Event) -> None:
        key = self.keys[ev.wallet]
        address = key.address
        record = self.record

        def view(chain: Chain) -> tuple[int, int, list[bytes]]:
            # In the chain owner, so the node's view and what it is known to have held are
            # read at one instant (a log line about this state may still be on its way).
            nonce = chain.mempool.next_nonce(address, chain.ledger)
            held = []
            for txid in sorted(record.held.get(sn.name, ())):
                earlier = record.created.get(txid)  # (one nobody sent is check_mempools' to report)
                if earlier is None or earlier.sender_address != address or earlier.nonce != nonce:
                    continue
                if txid not in chain.held:  # (dropped: its log line is to come)
                    held.append(txid)
            return chain.mempool.spendable(address, chain.ledger), nonce, held

        spendable, nonce, held = await node.owner.call(view)
        if spendable <= 0:
            self.timeline.add(sn.name, f"w{ev.wallet} has nothing to send", major=False)
            return
        amount = max(1, int(spendable * ev.fraction))
        to = self.keys[ev.to_wallet].address
        tx = sign_transaction(key, self.params.network, to, amount, nonce, int(wall() * 1000))
        record.created[tx.txid] = tx
        record.reuses += [(sn.name, earlier, tx.txid) for earlier in held]
        self.timeline.add(
            sn.name,
            f"send w{ev.wallet} -> w{ev.to_wallet} {format_coins(amount)} (nonce {nonce}): tx {short(tx.txid)}",
        )
        try:
            await node.intake.submit_transaction(tx, None)
        except ValidationError as exc:
            self.timeline.add(sn.name, f"tx {short(tx.txid)} refused ({exc.reason})")
            return
        record.accept(sn.name, tx.txid)
