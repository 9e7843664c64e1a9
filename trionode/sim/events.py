"""Playing one planned event against the network as it is when the event comes due.

The plan (``plan``) says what happens and when, before anything runs; this says how, against
live state: a node that is down neither mines nor sends, a send spends a seeded share of what
its wallet can spend at that moment, and network faults go to ``SimNetwork``.
"""

from collections.abc import Sequence

from trionode.chain.amounts import format_coins
from trionode.chain.errors import ValidationError
from trionode.chain.keys import KeyPair
from trionode.chain.params import ChainParams
from trionode.chain.transaction import sign_transaction
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
            self.timeline.add("net", f"partition {text}")
            self.net.heal()
            self.net.partition(*groups)
        elif kind == "cut":
            assert sn is not None
            other = nodes[ev.other]
            self.timeline.add("net", f"cut {sn.name}-{other.name}")
            self.net.cut(sn.host, other.host)
        elif kind == "heal":
            self.timeline.add("net", "heal")
            self.net.heal()
        elif kind == "crash":
            assert sn is not None
            await self.fleet.crash(sn, ev.steps)
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
        if sn.node is None or not sn.running:
            self.timeline.add(sn.name, f"down: no {what}", major=False)
            return False
        return True

    async def _send(self, sn: SimNode, node: Node, ev: Event) -> None:
        key = self.keys[ev.wallet]
        address = key.address
        spendable, nonce = await node.owner.call(
            lambda c: (c.mempool.spendable(address, c.ledger), c.mempool.next_nonce(address, c.ledger))
        )
        if spendable <= 0:
            self.timeline.add(sn.name, f"w{ev.wallet} has nothing to send", major=False)
            return
        amount = max(1, int(spendable * ev.fraction))
        to = self.keys[ev.to_wallet].address
        tx = sign_transaction(key, self.params.network, to, amount, nonce, int(wall() * 1000))
        self.record.created[tx.txid] = tx
        self.timeline.add(
            sn.name,
            f"send w{ev.wallet} -> w{ev.to_wallet} {format_coins(amount)} (nonce {nonce}): tx {short(tx.txid)}",
        )
        try:
            await node.intake.submit_transaction(tx, None)
        except ValidationError as exc:
            self.timeline.add(sn.name, f"tx {short(tx.txid)} refused ({exc.reason})")
