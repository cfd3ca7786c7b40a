"""Bluesky profiles for Jetstream events: what `app.bsky.actor.getProfiles` returns, cached
and rate-limited. Pure (the caller passes monotonic `now`); `connectors.jetstream` does the I/O.

Followers are not in the stream, so with `profiles_enabled` the reader looks authors up in
batches; a failed or empty lookup is cached too (`Profile(None, None)`, with a shorter TTL) so a
deleted or failing account is not asked for again on its every event.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import orjson


@dataclass(frozen=True, slots=True)
class Profile:
    """What an AppView knows about an account that the stream does not carry."""

    handle: str | None
    followers: int | None


_MISSING = object()


class ProfileCache:
    """DID -> Profile, least-recently-used with a per-entry expiry. `now` is monotonic seconds."""

    def __init__(self, max_size: int) -> None:
        self._max = max_size
        self._data: OrderedDict[str, tuple[float, Profile]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def lookup(self, did: str, now: float) -> Profile | object:
        """The cached profile, or `_MISSING` when unknown or expired."""
        hit = self._data.get(did)
        if hit is None:
            return _MISSING
        if hit[0] <= now:
            del self._data[did]
            return _MISSING
        self._data.move_to_end(did)
        return hit[1]

    def known(self, did: str, now: float) -> bool:
        """Whether the DID has a fresh entry (a profile or a remembered failure)."""
        return self.lookup(did, now) is not _MISSING

    def get(self, did: str, now: float) -> Profile | None:
        """The cached profile, or None."""
        hit = self.lookup(did, now)
        return hit if isinstance(hit, Profile) else None

    def put(self, did: str, profile: Profile, now: float, ttl: float) -> None:
        """Remember a profile (a failure is `Profile(None, None)` with a short ttl)."""
        self._data[did] = (now + ttl, profile)
        self._data.move_to_end(did)
        while len(self._data) > self._max:
            self._data.popitem(last=False)


def parse_profiles(body: bytes) -> dict[str, Profile]:
    """The `profiles` of an `app.bsky.actor.getProfiles` response, by DID."""
    data = orjson.loads(body)
    out: dict[str, Profile] = {}
    for item in data.get("profiles", []) if isinstance(data, dict) else []:
        if not isinstance(item, dict) or not isinstance(item.get("did"), str):
            continue
        followers = item.get("followersCount")
        handle = item.get("handle")
        out[item["did"]] = Profile(
            handle if isinstance(handle, str) and handle != "handle.invalid" else None,
            followers if type(followers) is int and followers >= 0 else None,
        )
    return out
