"""Merkle root of transaction ids.

Inner nodes are SHA-256(0x01 || left || right); an odd node at the end of a level moves up
unchanged (no duplication, so two different transaction lists can never share a root, unlike
Bitcoin's CVE-2012-2459). The root of an empty list is 32 zero bytes (only the genesis block).
"""

import hashlib
from collections.abc import Sequence
from typing import Final

EMPTY_ROOT: Final = bytes(32)
_NODE_TAG: Final = b"\x01"


def merkle_root(txids: Sequence[bytes]) -> bytes:
    if not txids:
        return EMPTY_ROOT
    level = list(txids)
    sha = hashlib.sha256
    while len(level) > 1:
        nxt = [sha(_NODE_TAG + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]
