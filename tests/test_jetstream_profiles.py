"""Follower lookups of the Bluesky Jetstream source: the profile cache, the token bucket and the
settings, and lookups against a real local AppView (batched, cached, failing, slow, rate
limited) while the frames come from a local Jetstream."""

from __future__ import annotations

import time

import pytest
from feed_plumbing import drain
from jetstream_helpers import did, fast, part_for, synthetic
from jetstream_helpers import no_reader_threads_left as no_reader_threads_left
from jetstream_server import JetstreamServer
from profiles_server import ProfilesServer

from config.feeds import JetstreamSettings
from connectors.jetstream_profiles import Profile, ProfileCache
from connectors.rate_limit import TokenBucket

# -- the cache, the rate limit, the settings -------------------------------------------------------


def test_profile_cache_ttl_and_lru() -> None:
    cache = ProfileCache(max_size=2)
    cache.put("a", Profile("a.test", 10), now=0, ttl=10)
    cache.put("b", Profile("b.test", 20), now=0, ttl=10)
    assert cache.get("a", 5) == Profile("a.test", 10)  # touches a
    cache.put("c", Profile(None, None), now=5, ttl=1)  # evicts b, the least recently used
    assert (cache.known("b", 5), cache.known("c", 5.5), cache.known("c", 6)) == (False, True, False)
    assert cache.get("a", 10) is None and len(cache) == 0


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=2.0, burst=2.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [True, True, False]
    assert bucket.take(0.4) is False and bucket.take(0.5) is True


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match="reconnect_max_seconds"):
        JetstreamSettings(reconnect_initial_seconds=5, reconnect_max_seconds=1)
    with pytest.raises(ValueError):
        JetstreamSettings(profiles_batch_size=26)
    with pytest.raises(ValueError):
        JetstreamSettings(profiles_hold_ms=5_000)


# -- follower lookup -------------------------------------------------------------------------------


def test_profiles_fill_followers_in_batches_with_cache() -> None:
    frames = synthetic(60)  # 7 distinct authors, posts
    profiles = {did(f"user{i}"): (f"user{i}.bsky.social", 1000 * i) for i in range(7)}
    # frames trickle in, so later events find their author in the cache
    with ProfilesServer(profiles) as appview, JetstreamServer(frames, frame_delay=0.003) as server:
        settings = fast(profiles_enabled=True, profiles_url=appview.url, profiles_batch_wait_ms=20)
        part = part_for(server.url, settings, batch_size=100)
        try:
            items = drain(part, lambda got: len(got) >= 60)
        finally:
            part.close()
        requests = appview.requests
    assert len(items) == 60
    by_author = {i.author.id: (i.author.handle, i.author.followers) for i in items}
    assert by_author == profiles
    # batched (each request names up to 25 actors) and cached (each actor asked once)
    asked = [a for r in requests for a in r]
    assert sorted(asked) == sorted(profiles) and all(len(r) <= 25 for r in requests)
    assert part.metrics.profile_cache_hits >= 30


def test_profile_lookup_failure_lets_events_flow_without_followers() -> None:
    with ProfilesServer({}, fail=True) as appview, JetstreamServer(synthetic(20)) as server:
        settings = fast(profiles_enabled=True, profiles_url=appview.url, profiles_batch_wait_ms=5)
        part = part_for(server.url, settings, batch_size=100)
        try:
            items = drain(part, lambda got: len(got) >= 20)
        finally:
            part.close()
    assert len(items) == 20 and all(i.author.followers is None for i in items)
    assert part.metrics.profile_failures >= 1


def test_slow_profile_lookup_holds_events_only_briefly() -> None:
    profiles = {did(f"user{i}"): ("h", 5) for i in range(7)}
    with ProfilesServer(profiles, delay=1.5) as appview, JetstreamServer(synthetic(10)) as server:
        settings = fast(
            profiles_enabled=True,
            profiles_url=appview.url,
            profiles_hold_ms=100,
            profiles_timeout_seconds=3.0,
        )
        part = part_for(server.url, settings, batch_size=100)
        try:
            started = time.monotonic()
            items = drain(part, lambda got: len(got) >= 10, timeout=1.2)
            elapsed = time.monotonic() - started
        finally:
            part.close()
    assert len(items) == 10 and elapsed < 1.2  # released at the hold deadline, not the answer
    assert all(i.author.followers is None for i in items)
    assert part.metrics.profile_timeouts >= 1


def test_profile_lookups_are_rate_limited() -> None:
    frames = synthetic(40, step_us=1000, authors=40)  # every frame needs its own lookup
    with ProfilesServer({}) as appview, JetstreamServer(frames) as server:
        settings = fast(
            profiles_enabled=True,
            profiles_url=appview.url,
            profiles_batch_size=1,
            profiles_batch_wait_ms=0,
            profiles_requests_per_second=1.0,
        )
        part = part_for(server.url, settings, batch_size=100)
        try:
            items = drain(part, lambda got: len(got) >= 40)
        finally:
            part.close()
    assert len(items) == 40
    assert part.metrics.profile_rate_limited >= 30 and len(appview.requests) <= 5
