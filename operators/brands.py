"""The brand's own accounts: their posts are never alerted on and their interactions are not reach.

Entries of the `brand_accounts` setting take exactly one of three forms:

* `handle` (`acme_support`, `@AcmeSupport`, `acme@mastodon.social`, `acme.bsky.social`): an
  account with exactly that handle, on every platform;
* `platform:handle` (`twitter:acme_support`, `mastodon:acme@mastodon.social`): that handle on
  that platform only;
* `platform:id` (`twitter:95520417`, `bluesky:did:plc:abc`): the account with that id there;
* a bare `did:plc:…` or `did:web:…`: the Bluesky account with that id (`bluesky:did:…`).

Handles are compared case-insensitively with one leading `@` removed, and otherwise exactly: a
Mastodon handle `acme@mastodon.social` is not `acme` (the same local name on another server is
someone else), and `acme` does not match `acme@other.example`. Mastodon events always carry
`user@server` handles (the feed adds the server to its own accounts), so a bare `acme` never
matches there, and `mastodon:acme` without its server is an error. A `platform:value` entry matches
the account whose id or handle on that platform is `value` (ids and handles do not collide on
the platforms we read: numeric ids vs names, DIDs vs domains).

Anything else is ambiguous and an error at start (`parse_brand_entries`), with a hint: a bare
number (an id of which platform?), blanks inside an entry, an empty handle or platform, a URL, a
handle with two `@`.

A match by handle is remembered by the caller for that one account (its customer id), so later
events of it that carry no handle (Jetstream without profile lookups) still count as the
brand's; an event of that account with another handle ends it (the handle was given up, and a
new owner of the account id is not the brand). Nothing learned ever extends to another account.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass

_HANDLE = re.compile(r"[^\s@:/]+(@[^\s@:/]+)?")
_PLATFORM = re.compile(r"[A-Za-z0-9_.-]+")
_BLUESKY = "bluesky"
_MASTODON = "mastodon"


def normalize_handle(handle: str) -> str:
    """A handle as compared: surrounding blanks and one leading `@` removed, lowercased."""
    handle = handle.strip()
    if handle.startswith("@"):
        handle = handle[1:]
    return handle.lower()


def _hint(raw: str, why: str, hint: str) -> ValueError:
    return ValueError(f"brand_accounts entry {raw!r}: {why}; {hint}")


def _handle_or_error(raw: str, value: str) -> str:
    handle = normalize_handle(value)
    if not handle or handle == "@":
        raise ValueError(f"empty brand account entry: {raw!r}")
    if not _HANDLE.fullmatch(handle):
        raise _hint(
            raw,
            "not a handle",
            "write a handle (`acme`, `acme@mastodon.social`), `platform:handle` or `platform:id`",
        )
    return handle


@dataclass(frozen=True, slots=True)
class BrandAccounts:
    """The configured brand accounts (policy: built once from the settings, never mutated).

    `ids` are customer ids (`platform:id`), `platform_values` are (platform, lowercased value)
    pairs matched against an account's id or handle on that platform, `handles` match on every
    platform.
    """

    ids: frozenset[str] = frozenset()
    platform_values: frozenset[tuple[str, str]] = frozenset()
    handles: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str] = ()) -> BrandAccounts:
        """Build from config entries; raises ValueError (with a hint) on an ambiguous entry."""
        ids: set[str] = set()
        platform_values: set[tuple[str, str]] = set()
        handles: set[str] = set()
        for raw in entries:
            entry = raw.strip()
            if not entry or entry.strip("@") == "":
                raise ValueError(f"empty brand account entry: {raw!r}")
            if any(c.isspace() for c in entry):
                raise _hint(raw, "blanks inside an entry", "one account per entry")
            if "://" in entry:
                raise _hint(raw, "a URL", "write the handle or `platform:id` of the account")
            if entry.startswith(("did:plc:", "did:web:")):
                ids.add(f"{_BLUESKY}:{entry}")
                continue
            if ":" in entry:
                platform, _, value = entry.partition(":")
                if not _PLATFORM.fullmatch(platform):
                    raise _hint(raw, f"{platform!r} is not a platform", "write `platform:id`")
                if not value:
                    raise _hint(raw, "no id or handle after the platform", "write `platform:id`")
                if value.startswith("did:"):
                    if platform != _BLUESKY or not value.startswith(("did:plc:", "did:web:")):
                        raise _hint(raw, "a DID names a Bluesky account", "write `did:plc:…`")
                    ids.add(entry)
                    continue
                if ":" in value:
                    raise _hint(raw, "more than one `:`", "write `platform:id`")
                if (
                    platform.lower() == _MASTODON
                    and not value.isdigit()
                    and "@" not in value.lstrip("@")
                ):
                    raise _hint(
                        raw,
                        "a Mastodon handle names its server (the same name on another server is"
                        " someone else)",
                        f"write `mastodon:{value.lstrip('@')}@<server>`, e.g."
                        f" `mastodon:{value.lstrip('@')}@mastodon.social`",
                    )
                ids.add(entry)
                platform_values.add((platform, _handle_or_error(raw, value)))
                continue
            if entry.lstrip("@").isdigit():
                raise _hint(
                    raw,
                    "a bare number is an id without a platform",
                    f"write `twitter:{entry.lstrip('@')}` (or the platform it belongs to)",
                )
            handles.add(_handle_or_error(raw, entry))
        return cls(frozenset(ids), frozenset(platform_values), frozenset(handles))

    def __bool__(self) -> bool:
        return bool(self.ids or self.platform_values or self.handles)

    def __len__(self) -> int:
        return len(self.ids | {f"{p}:{v}" for p, v in self.platform_values}) + len(self.handles)

    def by_id(self, customer_id: str) -> bool:
        """Whether the customer id itself is configured (`platform:id`, a bare DID)."""
        return customer_id in self.ids

    def by_handle(self, platform: str, handle: str) -> bool:
        """Whether this handle, on this platform, is configured (`handle`, `platform:handle`)."""
        normalized = normalize_handle(handle)
        return normalized in self.handles or (platform, normalized) in self.platform_values

    def matches(
        self,
        customer_id: str,
        handle: str | None,
        learned: MutableMapping[str, bool] | None = None,
    ) -> bool:
        """Whether the account with this customer id (and handle, when known) is the brand's.

        `learned` is the caller's memory of accounts matched by handle (state, not policy): an
        event with a handle decides by it and updates the memory of that one account; an event
        without a handle falls back on it.
        """
        if customer_id in self.ids:
            return True
        if not (self.handles or self.platform_values):
            return False
        if handle is None:
            return learned is not None and customer_id in learned
        platform = customer_id.partition(":")[0]
        matched = self.by_handle(platform, handle)
        if learned is not None:
            if matched:
                learned[customer_id] = True
            else:
                learned.pop(customer_id, None)
        return matched

    def entries(self) -> list[str]:
        """The configured accounts, normalised (for logs and reprs)."""
        return (
            sorted(self.ids)
            + sorted(f"{p}:{v}" for p, v in self.platform_values)
            + sorted(self.handles)
        )
