"""The feed under construction: one seeded `random.Random`, the accounts, and the events so far.

`FeedDraft` holds what every part of the generator shares (the background traffic in
`scenario_background`, the planted customers in `scenario_planted`, the delivery order in
`scenario_delivery`): unique account ids and handles, realistic event ids, rendering a template
into a text of a known sentiment class, and the brand accounts' apologies. Every random draw
goes through `FeedDraft.rng`, in a fixed order, so the same arguments give the same feed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sense_respond.scenario_model import Account
from sense_respond.scenario_vocabulary import (
    BRAND_DOMAINS,
    BRANDS,
    EMOJI,
    FIRST_NAMES,
    HANDLE_TAGS,
    LAST_NAMES,
    MASTODON_SERVERS,
    SLOTS,
    TEMPLATES,
    template_fields,
)

MIN_HOURS = 17.0
MIN_BACKGROUND = 400

_TWEPOCH_MS = 1_288_834_974_657


@dataclass
class PendingText:
    """A background-authored text whose sentiment class is decided once all texts are known."""

    event: dict[str, Any]
    author: Account
    at: datetime
    domain: str
    may_be_negative: bool
    target: Account | None = None
    brand: str | None = None  # forced brand handle (replying to that brand)
    who: Account | None = None  # forced `{who}` (a mention)
    tone: str | None = None  # forced sentiment class


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FeedDraft:
    """One scenario being built; all randomness comes from one seeded `random.Random`."""

    def __init__(self, seed: int, background: int, start: datetime, hours: float) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be an aware datetime")
        if hours < MIN_HOURS:
            raise ValueError(f"hours must be >= {MIN_HOURS} (negatives_far_apart needs room)")
        if background < MIN_BACKGROUND:
            raise ValueError(f"background must be >= {MIN_BACKGROUND} accounts")
        self.rng = random.Random(seed)
        self.seed = seed
        self.background_count = background
        self.start = start.astimezone(UTC)
        self.hours = float(hours)
        self.end = self.start + timedelta(hours=hours)
        self.entries: list[tuple[datetime, int, dict[str, Any]]] = []  # (at, seq, event)
        self.pending: list[PendingText] = []
        self.text_classes: dict[str, str] = {}  # event id -> sentiment class of its text
        self._id_seq: dict[tuple[str, int], int] = {}
        self._used_ids: set[str] = set()
        self._used_handles: set[str] = set()
        self.background: list[Account] = []
        self.background_by_platform: dict[str, list[Account]] = {}
        self.when: dict[str, datetime] = {}  # event id -> created_at
        self.used_templates: dict[str, set[str]] = {}  # author customer id -> templates used
        # The brand accounts have fixed ids and handles; reserving them before any account is
        # drawn keeps every generated id and handle distinct from theirs.
        self.brands: dict[str, Account] = {}
        self.brand_posts: dict[str, list[tuple[str, datetime]]] = {}  # handle -> (id, at)
        for handle, info in BRANDS.items():
            account = Account("twitter", info["id"], handle, info["followers"])
            self._used_ids.add(account.cid)
            self._used_handles.add(handle.lower())
            self.brands[handle] = account
            self.brand_posts[handle] = []

    def at(self, hours: float) -> datetime:
        """The moment `hours` after the start, to the millisecond."""
        return self.start + timedelta(milliseconds=round(hours * 3_600_000))

    def _event_id(self, platform: str, ts: datetime) -> str:
        ms = int(ts.timestamp() * 1000)
        seq = self._id_seq.get((platform, ms), 0)
        self._id_seq[(platform, ms)] = seq + 1
        if platform == "mastodon":
            return str((ms << 16) | seq)
        return str(((ms - _TWEPOCH_MS) << 22) | (1 << 17) | (3 << 12) | seq)

    def _account_id(self, platform: str) -> str:
        rng = self.rng
        while True:
            if platform == "mastodon":
                value = rng.randint(109_000_000_000_000_000, 113_999_999_999_999_999)
            elif rng.random() < 0.55:
                value = rng.randint(10_000_000, 4_999_999_999)
            else:
                value = rng.randint(700_000_000_000_000_000, 1_890_000_000_000_000_000)
            text = f"{platform}:{value}"
            if text not in self._used_ids:
                self._used_ids.add(text)
                return str(value)

    def _handle(self, platform: str, style: str = "person") -> str:
        rng = self.rng
        for _ in range(1000):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            if style == "hub":
                tag = rng.choice(HANDLE_TAGS)
                base = rng.choice((f"{first}{tag}", f"{first}_{last}_{tag}", f"the{first}{last}"))
            else:
                r = rng.random()
                if r < 0.3:
                    base = f"{first}_{last}"
                elif r < 0.55:
                    base = f"{first}{last}{rng.randint(1, 99)}"
                elif r < 0.7:
                    base = f"{last}{first[0]}"
                elif r < 0.85:
                    base = f"{first}_{rng.choice(HANDLE_TAGS)}"
                else:
                    base = f"{first}{last[:3]}{rng.randint(70, 99)}"
            if len(base) > 15:  # the Twitter limit; draw again rather than truncate
                continue
            if platform == "mastodon":
                base = f"{base}@{rng.choice(MASTODON_SERVERS)}"
            if base.lower() not in self._used_handles:
                self._used_handles.add(base.lower())
                return base
        raise RuntimeError("could not find a unique handle")  # pragma: no cover

    def new_account(self, platform: str, followers: int, style: str = "person") -> Account:
        """An account with a fresh id and handle; a "hub" handle reads like an influencer's."""
        return Account(
            platform, self._account_id(platform), self._handle(platform, style), followers
        )

    def emit(
        self,
        kind: str,
        ts: datetime,
        author: Account,
        *,
        text: str | None = None,
        target: Account | None = None,
        mentions: Sequence[Account] = (),
        in_reply_to: str | None = None,
    ) -> dict[str, Any]:
        """Record a SocialEvent v1 dict created at `ts` (a text kind without `text` gets "")."""
        event: dict[str, Any] = {
            "id": self._event_id(author.platform, ts),
            "platform": author.platform,
            "kind": kind,
            "created_at": _iso(ts),
            "author": author.ref(),
        }
        if kind in ("post", "reply", "quote"):
            event["text"] = text if text is not None else ""
            event["lang"] = "en"
        if target is not None:
            event["target"] = target.ref()
        if mentions:
            event["mentions"] = [{"id": m.id, "handle": m.handle} for m in mentions]
        if in_reply_to is not None:
            event["in_reply_to"] = in_reply_to
        self.entries.append((ts, len(self.entries), event))
        self.when[event["id"]] = ts
        return event

    def render(
        self,
        cls: str,
        domain: str,
        *,
        brand: str | None = None,
        who: Account | None = None,
        reply_to: Account | None = None,
        author: Account | None = None,
        company: str | None = None,
    ) -> tuple[str, list[Account]]:
        """A text of the class and domain, and the accounts it @-mentions (never `reply_to`).

        An author does not repeat a template while it has unused ones of the class and domain.
        """
        rng = self.rng
        pool = TEMPLATES[cls][domain]
        if who is None:
            # Only templates without `{who}` when no account to mention was chosen.
            pool = tuple(t for t in pool if "{who}" not in t) or pool
        else:
            pool = tuple(t for t in pool if "{who}" in t) or pool
        used = self.used_templates.setdefault(author.cid, set()) if author else set()
        template = rng.choice(tuple(t for t in pool if t not in used) or pool)
        used.add(template)
        values: dict[str, str] = {}
        mentioned: list[Account] = []
        for name in template_fields(template):
            if name in values:
                continue
            if name == "emoji":
                values[name] = rng.choice(EMOJI[cls])
            elif name in BRAND_DOMAINS:
                handle = brand if brand is not None else rng.choice(SLOTS[name])[1:]
                values[name] = "@" + handle
                mentioned.append(self.brands[handle])
            elif name == "who":
                assert who is not None
                values[name] = "@" + who.handle
                mentioned.append(who)
            elif name == "company" and company is not None:
                values[name] = company
            else:
                values[name] = rng.choice(SLOTS[name])
        text = " ".join(template.format(**values).split())
        prefix = "@" + reply_to.handle if reply_to is not None else ""
        if prefix and reply_to.platform == "twitter" and prefix not in text and rng.random() < 0.6:
            text = f"{prefix} {text}"
        mentions = [m for m in mentioned if reply_to is None or m.id != reply_to.id]
        return text, mentions

    def text_event(
        self,
        kind: str,
        ts: datetime,
        author: Account,
        cls: str,
        domain: str,
        *,
        target: Account | None = None,
        in_reply_to: str | None = None,
        brand: str | None = None,
        who: Account | None = None,
        company: str | None = None,
    ) -> dict[str, Any]:
        """Emit a post/reply/quote with a rendered text of a known class."""
        text, mentions = self.render(
            cls, domain, brand=brand, who=who, reply_to=target, author=author, company=company
        )
        event = self.emit(
            kind, ts, author, text=text, target=target, mentions=mentions, in_reply_to=in_reply_to
        )
        self.text_classes[event["id"]] = cls
        return event

    def pending_text(
        self,
        kind: str,
        ts: datetime,
        author: Account,
        domain: str,
        *,
        may_be_negative: bool,
        target: Account | None = None,
        in_reply_to: str | None = None,
        brand: str | None = None,
        who: Account | None = None,
        tone: str | None = None,
    ) -> dict[str, Any]:
        """Emit a background text event; `settle_background_texts` renders its text later."""
        event = self.emit(kind, ts, author, target=target, in_reply_to=in_reply_to)
        self.pending.append(
            PendingText(event, author, ts, domain, may_be_negative, target, brand, who, tone)
        )
        return event

    def diurnal_time(self, lo: float = 0.0, hi: float | None = None) -> datetime:
        """A moment in [lo, hi) hours, denser in the (UTC) afternoon and evening."""
        hi = self.hours if hi is None else hi
        rng = self.rng
        while True:
            h = rng.uniform(lo, hi)
            utc_hour = (self.start.hour + self.start.minute / 60 + h) % 24
            # Peak around 18:00 UTC (EU evening, US afternoon), trough around 06:00.
            weight = 0.25 + 0.75 * (0.5 - 0.5 * math.cos(2 * math.pi * (utc_hour - 6) / 24))
            if rng.random() < weight:
                return self.at(h)

    # ------------------------------------------------------------------------------ brand

    def brand_post(self, handle: str, ts: datetime) -> dict[str, Any]:
        account = self.brands[handle]
        event = self.text_event("post", ts, account, "apology", BRANDS[handle]["domain"])
        self.brand_posts[handle].append((event["id"], ts))
        return event

    def brand_reply(
        self, handle: str, customer: Account, post_id: str, ts: datetime, minutes: float = 0
    ) -> dict[str, Any]:
        """The brand apologises to a customer, `minutes` (default: 4-45 min) after their post."""
        rng = self.rng
        brand = self.brands[handle]
        delay = minutes or rng.uniform(4, 45)
        reply_ts = ts + timedelta(minutes=delay)
        event = self.text_event(
            "reply", reply_ts, brand, "apology", BRANDS[handle]["domain"], target=customer,
            in_reply_to=post_id,
        )  # fmt: skip
        if rng.random() < 0.3:
            self.emit("like", reply_ts - timedelta(seconds=rng.uniform(5, 60)), brand,
                      target=customer)  # fmt: skip
        return event

    def support_handle(self, domain: str) -> str:
        """One of the domain's brand accounts, at random."""
        options = [h for h, info in BRANDS.items() if info["domain"] == domain]
        return self.rng.choice(options)
