"""Block locators: how a node says "this is what I have" in a few dozen hashes.

Hashes of a chain from its tip: the last 10 one by one, then with a step that doubles, always
ending at genesis (Bitcoin's ``GetLocator``). For a 10,000-block chain that is 23 hashes (10
dense, 12 doubling steps, genesis); the wire limit of 101 is never reached: even height
2**64 - 1 gives 73. The chain is usually our main chain; a sync session instead describes the
branch it is downloading (protocol.md 8.2), which may not be our main chain yet.
"""

from collections.abc import Callable, Sequence
from typing import Final

MAX_LOCATOR: Final = 101
DENSE: Final = 10


def locator_heights(tip_height: int) -> list[int]:
    heights: list[int] = []
    step = 1
    h = tip_height
    while h > 0:
        heights.append(h)
        if len(heights) >= DENSE:
            step *= 2
        h -= step
    heights.append(0)
    return [*heights[: MAX_LOCATOR - 1], 0] if len(heights) > MAX_LOCATOR else heights


def locator_of(tip_height: int, hash_at: Callable[[int], bytes]) -> list[bytes]:
    """The locator of any chain, given its block hash at each height (the one shape)."""
    return [hash_at(h) for h in locator_heights(tip_height)]


def build_locator(main: Sequence[bytes]) -> list[bytes]:
    """``main`` is the main chain's hashes by height (genesis first)."""
    return locator_of(len(main) - 1, main.__getitem__)


def branch_locator(
    tip: bytes, tip_height: int, parent: Callable[[bytes], bytes], main: Sequence[bytes]
) -> list[bytes]:
    """The locator of the chain ending at ``tip``, any stored block: its own ancestors (found
    with ``parent``) down to where it joins ``main``, and ``main``'s hashes below that.

    Walks only the part off the main chain, so it costs the depth of the fork, not the height.
    """
    branch: dict[int, bytes] = {}
    block_hash, height = tip, tip_height
    while height >= len(main) or main[height] != block_hash:
        if height == 0:
            raise ValueError(f"block {tip.hex()} does not lead back to our genesis")
        branch[height] = block_hash
        block_hash = parent(block_hash)
        height -= 1
    return locator_of(tip_height, lambda h: branch[h] if h in branch else main[h])
