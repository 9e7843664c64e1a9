"""What must hold once a simulated network has settled. Each check returns violations (text).

- ``check_reuses``: a wallet takes its nonce from the sending node's view, so a transaction
  the node had accepted and then silently lost shows as a send that reuses its nonce there;
  unless the node logged dropping it (``tx_dropped``), that is a lost transaction, and the
  pair is no double spend (``masked``: the checks below skip the lost one).
- ``check_mempools`` (before the final drain): a transaction accepted anywhere is confirmed, or
  pending in every node's mempool, unless it lost a double spend (its sender signed two
  transactions with one nonce, on two sides of a partition: which one wins is a race), or
  that node turned it away by documented policy (see the function).
- ``check_chains``: every node has the same main chain; it is the valid chain with the most
  work that any node knows of; it passes every rule again (``Chain.validate_all``); every
  node's balances equal and sum to the rewards issued.
- ``check_transactions`` (after the drain): no transaction is confirmed twice, and none is
  lost: every accepted transaction is confirmed, or was outbid by a double spend, or can no
  longer apply (its funds or nonce went to the winner of a double spend).
- ``check_penalties``: no node holds misbehaviour points or a ban against another (every node
  is honest: a penalty below the ban threshold is logged by no event of its own).
- ``check_data_dir`` (after the nodes stopped): the store reopens at the agreed tip and passes
  ``audit.validate_store``.
"""

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from trionode.chain.audit import validate_store
from trionode.chain.ledger import Ledger
from trionode.chain.params import ChainParams
from trionode.chain.store import STATUS_INVALID, Store, StoreError
from trionode.chain.transaction import Transaction
from trionode.chain.tree import Chain
from trionode.node.app import Node
from trionode.sim.timeline import short

# Refusals an honest node makes when a transaction outruns what it depends on (its sender's
# previous transaction, or the block that funds it): see ``check_mempools``.
RACES = frozenset({"nonce_gap", "insufficient_balance", "nonce_used"})


def confirmed_counts(chain: Chain) -> Counter[bytes]:
    counts: Counter[bytes] = Counter()
    for height in range(1, chain.height + 1):
        block = chain.block_at(height)
        assert block is not None
        counts.update(tx.txid for tx in block.txs[1:])
    return counts


def _by_acceptance(accepted: Mapping[bytes, float]) -> list[bytes]:
    return sorted(accepted, key=lambda txid: (accepted[txid], txid))


def _double_spenders(txs: Sequence[Transaction]) -> set[bytes]:
    uses = Counter((tx.sender, tx.nonce) for tx in txs)
    return {sender for (sender, _), count in uses.items() if count > 1}


def unexplained_reuses(
    reuses: Sequence[tuple[str, bytes, bytes]], dropped_at: Mapping[bytes, set[str]]
) -> list[tuple[str, bytes, bytes]]:
    """The nonce reuses (node, earlier txid, new txid) whose node never logged dropping the
    earlier transaction: it lost it."""
    return [(who, old, new) for who, old, new in reuses if who not in dropped_at.get(old, set())]


def check_reuses(
    unexplained: Sequence[tuple[str, bytes, bytes]], created: Mapping[bytes, Transaction]
) -> list[str]:
    return [
        f"tx {short(old)} lost on {who}: accepted there, then neither pending, confirmed nor "
        f"dropped when its wallet signed tx {short(new)} with the same nonce {created[old].nonce}"
        for who, old, new in unexplained
    ]


def check_mempools(
    nodes: Sequence[Node],
    created: Mapping[bytes, Transaction],
    accepted: Mapping[bytes, float],
    names: Mapping[str, str],
    turned_away: Mapping[bytes, set[str]] | None,
    masked: Collection[bytes] = (),
) -> tuple[list[str], list[str]]:
    """Violations, and the absences excused by documented policy (as notes).

    Every unconfirmed transaction that still applies to the agreed chain (and whose sender
    never double-spent) must be pending on every node. Policy excuses two absences:

    - the node turned it away (``turned_away``: txid -> names of nodes that logged it): it
      refused it in a race (``RACES``: an earlier nonce or the funding block had not reached
      it yet) or dropped it when a tip change made it invalid; it takes it back only if a
      later copy comes, and none may (protocol.md 8.1: each item is relayed once per peer);
    - the node is *behind* such nodes: none of its established peers holds the transaction,
      so nothing can bring it (relay reaches every connected peer, and the mempool offer
      every newly connected one, so a peer that holds it and is connected is no excuse).

    ``turned_away=None`` (strict) excuses nothing. ``masked``: lost transactions that
    ``check_reuses`` reports (not double spends).
    """
    chain = nodes[0].chain
    confirmed = confirmed_counts(chain)
    unknown = [short(t) for t in accepted if t not in created]
    if unknown:
        return [f"transactions accepted that nobody sent: {unknown}"], []
    txs = [created[t] for t in _by_acceptance(accepted) if t not in masked]
    racing = _double_spenders(txs)
    candidates = [tx for tx in txs if tx.txid not in confirmed and tx.sender not in racing]
    by_id = {n.node_id: n for n in nodes}
    problems, excused = [], []
    for tx in still_applicable(chain.ledger, candidates):
        holders = {n.node_id for n in nodes if tx.txid in n.chain.mempool}
        if not holders:
            continue  # pending nowhere: the drain cannot mine it, check_transactions reports it
        refused = turned_away.get(tx.txid, set()) if turned_away is not None else set()
        missing, away, behind = [], [], []
        for node in nodes:
            name = names.get(node.node_id, node.node_id)
            if node.node_id in holders:
                continue
            if turned_away is None:
                missing.append(name)
            elif name in refused:
                away.append(name)
            elif any(peer in holders for peer in node.manager.connections if peer in by_id):
                missing.append(name)
            else:
                behind.append(name)
        if away or behind:
            excused.append(
                f"tx {short(tx.txid)} missing on {' '.join(away + behind)}: "
                f"turned away by {' '.join(away) or 'none'}"
            )
        if missing:
            problems.append(
                f"tx {short(tx.txid)} (nonce {tx.nonce}) is pending on a peer of "
                f"{' '.join(missing)} but not there"
                if turned_away is not None
                else f"tx {short(tx.txid)} (nonce {tx.nonce}) is neither confirmed nor pending on {' '.join(missing)}"
            )
    return problems, excused


