"""The shared token bucket's `take`: a token now or False, and a False takes nothing."""

from __future__ import annotations

import pytest

from connectors.rate_limit import TokenBucket


@pytest.mark.parametrize(
    ("rate", "burst", "pause_until", "asked", "taken"),
    [
        # a full bucket of 2 gives two at once, then one more half a second later
        (2.0, 2.0, None, [0.0, 0.0, 0.0, 0.5], [True, True, False, True]),
        # a refused take takes nothing: the token due at t=1 is still there at t=1
        (1.0, 1.0, None, [0.0, 0.5, 0.9, 1.0, 1.0], [True, False, False, True, False]),
        # refill stops at the burst: a long idle spell still gives only 3
        (1.0, 3.0, None, [100.0] * 4, [True, True, True, False]),
        # nothing before a pause ends, then one token, refilling at the rate from there
        (1.0, 2.0, 10.0, [0.0, 9.9, 10.0, 10.0, 11.0], [False, False, True, False, True]),
    ],
)
def test_take(
    rate: float, burst: float, pause_until: float | None, asked: list[float], taken: list[bool]
) -> None:
    bucket = TokenBucket(rate=rate, burst=burst, now=0.0)
    if pause_until is not None:
        bucket.pause_until(pause_until)
    assert [bucket.take(t) for t in asked] == taken


def test_take_and_reserve_share_the_tokens() -> None:
    bucket = TokenBucket(rate=1.0, now=0.0)
    assert bucket.take(0.0) is True
    assert bucket.reserve(0.0) == pytest.approx(1.0)  # the next token, owed at t=1
    assert bucket.take(1.5) is False  # that token is spent; the one after is due at t=2
    assert bucket.take(2.0) is True
