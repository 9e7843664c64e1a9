"""Candidates: which addresses the dialer may dial and when (protocol.md 8.4)."""

import random

import pytest

from trionode.net.candidates import (
    BACKOFF_BASE,
    BACKOFF_MAX,
    JITTER,
    MAX_CANDIDATES,
    MAX_DISCOVERED_FAILURES,
    MAX_DISCOVERED_PER_HOST,
    MAX_DISCOVERED_PER_SOURCE,
    Candidates,
)
from trionode.net.ratelimit import TokenBucket


class Extreme(random.Random):
    """An rng whose ``uniform`` always returns the low (or high) end: jitter at its bounds."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


def delays(cands: Candidates, address: str, failures: int) -> list[float]:
    out = []
    for i in range(failures):
        now = 1_000.0 * i
        cands.failed(address, now)
        out.append(cands.by_address[address].next_try - now)
    return out


def test_backoff_doubles_from_one_second_to_sixty() -> None:
    for high, factor in ((False, 1 - JITTER), (True, 1 + JITTER)):
        cands = Candidates(Extreme(high))
        cands.add("10.0.0.1:5001", "config")
        got = delays(cands, "10.0.0.1:5001", 9)
        expected = [min(BACKOFF_MAX, BACKOFF_BASE * 2**i) * factor for i in range(9)]
        assert got == pytest.approx(expected)
    assert expected[:7] == pytest.approx([1.25, 2.5, 5, 10, 20, 40, 75])


def test_jitter_stays_within_25_percent_and_varies() -> None:
    cands = Candidates(random.Random(7))
    for i in range(200):
        cands.add(f"10.0.1.{i}:5001", "config")
    got = [delays(cands, f"10.0.1.{i}:5001", 1)[0] for i in range(200)]
    assert all(BACKOFF_BASE * (1 - JITTER) <= d <= BACKOFF_BASE * (1 + JITTER) for d in got)
    assert len({round(d, 6) for d in got}) > 150  # not redialling in lockstep


def test_a_seed_down_for_days_keeps_being_redialled() -> None:
    """A configured seed is redialled forever, at most every 75 s; thousands of failures
    (a seed down for a few days) must not overflow the backoff computation."""
    cands = Candidates(random.Random(1))
    cands.add("10.0.0.1:5001", "config")
    got = delays(cands, "10.0.0.1:5001", 5_000)
    assert max(got) <= BACKOFF_MAX * (1 + JITTER)
    assert min(got[10:]) >= BACKOFF_MAX * (1 - JITTER)
    assert "10.0.0.1:5001" in cands.by_address


def test_discovered_addresses_are_dropped_after_three_failures_persistent_ones_never() -> None:
    cands = Candidates(random.Random(1))
    cands.add("10.0.0.1:5001", "discovered")
    cands.add("10.0.0.2:5001", "table")
    for i in range(MAX_DISCOVERED_FAILURES):
        assert "10.0.0.1:5001" in cands.by_address
        cands.failed("10.0.0.1:5001", float(i))
        cands.failed("10.0.0.2:5001", float(i))
    assert "10.0.0.1:5001" not in cands.by_address
    assert cands.by_address["10.0.0.2:5001"].failures == MAX_DISCOVERED_FAILURES
    cands.failed("10.0.0.9:5001", 0.0)  # unknown address: ignored


def test_add_upgrades_a_discovered_address_to_persistent_and_keeps_its_node_id() -> None:
    cands = Candidates(random.Random(1))
    assert cands.add("10.0.0.1:5001", "discovered", "aa" * 16) is True
    assert cands.add("10.0.0.1:5001", "config") is False
    cand = cands.by_address["10.0.0.1:5001"]
    assert cand.source == "config" and cand.node_id == "aa" * 16
    assert cands.add("10.0.0.1:5001", "discovered") is False
    assert cand.source == "config"  # never downgraded
    for _ in range(MAX_DISCOVERED_FAILURES + 2):
        cands.failed("10.0.0.1:5001", 0.0)
    assert "10.0.0.1:5001" in cands.by_address


def test_due_orders_persistent_first_then_fewest_failures() -> None:
    cands = Candidates(random.Random(1))
    cands.add("10.0.0.5:5001", "discovered")
    cands.add("10.0.0.4:5001", "discovered")
    cands.add("10.0.0.3:5001", "table")
    cands.add("10.0.0.2:5001", "config")
    cands.add("10.0.0.1:5001", "cli")
    cands.failed("10.0.0.4:5001", -100.0)  # failed long ago: due again, with 1 failure
    cands.failed("10.0.0.1:5001", -100.0)
    order = [c.address for c in cands.due(0.0)]
    assert order == ["10.0.0.2:5001", "10.0.0.3:5001", "10.0.0.1:5001", "10.0.0.5:5001", "10.0.0.4:5001"]


def test_due_skips_connected_dialling_and_backing_off() -> None:
    cands = Candidates(Extreme(high=False))
    for i in range(1, 5):
        cands.add(f"10.0.0.{i}:5001", "config")
    cands.connected("10.0.0.1:5001", "11" * 16)
    cands.by_address["10.0.0.2:5001"].dialling = True
    cands.failed("10.0.0.3:5001", 10.0)  # next try at 10.75
    assert [c.address for c in cands.due(10.0)] == ["10.0.0.4:5001"]
    assert cands.next_due() == 0.0
    cands.by_address["10.0.0.4:5001"].dialling = True
    assert cands.next_due() == pytest.approx(10.75)
    assert [c.address for c in cands.due(10.75)] == ["10.0.0.3:5001"]


def test_connected_resets_failures_and_disconnected_redials_after_about_a_second() -> None:
    cands = Candidates(random.Random(3))
    cands.add("10.0.0.1:5001", "config")
    for i in range(5):
        cands.failed("10.0.0.1:5001", float(i))
    cands.connected("10.0.0.1:5001", "22" * 16)
    cand = cands.by_address["10.0.0.1:5001"]
    assert (cand.failures, cand.connected, cand.dialling, cand.node_id) == (0, True, False, "22" * 16)
    assert cands.due(1e9) == [] and cands.next_due() is None
    cands.disconnected("10.0.0.1:5001", 500.0)
    assert cand.connected is False
    assert 500 + BACKOFF_BASE * (1 - JITTER) <= cand.next_try <= 500 + BACKOFF_BASE * (1 + JITTER)
    # After a reconnection the backoff starts again from 1 s.
    cands.failed("10.0.0.1:5001", 600.0)
    assert cand.next_try - 600 <= BACKOFF_BASE * (1 + JITTER)


def test_forbidden_address_is_removed_and_never_added_again() -> None:
    cands = Candidates(random.Random(1))
    cands.add("10.0.0.1:5001", "config")
    cands.forbid("10.0.0.1:5001")
    assert "10.0.0.1:5001" not in cands.by_address
    for source in ("config", "cli", "table", "discovered"):
        assert cands.add("10.0.0.1:5001", source) is False
    assert cands.due(1e9) == []


def test_bounded_list_evicts_oldest_idle_discovered_address_only() -> None:
    cands = Candidates(random.Random(1))
    cands.add("10.1.0.0:5001", "config")
    cands.add("10.1.0.1:5001", "discovered")
    cands.add("10.1.0.2:5001", "discovered")
    cands.by_address["10.1.0.1:5001"].dialling = True
    for i in range(3, MAX_CANDIDATES):
        cands.add(f"10.1.{i // 256}.{i % 256}:5001", "discovered")
    assert len(cands.by_address) == MAX_CANDIDATES
    assert cands.add("10.9.9.9:5001", "discovered") is True
    assert len(cands.by_address) == MAX_CANDIDATES
    assert "10.1.0.2:5001" not in cands.by_address  # the oldest idle discovered one
    assert "10.1.0.1:5001" in cands.by_address  # being dialled: kept
    assert "10.1.0.0:5001" in cands.by_address  # configured: kept


def test_full_list_of_persistent_addresses_refuses_more() -> None:
    cands = Candidates(random.Random(1))
    for i in range(MAX_CANDIDATES):
        cands.add(f"10.2.{i // 256}.{i % 256}:5001", "table")
    assert cands.add("10.9.9.9:5001", "discovered") is False
    assert len(cands.by_address) == MAX_CANDIDATES


def test_a_forgotten_table_entry_is_no_longer_dialled_but_a_configured_peer_is() -> None:
    cands = Candidates(random.Random(1))
    cands.add("10.0.0.1:5001", "table")
    cands.add("10.0.0.2:5001", "config")
    cands.forget_table_entry("10.0.0.1:5001")
    cands.forget_table_entry("10.0.0.2:5001")
    assert list(cands.by_address) == ["10.0.0.2:5001"]


def test_a_peer_on_another_network_is_dropped_unless_configured() -> None:
    cands = Candidates(random.Random(1))
    for address, source in [("10.0.0.1:1", "cli"), ("10.0.0.2:1", "discovered"), ("10.0.0.3:1", "config")]:
        cands.add(address, source)
        cands.drop_unless_configured(address, now=0.0)
    assert list(cands.by_address) == ["10.0.0.3:1"]
    assert cands.by_address["10.0.0.3:1"].next_try > 0  # still redialled, with backoff


def test_discovered_addresses_per_host_are_capped_and_the_cap_frees_up() -> None:
    cands = Candidates(random.Random(1))
    cands.add("[2001:db8::7]:1", "config")  # the operator's choices do not count
    for port in range(2, 100):
        cands.add(f"[2001:db8::7]:{port}", "discovered", learnt_from=f"ip:10.0.0.{port}")
    assert len(cands.by_address) == 1 + MAX_DISCOVERED_PER_HOST
    assert cands.add("[2001:db8::8]:1", "discovered") is True  # another host is fine
    for _ in range(MAX_DISCOVERED_FAILURES):
        cands.failed("[2001:db8::7]:2", 0.0)  # dropped: room for one more on that host
    assert cands.add("[2001:db8::7]:500", "discovered") is True
    assert cands.add("[2001:db8::7]:501", "discovered") is False
    cands.add("[2001:db8::7]:3", "cli")  # upgraded to the operator's: no longer counted
    assert cands.add("[2001:db8::7]:501", "discovered") is True


def test_discovered_addresses_per_source_are_capped() -> None:
    cands = Candidates(random.Random(1))
    for i in range(MAX_DISCOVERED_PER_SOURCE + 10):
        cands.add(f"10.3.{i // 250}.{i % 250 + 1}:5001", "discovered", learnt_from="ip:192.0.2.1")
    assert len(cands.by_address) == MAX_DISCOVERED_PER_SOURCE
    assert cands.add("10.4.0.1:5001", "discovered", learnt_from="ip:192.0.2.2") is True
    cands.forbid("10.3.0.1:5001")
    assert cands.add("10.4.0.2:5001", "discovered", learnt_from="ip:192.0.2.1") is True
    assert cands.per_source == {"ip:192.0.2.1": MAX_DISCOVERED_PER_SOURCE, "ip:192.0.2.2": 1}


def test_the_per_host_and_per_source_counts_follow_every_removal() -> None:
    cands = Candidates(random.Random(1))
    for i in range(6):
        cands.add(f"10.5.0.{i}:5001", "discovered", learnt_from="ip:192.0.2.1")
    cands.drop_unless_configured("10.5.0.0:5001", 0.0)
    cands.forbid("10.5.0.1:5001")
    cands.add("10.5.0.2:5001", "table")
    for _ in range(MAX_DISCOVERED_FAILURES):
        cands.failed("10.5.0.3:5001", 0.0)
    assert cands.per_source == {"ip:192.0.2.1": 2}
    assert sum(cands.per_host.values()) == 2


def test_token_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    bucket = TokenBucket(burst=8, rate=2, now=0.0)
    assert bucket.take(0.0, 10) == 8
    assert bucket.take(0.0) == 0
    assert bucket.next_token(0.0) == pytest.approx(0.5)
    assert bucket.take(1.0, 5) == 2
    assert bucket.take(1_000.0, 100) == 8


def test_a_token_whole_but_for_float_rounding_is_taken_and_its_wait_is_never_zero() -> None:
    """Refills at these times leave 0.9999999999999998 tokens when the next token is due: the
    dial loop waited for the missing 2e-16 of it, a wait that rounds to none, and spun forever
    under a MockClock (simulation seed 4151)."""
    t = 0.762280082457942
    bucket = TokenBucket(burst=8, rate=2, now=t)
    assert bucket.take(t, 8) == 8
    for step in (0.0006318160053332078, 0.13361615821644043, 0.21646200970223475):
        t += step
        assert bucket.take(t) == 0
    due = bucket.next_token(t)
    assert due > t
    assert bucket.take(due) == 1  # the token is whole at the time it was promised
    assert bucket.next_token(due) > due  # and the next one is strictly later, never "now"