def check_chains(
    nodes: Sequence[Node], params: ChainParams, now: float, names: Mapping[str, str]
) -> list[str]:
    first = nodes[0].chain
    problems = []
    for node in nodes[1:]:
        if node.chain.main != first.main:
            problems.append(
                f"{names.get(node.node_id)} is at {node.chain.height} {short(node.chain.main[-1])}, "
                f"{names.get(nodes[0].node_id)} at {first.height} {short(first.main[-1])}"
            )
    if problems:
        return problems
    best = max(
        (e.work, names.get(n.node_id), e.block_hash)
        for n in nodes
        for e in n.chain.index.values()
        if e.status != STATUS_INVALID
    )
    if best[0] != first.work:
        problems.append(
            f"the agreed tip has work {first.work}, but {best[1]} knows {short(best[2])} with work {best[0]}"
        )
    problems += [f"the agreed chain fails validation: {e}" for e in first.validate_all(int(now * 1000))]
    issued = params.mining_reward * first.height
    for node in nodes:
        ledger = node.chain.ledger
        if ledger.total() != issued:
            problems.append(f"{names.get(node.node_id)}: balances sum to {ledger.total()}, rewards {issued}")
        if ledger.balances != first.ledger.balances or ledger.nonces != first.ledger.nonces:
            problems.append(f"{names.get(node.node_id)}: ledger differs on the same chain")
    return problems


def check_transactions(
    node: Node,
    created: Mapping[bytes, Transaction],
    accepted: Mapping[bytes, float],
    masked: Collection[bytes] = (),
) -> list[str]:
    chain = node.chain
    confirmed = confirmed_counts(chain)
    problems = [f"tx {short(t)} confirmed {n} times" for t, n in sorted(confirmed.items()) if n > 1]
    problems += [f"tx {short(t)} confirmed but nobody sent it" for t in sorted(confirmed) if t not in created]
    by_slot = {(created[t].sender, created[t].nonce): t for t in confirmed if t in created}
    open_txs = []
    for txid in _by_acceptance(accepted):
        tx = created.get(txid)
        if tx is None or txid in confirmed or txid in masked:
            continue  # (a masked one is reported by check_reuses)
        if tx.nonce < chain.ledger.nonce(tx.sender_address):
            if (tx.sender, tx.nonce) not in by_slot:
                problems.append(f"tx {short(txid)}: its nonce {tx.nonce} was used, but by no confirmed tx")
            continue  # outbid by a double spend
        open_txs.append(tx)
    problems += [
        f"tx {short(tx.txid)} lost: accepted, still valid, but pending nowhere and not confirmed"
        for tx in still_applicable(chain.ledger, open_txs)
    ]
    return problems


def check_penalties(nodes: Sequence[Node], names: Mapping[str, str], hosts: Mapping[str, str]) -> list[str]:
    """Misbehaviour points and bans held by any node (``hosts``: host -> node name)."""
    problems = []
    for node in nodes:
        who = names.get(node.node_id, node.node_id)
        bans = node.manager.bans
        for key, score in sorted(bans.scores.items()):
            problems.append(f"{who} gave {_peer(key, hosts)} {score} misbehaviour points")
        for key, ban in sorted(bans.bans.items()):
            problems.append(f"{who} bans {_peer(key, hosts)} ({ban.reason})")
    return problems


def _peer(key: str, hosts: Mapping[str, str]) -> str:
    kind, _, value = key.partition(":")
    return hosts.get(value, key) if kind == "ip" else key


def still_applicable(ledger: Ledger, txs: Sequence[Transaction]) -> list[Transaction]:
    """The transactions a mempool on ``ledger`` should keep (its policy, written again here so
    the check does not trust the code it checks): each sender's in nonce order from its next
    nonce, spending at most its confirmed balance; ``txs`` in the order they were first seen."""
    order = {tx.txid: i for i, tx in enumerate(txs)}
    next_nonce: dict[bytes, int] = {}
    spendable: dict[bytes, int] = {}
    kept = []
    for tx in sorted(txs, key=lambda t: (t.nonce, order[t.txid])):
        sender = tx.sender_address
        nonce = next_nonce.get(sender, ledger.nonce(sender))
        money = spendable.get(sender, ledger.balance(sender))
        if tx.nonce == nonce and tx.amount <= money:
            kept.append(tx)
            next_nonce[sender] = nonce + 1
            spendable[sender] = money - tx.amount
    return kept


def check_data_dir(data_dir: Path, params: ChainParams, tip: bytes, now: float) -> str | None:
    try:
        store = Store(data_dir / "chain.db")
    except StoreError as exc:
        return f"store does not open: {exc}"
    try:
        chain = Chain(params, store)
        if tip and chain.main[-1] != tip:
            return f"reopened at {chain.height} {short(chain.main[-1])}, the network agreed on {short(tip)}"
        errors = validate_store(params, store, chain.main, int(now * 1000))
        return "; ".join(errors) if errors else None
    except StoreError as exc:
        return f"store does not load: {exc}"
    finally:
        store.close()
