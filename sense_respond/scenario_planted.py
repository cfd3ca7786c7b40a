"""The planted customers of the synthetic feed, whose outcome under the default rule is known.

Four customers of each category but `brand` (see `sense_respond.scenario`): two categories alert,
the others are traps for a rule that got influence, unhappiness, de-duplication or listening
wrong. A
graph influencer becomes influential through a viral post that many distinct background accounts
interact with, more than an hour before its complaints.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sense_respond.scenario_draft import FeedDraft
from sense_respond.scenario_model import (
    CAT_BAD_THEN_GOOD,
    CAT_FAR_APART,
    CAT_FOLLOWERS,
    CAT_GRAPH,
    CAT_HAPPY,
    CAT_NO_REACH,
    CAT_UNRELATED,
    Account,
)
from sense_respond.scenario_vocabulary import BRAND_DOMAINS, BRANDS, SLOTS

MIN_GRAPH_INBOUND = 62
"""Distinct background accounts interacting with each graph influencer (the brief asks >= 60)."""


@dataclass
class PlantedTruth:
    """The planted customers and what the feed was built to show about them."""

    categories: dict[str, str] = field(default_factory=dict)
    """Customer id -> planted category."""
    basis: dict[str, str] = field(default_factory=dict)
    """Customer id -> "followers", "graph" or "none" (what makes it influential, if anything)."""
    accounts: dict[str, Account] = field(default_factory=dict)
    negatives: dict[str, list[str]] = field(default_factory=dict)
    """Customer id -> ids of its planted negative posts, in event-time order."""
    delivered_twice: list[str] = field(default_factory=list)
    """Ids of events that must be delivered twice: counted twice, they would cause alerts."""


def plant_customers(draft: FeedDraft) -> PlantedTruth:
    """Add every planted customer and its activity to the draft."""
    truth = PlantedTruth()
    _plant_unhappy_by_followers(draft, truth)
    _plant_unhappy_by_graph(draft, truth)
    _plant_unhappy_without_reach(draft, truth)
    _plant_quiet_influencers(draft, truth)
    _plant_unhappy_about_other_things(draft, truth)
    return truth


def _brand_domain(rng: random.Random) -> str:
    return rng.choice(BRAND_DOMAINS)


def _new_customer(
    draft: FeedDraft, truth: PlantedTruth, category: str, basis: str, platform: str = "twitter"
) -> Account:
    rng = draft.rng
    if basis == "followers":
        followers = int(math.exp(rng.uniform(math.log(25_000), math.log(400_000))))
        style = "hub"
    elif basis == "graph":
        followers = rng.randint(250, 420)
        style = "hub"
    else:
        followers = rng.randint(5, 60)
        style = "person"
    account = draft.new_account(platform, followers, style)
    truth.categories[account.cid] = category
    truth.basis[account.cid] = basis
    truth.accounts[account.cid] = account
    return account


# ------------------------------------------------------------------------------ categories


def _plant_unhappy_by_followers(draft: FeedDraft, truth: PlantedTruth) -> None:
    """Unhappy, influential by followers: a complaint burst; one of them on Mastodon."""
    rng = draft.rng
    for i in range(4):
        platform = "mastodon" if i == 3 else "twitter"
        c = _new_customer(draft, truth, CAT_FOLLOWERS, "followers", platform)
        t1 = rng.uniform(2.0, draft.hours - 4.0)
        if t1 > 8.0:
            # An upbeat post earlier in the day, well outside the window of the burst.
            d = _brand_domain(rng) if platform == "twitter" else "general"
            draft.text_event("post", draft.at(t1 - rng.uniform(7.0, 8.0)), c, "positive", d)
        negs = _negative_burst(draft, c, draft.at(t1), rng.randint(3, 5), _brand_domain(rng))
        truth.negatives[c.cid] = negs
        _sympathy(draft, c, negs)


def _plant_unhappy_by_graph(draft: FeedDraft, truth: PlantedTruth) -> None:
    """Unhappy, influential through the graph alone."""
    rng = draft.rng
    for _ in range(4):
        c = _new_customer(draft, truth, CAT_GRAPH, "graph")
        t0 = rng.uniform(0.3, draft.hours - 12.0)
        _graph_audience(draft, c, draft.at(t0))
        t1 = t0 + rng.uniform(6.75, 7.5)
        negs = _negative_burst(draft, c, draft.at(t1), rng.randint(3, 5), _brand_domain(rng))
        truth.negatives[c.cid] = negs
        _sympathy(draft, c, negs)


def _plant_unhappy_without_reach(draft: FeedDraft, truth: PlantedTruth) -> None:
    """Unhappy with no reach: the brand answers them, nobody else does."""
    rng = draft.rng
    for _ in range(4):
        c = _new_customer(draft, truth, CAT_NO_REACH, "none")
        d = _brand_domain(rng)
        t1 = rng.uniform(1.0, draft.hours - 3.0)
        negs = _negative_burst(draft, c, draft.at(t1), rng.randint(3, 5), d)
        truth.negatives[c.cid] = negs
        last = draft.when[negs[-1]]
        for handle in [h for h, info in BRANDS.items() if info["domain"] == d]:
            draft.brand_reply(handle, c, negs[-1], last, rng.uniform(5, 40))
            draft.emit("follow", last + timedelta(minutes=rng.uniform(30, 60)),
                       draft.brands[handle], target=c)  # fmt: skip


def _plant_quiet_influencers(draft: FeedDraft, truth: PlantedTruth) -> None:
    """Influential customers who must not alert; the last of each category is a graph hub."""
    rng = draft.rng
    hours = draft.hours
    for category in (CAT_HAPPY, CAT_BAD_THEN_GOOD, CAT_FAR_APART):
        for i in range(4):
            basis = "graph" if i == 3 else "followers"
            c = _new_customer(draft, truth, category, basis)
            d = _brand_domain(rng)
            if category == CAT_FAR_APART:
                t0 = rng.uniform(0.2, 0.6)
                t1 = t0 + 6.75 if basis == "graph" else rng.uniform(0.5, 2.0)
            else:
                t0 = rng.uniform(0.3, hours - 10.0)
                t1 = t0 + rng.uniform(6.75, 7.5) if basis == "graph" else rng.uniform(1, hours - 3)
            if basis == "graph":
                _graph_audience(draft, c, draft.at(t0))
            if category == CAT_HAPPY:
                _happy_posts(draft, c, draft.at(t1), d)
            elif category == CAT_BAD_THEN_GOOD:
                _one_bad_then_good_posts(draft, truth, c, draft.at(t1), d)
            else:
                _far_apart_negatives(draft, truth, c, t1, d)


def _happy_posts(draft: FeedDraft, c: Account, ts: datetime, domain: str) -> None:
    rng = draft.rng
    for _ in range(rng.randint(3, 4)):
        cls = rng.choice(("positive", "strong_positive"))
        draft.text_event("post", ts, c, cls, domain)
        draft.emit("like", ts + timedelta(minutes=rng.uniform(3, 30)),
                   draft.brands[draft.support_handle(domain)], target=c)  # fmt: skip
        ts += timedelta(minutes=rng.uniform(10, 60))


def _one_bad_then_good_posts(
    draft: FeedDraft, truth: PlantedTruth, c: Account, ts: datetime, domain: str
) -> None:
    rng = draft.rng
    handle = draft.support_handle(domain)
    bad = draft.text_event("post", ts, c, "negative", domain, brand=handle)
    truth.negatives[c.cid] = [bad["id"]]
    truth.delivered_twice.append(bad["id"])
    draft.brand_reply(handle, c, bad["id"], ts, rng.uniform(3, 8))
    ts += timedelta(minutes=rng.uniform(10, 25))
    for _ in range(rng.randint(3, 4)):
        draft.text_event("post", ts, c, "strong_positive", domain, brand=handle)
        ts += timedelta(minutes=rng.uniform(10, 30))


def _far_apart_negatives(
    draft: FeedDraft, truth: PlantedTruth, c: Account, t1: float, domain: str
) -> None:
    """Negative posts 7-8.5 h apart from hour `t1` on: never two in one 6 h window."""
    rng = draft.rng
    ids = []
    t = t1
    while t < draft.hours - 0.25:
        handle = draft.support_handle(domain)
        e = draft.text_event("post", draft.at(t), c, "negative", domain, brand=handle)
        ids.append(e["id"])
        draft.brand_reply(handle, c, e["id"], draft.at(t))
        t += rng.uniform(7.0, 8.5)
    assert len(ids) >= 2, "negatives_far_apart needs two negative posts"
    truth.negatives[c.cid] = ids
    truth.delivered_twice.append(ids[0])


def _plant_unhappy_about_other_things(draft: FeedDraft, truth: PlantedTruth) -> None:
    """Unhappy and influential, about other things: only listening keeps them quiet."""
    rng = draft.rng
    for i in range(4):
        basis = "graph" if i == 3 else "followers"
        c = _new_customer(draft, truth, CAT_UNRELATED, basis, "mastodon" if i == 2 else "twitter")
        if basis == "graph":
            t0 = rng.uniform(0.3, draft.hours - 12.0)
            _graph_audience(draft, c, draft.at(t0))
            t1 = t0 + rng.uniform(6.75, 7.5)
        else:
            t1 = rng.uniform(1.0, draft.hours - 3.0)
        negs = _unrelated_burst(draft, c, draft.at(t1), rng.randint(3, 5))
        truth.negatives[c.cid] = negs
        _sympathy(draft, c, negs)


# ------------------------------------------------------------------------- building blocks


def _negative_burst(
    draft: FeedDraft, customer: Account, t0: datetime, count: int, domain: str
) -> list[str]:
    """`count` negative posts 5-30 min apart starting at `t0`, with brand replies between."""
    rng = draft.rng
    ids: list[str] = []
    ts = t0
    last_brand_reply: tuple[str, str] | None = None  # (event id, handle)
    company = rng.choice(SLOTS["company"])  # one grievance per burst
    for k in range(count):
        if k:
            ts += timedelta(minutes=rng.uniform(5, 30))
        if customer.platform != "twitter":
            event = draft.text_event("post", ts, customer, "negative", "general", company=company)
            ids.append(event["id"])
            continue
        handle = draft.support_handle(domain)
        if last_brand_reply is not None and rng.random() < 0.6:
            reply_id, replied_by = last_brand_reply
            kind = rng.choice(("reply", "quote"))
            event = draft.text_event(
                kind, ts, customer, "negative", domain, target=draft.brands[replied_by],
                in_reply_to=reply_id if kind == "reply" else None, brand=replied_by,
            )  # fmt: skip
        else:
            event = draft.text_event("post", ts, customer, "negative", domain, brand=handle)
        ids.append(event["id"])
        if k + 1 < count and rng.random() < 0.7:
            # The brand answers within a few minutes, before the next complaint.
            reply = draft.brand_reply(handle, customer, event["id"], ts, rng.uniform(2, 4.5))
            last_brand_reply = (reply["id"], handle)
    return ids


def _graph_audience(draft: FeedDraft, hub: Account, t0: datetime) -> int:
    """Make `hub` influential through the graph: a viral post at t0, then many distinct
    background accounts interact with it over the next 5 h. Returns the distinct count."""
    rng = draft.rng
    viral = draft.text_event("post", t0, hub, rng.choice(("neutral", "positive")), "thread")
    fans = rng.sample(
        draft.background_by_platform[hub.platform], MIN_GRAPH_INBOUND + rng.randint(0, 26)
    )
    # A few fans come back a second time (a reply, then a like ...).
    visits = fans + rng.sample(fans, rng.randint(8, 20))
    kinds = ("reply", "repost", "like", "quote", "mention", "follow")
    weights = (0.3, 0.25, 0.2, 0.1, 0.1, 0.05)
    for fan in visits:
        ts = t0 + timedelta(minutes=rng.uniform(5, 300))
        kind = rng.choices(kinds, weights)[0]
        if kind == "reply":
            draft.pending_text(
                "reply", ts, fan, "reply", may_be_negative=False, target=hub,
                in_reply_to=viral["id"],
            )  # fmt: skip
        elif kind == "quote":
            draft.pending_text("quote", ts, fan, "reply", may_be_negative=False, target=hub)
        elif kind == "mention":
            draft.pending_text("post", ts, fan, "general", may_be_negative=False, who=hub)
        else:
            draft.emit(kind, ts, fan, target=hub)
    return len(fans)


def _unrelated_burst(draft: FeedDraft, customer: Account, t0: datetime, count: int) -> list[str]:
    """`count` negative posts 5-30 min apart about things that are no brand's business."""
    ids = []
    ts = t0
    for k in range(count):
        if k:
            ts += timedelta(minutes=draft.rng.uniform(5, 30))
        event = draft.text_event("post", ts, customer, "negative", "unrelated")
        ids.append(event["id"])
    return ids


def _sympathy(draft: FeedDraft, customer: Account, negs: list[str]) -> None:
    """A few background accounts reply to a planted complaint (neutrally)."""
    rng = draft.rng
    base = draft.when[negs[-1]]
    for _ in range(rng.randint(1, 4)):
        fan = rng.choice(draft.background_by_platform[customer.platform])
        ts = base + timedelta(minutes=rng.uniform(1, 60))
        draft.pending_text(
            "reply", ts, fan, "reply", may_be_negative=False, target=customer,
            in_reply_to=rng.choice(negs), tone="neutral",
        )  # fmt: skip
