"""BrandAccounts: exact entries, errors with hints, and a memory that stays with one account."""

from __future__ import annotations

import pickle

import pytest

from config.settings import Settings
from operators.brands import BrandAccounts

CASES = [
    # entries, customer_id, handle, expected
    (["acme_support"], "twitter:1", "acme_support", True),
    (["acme_support"], "twitter:1", "@acme_support", True),
    (["@AcmeSupport"], "twitter:1", "acmesupport", True),
    (["acme_support"], "twitter:1", "ACME_Support", True),
    (["  @acme_support "], "twitter:1", "acme_support", True),
    (["acme_support"], "twitter:1", "acme_support2", False),
    (["acme_support"], "twitter:1", None, False),
    (["acme_support"], "mastodon:7", "acme_support", True),  # a handle: every platform
    (["acme_support"], "twitter:acme_support", None, False),  # a handle never matches an id
    (["twitter:123"], "twitter:123", None, True),
    (["twitter:123"], "twitter:123", "whoever", True),
    (["twitter:123"], "twitter:1234", None, False),
    (["twitter:123"], "mastodon:123", None, False),
    (["twitter:123"], "twitter:1", "twitter:123", False),
    (["twitter:acme"], "twitter:9", "acme", True),  # platform:handle
    (["twitter:acme"], "twitter:9", "@ACME", True),
    (["twitter:acme"], "mastodon:9", "acme", False),  # only on that platform
    (["bluesky:did:plc:abc"], "bluesky:did:plc:abc", None, True),
    (["did:plc:abc"], "bluesky:did:plc:abc", None, True),  # a bare DID is a Bluesky id
    (["did:web:acme.example"], "bluesky:did:web:acme.example", None, True),
    (["did:plc:abc"], "twitter:did:plc:abc", None, False),
    (["acme@mastodon.social"], "mastodon:9", "acme@mastodon.social", True),
    (["acme@mastodon.social"], "mastodon:9", "@Acme@Mastodon.Social", True),
    (["acme@mastodon.social"], "mastodon:9", "acme", False),  # same name, maybe other server
    (["acme"], "mastodon:9", "acme@mastodon.social", False),  # exact: not a prefix
    (["acme"], "mastodon:9", "acme@evil.example", False),
    (["mastodon:acme@mastodon.social"], "mastodon:9", "acme@mastodon.social", True),
    (["mastodon:109"], "mastodon:109", None, True),  # a Mastodon id needs no server
    (["acme.bsky.social"], "bluesky:did:plc:x", "acme.bsky.social", True),
    ([], "twitter:1", "acme", False),
    (["acme", "twitter:7"], "twitter:7", None, True),
    (["acme", "twitter:7"], "twitter:8", "Acme", True),
]


@pytest.mark.parametrize(("entries", "customer_id", "handle", "expected"), CASES)
def test_matches(entries: list[str], customer_id: str, handle: str | None, expected: bool) -> None:
    assert BrandAccounts.parse(entries).matches(customer_id, handle) is expected


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("", "empty brand account"),
        ("   ", "empty brand account"),
        ("@", "empty brand account"),
        ("@@", "empty brand account"),
        ("95520417", "write `twitter:95520417`"),  # an id of which platform?
        ("@95520417", "bare number"),
        ("acme support", "blanks inside"),
        ("https://twitter.com/acme", "a URL"),
        ("twitter:", "no id or handle"),
        (":acme", "not a platform"),
        ("a b:c", "blanks inside"),
        ("twitter:a:b", "more than one"),
        ("twitter:did:plc:abc", "Bluesky"),
        ("bluesky:did:key:abc", "Bluesky"),
        ("acme@x@y", "not a handle"),
        ("acme@", "not a handle"),
        ("mastodon:acme", "write `mastodon:acme@<server>`"),  # which server's acme?
        ("mastodon:@acme", "names its server"),
        ("Mastodon:acme", "names its server"),
    ],
)
def test_ambiguous_entries_are_errors_with_a_hint(entry: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BrandAccounts.parse(["acme", entry])


def test_settings_reject_an_ambiguous_entry_at_start() -> None:
    with pytest.raises(ValueError, match="twitter:12345"):
        Settings(brand_accounts=["acme", "12345"])
    assert Settings(brand_accounts=["did:plc:abc", "acme@mastodon.social"]).brand_accounts


@pytest.mark.parametrize(
    ("entries", "size", "truthy"),
    [([], 0, False), (["acme"], 1, True), (["acme", "@ACME", "twitter:1"], 2, True)],
)
def test_size_and_truth(entries: list[str], size: int, truthy: bool) -> None:
    brands = BrandAccounts.parse(entries)
    assert len(brands) == size
    assert bool(brands) is truthy


def test_policy_pickles_and_compares() -> None:
    brands = BrandAccounts.parse(["@AcmeSupport", "twitter:123", "acme@mastodon.social"])
    assert pickle.loads(pickle.dumps(brands)) == brands


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        # (customer id, handle) seen in order -> whether the last one is the brand's
        ([("tw:1", "acme"), ("tw:1", None)], True),  # handle-less event of that account
        ([("tw:1", "acme"), ("tw:2", None)], False),  # never another account
        ([("tw:1", "acme"), ("tw:1", "acme_old")], False),  # the account gave the handle up
        ([("tw:1", "acme"), ("tw:1", "other"), ("tw:1", None)], False),  # and is forgotten
        ([("tw:1", None)], False),
        ([("mastodon:9", "acme"), ("mastodon:10", "acme@evil.example")], False),
    ],
)
def test_a_match_is_remembered_for_that_account_only(
    events: list[tuple[str, str | None]], expected: bool
) -> None:
    brands = BrandAccounts.parse(["acme"])
    learned: dict[str, bool] = {}
    results = [brands.matches(customer_id, handle, learned) for customer_id, handle in events]
    assert results[-1] is expected
    assert set(learned) <= {customer_id for customer_id, _ in events[:1]}
