"""How results are printed: one JSON document with --json, else the human text of each verb."""

import argparse
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from trionode.chain.amounts import format_coins, parse_coins


def emit(args: argparse.Namespace, result: Any, human: Callable[[Any], str]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2, sort_keys=False))
    else:
        text = human(result)
        if text:
            print(text)


def _ago(seconds_since_epoch: float | None) -> str:
    if not seconds_since_epoch:
        return "never"
    delta = max(0.0, time.time() - seconds_since_epoch)
    if delta < 120:
        return f"{delta:.0f}s ago"
    if delta < 7200:
        return f"{delta / 60:.0f}m ago"
    return f"{delta / 3600:.1f}h ago"


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def coins(value: float | int) -> str:
    return format_coins(parse_coins(value))


def fmt_status(s: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"node      {s['node_id']}  ({s['agent']})",
            f"network   {s['network']}",
            f"listen    {s['listen']}",
            f"height    {s['height']}   tip {s['tip']}",
            f"work      {s['work']}   difficulty {s['difficulty']:g}",
            f"peers     {s['peers']} ({s['outbound']} out, {s['inbound']} in)   pending {s['pending']}",
            f"mining    {'yes' if s['mining'] else 'no'}"
            + (f"   {s['hashrate']:.0f} H/s" if s["mining"] else ""),
        ]
    )


def fmt_peers(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no peers known"
    return table(
        [
            [
                r["node_id"],
                r["address"] or "-",
                "yes" if r["connected"] else "no",
                r["direction"] or "-",
                r["height"],
                "-" if r["rtt"] is None else f"{r['rtt'] * 1000:.1f}ms",
                _ago(r["last_seen"]),
            ]
            for r in rows
        ],
        ["NODE_ID", "ADDRESS", "CONNECTED", "DIR", "HEIGHT", "RTT", "LAST_SEEN"],
    )


def fmt_block(b: dict[str, Any]) -> str:
    lines = [
        f"block {b['height']}  {b['hash']}",
        f"  prev       {b['prev_hash']}",
        f"  time       {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(b['timestamp'] / 1000))} UTC",
        f"  merkle     {b['merkle_root']}",
        f"  nonce      {b['nonce']}   difficulty {b['difficulty']:g}",
        f"  txs        {len(b['transactions'])}",
    ]
    lines += [f"    {fmt_tx(tx)}" for tx in b["transactions"]]
    return "\n".join(lines)


def fmt_tx(tx: dict[str, Any]) -> str:
    return f"{tx['txid'][:16]}  {tx['from'][:16]:<16} -> {tx['to'][:16]}  {coins(tx['amount'])}  (nonce {tx['nonce']})"


def fmt_chain(blocks: list[dict[str, Any]]) -> str:
    if not blocks:
        return "no blocks in that range"
    return table(
        [[b["height"], b["hash"], len(b["transactions"]), b["nonce"]] for b in blocks],
        ["HEIGHT", "HASH", "TXS", "NONCE"],
    )
