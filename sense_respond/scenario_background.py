"""The ordinary accounts of the synthetic feed and their chatter.

A few thousand background accounts post, reply, quote, repost, like, follow and mention each
other (and sometimes the brands) through the day. Two caps keep the planted truth unambiguous:
no background account ever gets more than `BACKGROUND_INBOUND_CAP` distinct accounts
interacting with it (far below a graph influencer's audience), and a background text is only
negative when its author has no other scored post within `NEGATIVE_ISOLATION`, so no background
window is ever unhappy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta

from sense_respond.scenario_draft import FeedDraft
from sense_respond.scenario_model import Account
from sense_respond.scenario_vocabulary import BRAND_DOMAINS, BRANDS

BACKGROUND_INBOUND_CAP = 15
"""Distinct accounts interacting with any one background account, at most (hubs get >= 60)."""

NEGATIVE_ISOLATION = timedelta(hours=7)
"""A background negative post has no other scored post by its author within this distance."""

_Target = tuple[str | None, Account]
"""An interaction's target: the post interacted with (None for a follow or mention), its author."""


def add_background_accounts(draft: FeedDraft) -> None:
    """Draw `draft.background_count` ordinary accounts, about 8 % of them on Mastodon."""
    rng = draft.rng
    for _ in range(draft.background_count):
        platform = "mastodon" if rng.random() < 0.08 else "twitter"
        # Log-normal audience, median ~200; capped below the absolute follower threshold.
        followers = min(9_400, int(math.exp(rng.gauss(math.log(200), 1.15))))
        account = draft.new_account(platform, followers)
        draft.background.append(account)
        draft.background_by_platform.setdefault(platform, []).append(account)


class _CappedTargets:
    """Draws background targets for interactions, keeping every target's inbound reach capped."""

    def __init__(self) -> None:
        self.inbound: dict[str, set[str]] = {}  # background customer id -> distinct inbound

    def pick(self, author: Account, draw: Callable[[], _Target]) -> _Target | None:
        """Draw a background target for `author`'s interaction, keeping inbound reach capped.

        A target that already has `BACKGROUND_INBOUND_CAP` distinct inbound accounts is drawn
        again: no background account gets anywhere near a graph influencer's audience.
        """
        for _ in range(12):
            post_id, target = draw()
            if target.id == author.id:
                continue
            fans = self.inbound.setdefault(target.cid, set())
            if author.cid in fans or len(fans) < BACKGROUND_INBOUND_CAP:
                fans.add(author.cid)
                return post_id, target
        return None


