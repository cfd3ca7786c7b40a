"""BrandAccounts: which accounts are the brand's own."""

from __future__ import annotations

import pickle

import pytest

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
    (["acme_support"], "acme_support", None, False),  # a handle entry never matches an id
    (["twitter:123"], "twitter:123", None, True),
    (["twitter:123"], "twitter:123", "whoever", True),
    (["twitter:123"], "twitter:1234", None, False),
    (["twitter:123"], "mastodon:123", None, False),
    (["twitter:123"], "twitter:1", "twitter:123", False),  # an id entry never matches a handle
    (["bluesky:did:plc:abc"], "bluesky:did:plc:abc", None, True),
    (["acme@mastodon.social"], "mastodon:9", "acme@mastodon.social", True),
    (["acme@mastodon.social"], "mastodon:9", "@Acme@Mastodon.Social", True),
    (["acme@mastodon.social"], "mastodon:9", "acme", False),  # same name, maybe other server
    (["acme"], "mastodon:9", "acme@mastodon.social", False),
    (["acme.bsky.social"], "bluesky:did:plc:x", "acme.bsky.social", True),
    ([], "twitter:1", "acme", False),
    (["acme", "twitter:7"], "twitter:7", None, True),
    (["acme", "twitter:7"], "twitter:8", "Acme", True),
]


@pytest.mark.parametrize(("entries", "customer_id", "handle", "expected"), CASES)
def test_matches(entries: list[str], customer_id: str, handle: str | None, expected: bool) -> None:
    assert BrandAccounts(entries).matches(customer_id, handle) is expected


@pytest.mark.parametrize("entry", ["", "   ", "@", "@@"])
def test_empty_entry_is_an_error(entry: str) -> None:
    with pytest.raises(ValueError, match="empty brand account"):
        BrandAccounts(["acme", entry])


@pytest.mark.parametrize(
    ("entries", "size", "truthy"),
    [([], 0, False), (["acme"], 1, True), (["acme", "@ACME", "twitter:1"], 2, True)],
)
def test_size_and_truth(entries: list[str], size: int, truthy: bool) -> None:
    brands = BrandAccounts(entries)
    assert len(brands) == size
    assert bool(brands) is truthy


def test_pickle_round_trip() -> None:
    brands = BrandAccounts(["@AcmeSupport", "twitter:123", "acme@mastodon.social"])
    restored = pickle.loads(pickle.dumps(brands))
    assert restored == brands
    assert restored.matches("twitter:9", "acmesupport")
    assert restored.matches("twitter:123", None)
    assert restored.handles == frozenset({"acmesupport", "acme@mastodon.social"})
    assert restored.customer_ids == frozenset({"twitter:123"})


def test_an_account_matched_by_handle_is_remembered_by_id() -> None:
    brands = BrandAccounts(["AcmeAir"])
    assert brands.matches("twitter:999", "AcmeAir")
    # later events of the same account carry no handle, or a new one
    assert brands.matches("twitter:999", None)
    assert brands.matches("twitter:999", "AcmeAirlines")
    assert not brands.matches("twitter:1000", None)
    assert brands.learned == {"twitter:999": "acmeair"}


def test_learned_ids_survive_pickling_and_a_reconfigure_that_keeps_the_handle() -> None:
    import pickle

    old = BrandAccounts(["AcmeAir", "TelcoCare"])
    old.matches("twitter:1", "acmeair")
    old.matches("twitter:2", "@TelcoCare")
    restored = pickle.loads(pickle.dumps(old))
    assert restored.matches("twitter:1", None)
    new = BrandAccounts(["AcmeAir"])  # TelcoCare is no longer a brand
    new.adopt(restored)
    assert new.matches("twitter:1", None)
    assert not new.matches("twitter:2", None)
