from __future__ import annotations

import pytest

from peer.ratelimit import TokenBucket, parse_rate


@pytest.mark.parametrize(
    ("text", "expected"),
    [("100Mbit", 12.5e6), ("1Gbit", 125e6), ("12.5MB", 12.5e6), ("1GiB", 2**30), ("800k", 800e3), ("0", 0.0),
     ("", 0.0), ("64kbit/s", 8e3)],
)
def test_rates_parse(text: str, expected: float) -> None:
    assert parse_rate(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["fast", "10 Mbarrels", "-5MB", "1e9"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a rate"):
        parse_rate(text)


def test_the_bucket_holds_the_rate_over_time() -> None:
    bucket = TokenBucket(rate=1000.0, burst=100.0, clock=lambda: 0.0)
    now, waited = 0.0, 0.0
    for _ in range(50):
        delay = bucket.reserve(100, now)
        waited += delay
        now += delay
    # 5,000 bytes at 1,000 B/s after a 100-byte burst: 4.9 s of waiting, whatever the chunking.
    assert waited == pytest.approx(4.9)


def test_large_takes_go_into_debt_instead_of_being_refused() -> None:
    bucket = TokenBucket(rate=1000.0, burst=100.0, clock=lambda: 0.0)
    assert bucket.reserve(4000, 0.0) == pytest.approx(3.9)
    # The next taker queues behind the debt.
    assert bucket.reserve(100, 0.0) == pytest.approx(4.0)
    # Idle time pays the debt back, but never builds more than the burst.
    assert bucket.reserve(100, 100.0) == 0.0
    assert bucket.reserve(200, 100.0) == pytest.approx(0.2)


def test_zero_rate_is_unlimited() -> None:
    bucket = TokenBucket(rate=0.0)
    assert bucket.unlimited
    assert bucket.reserve(10**12, 0.0) == 0.0