def add_background_activity(draft: FeedDraft) -> None:
    """The background accounts' day: every one acts at least once, the active ones much more.

    Their texts are left pending (`FeedDraft.pending_text`): `settle_background_texts` decides
    their sentiment once every scored post is known.
    """
    rng = draft.rng
    n = draft.background_count
    # Activity is heavy-tailed: a few background accounts do much of the talking.
    activity = [rng.lognormvariate(0.0, 0.75) for _ in draft.background]
    per_account = {
        "post": 0.78,
        "reply": 0.40,
        "quote": 0.06,
        "repost": 0.20,
        "like": 0.55,
        "follow": 0.12,
    }
    kinds, rates = list(per_account), list(per_account.values())
    # Every background account acts at least once (it is "seen"); the rest of the volume
    # goes to the more active accounts.
    actions = [(draft.diurnal_time(), kind, i) for i, kind in
               enumerate(rng.choices(kinds, weights=rates, k=n))]  # fmt: skip
    rest = 1.0 - 1.0 / sum(rates)
    for kind, rate in per_account.items():
        k = round(rate * rest * n)
        for author_index in rng.choices(range(n), weights=activity, k=k):
            actions.append((draft.diurnal_time(), kind, author_index))
    actions.sort(key=lambda a: (a[0], a[1], a[2]))
    # Brand announcements early on give the background something of theirs to reply to.
    for handle in draft.brands:
        for _ in range(2):
            draft.brand_post(handle, draft.at(rng.uniform(0.05, draft.hours - 1)))
    targets = _CappedTargets()
    by_platform = draft.background_by_platform
    recent: dict[str, list[tuple[str, Account]]] = {"twitter": [], "mastodon": []}
    brand_posts = sorted(
        ((ts, eid, h) for h, posts in draft.brand_posts.items() for eid, ts in posts),
    )
    for ts, kind, index in actions:
        author = draft.background[index]
        platform = author.platform
        picked: _Target | None = None
        brand: str | None = None
        domain = "reply"
        if kind == "follow":
            picked = targets.pick(author, lambda p=platform: (None, rng.choice(by_platform[p])))
        elif kind != "post":
            # Interactions with a post: mostly recent background posts, sometimes a brand's.
            on_brand = [p for p in brand_posts if p[0] < ts]
            if platform == "twitter" and on_brand and rng.random() < 0.06:
                _, post_id, brand = rng.choice(on_brand)
                picked, domain = (post_id, draft.brands[brand]), BRANDS[brand]["domain"]
            elif recent[platform]:
                picked = targets.pick(author, lambda p=platform: rng.choice(recent[p]))
        if kind == "post" or picked is None:
            # A post (also when there is nothing, or nobody left, to interact with).
            domain, who = _post_flavour(draft, targets, author)
            event = draft.pending_text("post", ts, author, domain, may_be_negative=True, who=who)
            recent[platform].append((event["id"], author))
            del recent[platform][:-400]  # people interact with what is recent
            continue
        post_id, target = picked
        if kind == "reply":
            draft.pending_text(
                "reply", ts, author, domain, may_be_negative=True, target=target,
                in_reply_to=post_id, brand=brand,
            )  # fmt: skip
        elif kind == "quote":
            draft.pending_text(
                "quote", ts, author, domain, may_be_negative=True, target=target, brand=brand
            )
        else:
            draft.emit(kind, ts, author, target=target)


def _post_flavour(
    draft: FeedDraft, targets: _CappedTargets, author: Account
) -> tuple[str, Account | None]:
    """A background post's template domain, and the account it mentions (if any)."""
    rng = draft.rng
    r = rng.random()
    if author.platform == "twitter" and r < 0.3:
        return rng.choice(BRAND_DOMAINS), None
    if r < 0.4:
        peers = draft.background_by_platform[author.platform]
        picked = targets.pick(author, lambda: (None, rng.choice(peers)))
        if picked is not None:
            return "general", picked[1]
    return "general", None


def settle_background_texts(draft: FeedDraft) -> None:
    """Decide the sentiment class of every background text, then render them all.

    A negative text is only given to an author with no other scored event within
    `NEGATIVE_ISOLATION`, so it is alone in every 6 h window: no background account is ever
    unhappy under the default rule, whatever its influence. This runs after the planted
    customers are in, since their fans' replies are background texts too.
    """
    rng = draft.rng
    times: dict[str, list[tuple[datetime, int]]] = {}
    for n, p in enumerate(draft.pending):
        times.setdefault(p.author.cid, []).append((p.at, n))
    for n, p in enumerate(draft.pending):
        alone = all(abs(t - p.at) >= NEGATIVE_ISOLATION for t, m in times[p.author.cid] if m != n)
        if p.domain in BRAND_DOMAINS:
            chance = 0.45 if p.brand is not None else 0.35
        else:
            chance = 0.08 if p.event["kind"] == "post" else 0.05
        if p.tone is not None:
            cls = p.tone
        elif p.may_be_negative and alone and rng.random() < chance:
            cls = "negative"
        elif p.domain == "reply" and rng.random() < 0.45:
            cls = "positive"
        else:
            cls = "positive" if rng.random() < 0.35 else "neutral"
        text, mentions = draft.render(
            cls, p.domain, brand=p.brand, who=p.who, reply_to=p.target, author=p.author
        )
        p.event["text"] = text
        if mentions:
            p.event["mentions"] = [{"id": m.id, "handle": m.handle} for m in mentions]
        draft.text_classes[p.event["id"]] = cls
        # The brand answers complaints and questions addressed to it (always apologising).
        if p.domain in BRAND_DOMAINS and cls != "positive" and rng.random() < 0.55:
            handle = p.brand or next(
                (m.handle for m in mentions if m.handle in draft.brands),
                None,
            )
            if handle is not None:
                draft.brand_reply(handle, p.author, p.event["id"], p.at)
