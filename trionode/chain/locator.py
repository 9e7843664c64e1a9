"""Block locators: how a node says "this is what I have" in a few dozen hashes.

Hashes of the main chain from the tip: the last 10 one by one, then with a step that doubles,
always ending at genesis (Bitcoin's ``GetLocator``). For a 10,000-block chain that is 23
hashes (10 dense, 12 doubling steps, genesis); the wire limit of 101 is never reached: even
height 2**64 - 1 gives 73.
"""

from collections.abc import Sequence
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


def build_locator(main: Sequence[bytes]) -> list[bytes]:
    """``main`` is the main chain's hashes by height (genesis first)."""
    return [main[h] for h in locator_heights(len(main) - 1)]
