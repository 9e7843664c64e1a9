"""A token bucket: the rate limit of what peers make us do (addresses learnt, dials)."""

from typing import Final

# Refills are float sums: 0.1 s at 2/s can leave 0.9999999999 tokens. A token that close to
# whole is whole, or the wait for the missing 1e-16 of it would round to no wait at all and a
# loop waiting for it would spin without time passing (under a MockClock, forever).
_TOKEN_EPSILON: Final = 1e-9


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; starts full."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, burst: float, rate: float, now: float) -> None:
        self.burst = burst
        self.rate = rate
        self.tokens = burst
        self.stamp = now

    def refill(self, now: float) -> float:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now
        return self.tokens

    def take(self, now: float, wanted: int = 1) -> int:
        """Take up to ``wanted`` whole tokens; returns how many were taken."""
        got = min(wanted, int(self.refill(now) + _TOKEN_EPSILON))
        self.tokens = max(0.0, self.tokens - got)
        return got

    def next_token(self, now: float) -> float:
        """When the next whole token is there (``now`` if it already is)."""
        missing = 1.0 - self.refill(now)
        return now if missing <= _TOKEN_EPSILON else now + missing / self.rate
