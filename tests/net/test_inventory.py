"""RollingSet: the bounded "seen" sets behind relay (protocol.md 8.1)."""

import time

from trionode.net.inventory import NODE_SEEN, PEER_KNOWN, RollingSet


def item(i: int) -> bytes:
    return i.to_bytes(32, "big")


def test_add_reports_whether_the_item_is_new() -> None:
    seen = RollingSet(10)
    assert seen.add(item(1)) is True
    assert seen.add(item(1)) is False
    assert item(1) in seen
    assert item(2) not in seen
    assert len(seen) == 1


def test_stays_bounded_and_forgets_oldest_first() -> None:
    seen = RollingSet(100)
    for i in range(1_000):
        seen.add(item(i))
        assert len(seen) == min(i + 1, 100)
    assert [i for i in range(1_000) if item(i) in seen] == list(range(900, 1_000))
    # The internal order queue is bounded too, not just the membership set.
    assert len(seen._order) == 100


def test_repeat_does_not_refresh_an_item_s_age() -> None:
    """FIFO by first sight: re-adding a member neither duplicates nor rejuvenates it."""
    seen = RollingSet(3)
    for i in (1, 2, 3):
        seen.add(item(i))
    assert seen.add(item(1)) is False
    seen.add(item(4))  # evicts 1, the oldest, although it was just repeated
    assert item(1) not in seen
    assert all(item(i) in seen for i in (2, 3, 4))
    assert len(seen._order) == 3


def test_a_forgotten_item_is_new_again() -> None:
    seen = RollingSet(2)
    for i in (1, 2, 3):
        seen.add(item(i))
    assert item(1) not in seen
    assert seen.add(item(1)) is True
    assert item(2) not in seen  # 2 was the oldest when 1 came back
    assert len(seen) == 2


def test_add_costs_the_same_at_any_capacity() -> None:
    """O(1) add and eviction: filling past a huge capacity costs about what a tiny one does
    (an O(n) eviction such as ``list.pop(0)`` would be ~100 times slower here)."""
    items = [item(i) for i in range(150_000)]

    def fill(capacity: int) -> float:
        seen = RollingSet(capacity)
        start = time.perf_counter()
        for x in items:
            seen.add(x)
        for x in items:
            _ = x in seen
        return time.perf_counter() - start

    small = min(fill(16) for _ in range(3))
    large = min(fill(100_000) for _ in range(3))
    assert large < 5 * small + 0.05, (small, large)


def test_documented_bounds() -> None:
    """protocol.md 8.1: each connection remembers 20,000 items, the node 100,000 txids."""
    assert PEER_KNOWN == 20_000
    assert NODE_SEEN == 100_000
