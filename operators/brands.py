"""The brand's own accounts: their posts are never alerted on and their interactions are not reach.

Entries of the `brand_accounts` setting are either customer ids (`"twitter:123"`, anything with a
colon, compared exactly as given) or handles (`"acme_support"`, `"@AcmeSupport"`,
`"acme@mastodon.social"`), compared case-insensitively with the leading `@` stripped. Handles
with a domain are compared as given (lowercased): `"acme@mastodon.social"` does not match a bare
`"acme"`, because on federated platforms the same local name on another server is someone else.

An account matched once by its handle is remembered by its customer id (`learned`), so later
events of that account that carry no handle (Jetstream never does, without profile lookups), or
a new handle, still count as the brand's.
"""

from __future__ import annotations

from collections.abc import Iterable


def normalize_handle(handle: str) -> str:
    """A handle as compared: surrounding blanks and leading `@` removed, lowercased."""
    return handle.strip().lstrip("@").lower()


class BrandAccounts:
    """A set of brand accounts, matched by customer id or by handle in O(1)."""

    __slots__ = ("_customer_ids", "_handles", "_learned")

    def __init__(self, entries: Iterable[str] = ()) -> None:
        """Build from config entries; raises ValueError on an empty entry (a config typo)."""
        ids: set[str] = set()
        handles: set[str] = set()
        for raw in entries:
            entry = raw.strip()
            if ":" in entry:
                ids.add(entry)
                continue
            handle = normalize_handle(entry)
            if not handle:
                raise ValueError(f"empty brand account entry: {raw!r}")
            handles.add(handle)
        self._customer_ids = frozenset(ids)
        self._handles = frozenset(handles)
        self._learned: dict[str, str] = {}  # customer id -> the configured handle it matched

    @classmethod
    def parse(cls, entries: Iterable[str] = ()) -> BrandAccounts:
        """Build from config entries (the constructor the listening matcher calls)."""
        return cls(entries)

    @property
    def platform_values(self) -> frozenset[tuple[str, str]]:
        """(platform, handle) pairs configured for one platform only (none in this version)."""
        return frozenset()

    def matches(self, customer_id: str, handle: str | None) -> bool:
        """Whether the account with this customer id (and optional handle) is a brand account."""
        if customer_id in self._customer_ids or customer_id in self._learned:
            return True
        # The handle check is skipped entirely when no handle is configured (the common case).
        if not self._handles or handle is None:
            return False
        normalized = normalize_handle(handle)
        if normalized not in self._handles:
            return False
        self._learned[customer_id] = normalized
        return True

    @property
    def learned(self) -> dict[str, str]:
        """Customer ids recognised by a configured handle so far (id -> handle)."""
        return dict(self._learned)

    def adopt(self, previous: BrandAccounts) -> None:
        """Keep what `previous` learned, for handles still configured here (recovery resume)."""
        for customer_id, handle in previous._learned.items():
            if handle in self._handles:
                self._learned[customer_id] = handle

    @property
    def customer_ids(self) -> frozenset[str]:
        """The configured customer ids."""
        return self._customer_ids

    @property
    def handles(self) -> frozenset[str]:
        """The configured handles, normalized."""
        return self._handles

    def __bool__(self) -> bool:
        return bool(self._customer_ids or self._handles)

    def __len__(self) -> int:
        return len(self._customer_ids) + len(self._handles)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BrandAccounts):
            return NotImplemented
        return self._customer_ids == other._customer_ids and self._handles == other._handles

    def __hash__(self) -> int:
        return hash((self._customer_ids, self._handles))

    def __repr__(self) -> str:
        entries = sorted(self._customer_ids) + sorted(self._handles)
        return f"BrandAccounts({entries!r})"

    def __getstate__(self) -> tuple[frozenset[str], frozenset[str], dict[str, str]]:
        return (self._customer_ids, self._handles, self._learned)

    def __setstate__(self, state: tuple) -> None:
        self._customer_ids, self._handles, self._learned = state
