"""A deterministic synthetic social feed with planted ground truth (demo and end-to-end test).

`generate()` builds SocialEvent v1 dicts for a day of customer-service chatter about three
fictional brands (an airline, a telco, a retailer): a few thousand ordinary background accounts
posting, replying, quoting, reposting, liking, following and mentioning each other, plus planted
customers whose outcome under the default rule is known in advance:

  unhappy_influential_followers  >= 10k followers, 3+ clearly negative posts 5-30 min apart: ALERT
  unhappy_influential_graph      ~300 followers, but >= 60 distinct accounts replied to, reposted,
                                 quoted, liked, followed or mentioned them hours earlier: ALERT
  unhappy_no_reach               a negative burst from an account nobody listens to: no alert
  happy_influential              influential, only positive posts: no alert
  one_bad_then_good              influential, one negative post then strongly positive ones: no
  negatives_far_apart            influential, negative posts > 6 h apart (never 2 in one window)
  unhappy_influential_unrelated  influential, 3+ clearly negative posts 5-30 min apart about other
                                 things (a dead phone, a football match, an air freshener called
                                 "Acme Air Freshener", a #TelcoCareers fair): no alert, because
                                 none of it is about a brand under the listening rules
  brand                          the brand's own accounts apologising to everyone: never alerted

Every post a planted customer makes about a brand mentions it: an @mention of a brand account on
Twitter, the brand's name (a listening keyword) on Mastodon. `LISTEN` is the demo's `[listen]`
section and `Scenario.config_toml()` its whole config (`sense_respond/data/demo_config.toml`).

The truth is kept unambiguous by construction (and checked by tests/test_scenario.py with the
real VADER): template texts fall in fixed compound bands; a background account only ever posts a
negative text when it has no other scored post within 7 h of it, so no background window is ever
unhappy; the planted alert customers have nothing but negative posts in their window when the
second and third negative posts land; the graph influencers' inbound interactions all precede
their negative posts by more than an hour (the ranking refreshes every 10 min of event time).

Delivery is realistic: ~1.5 % of events arrive up to 60 s after newer ones, and a few events are
delivered twice (same id). The duplicated events include the single negative post of every
`one_bad_then_good` customer and one negative post of every `negatives_far_apart` customer: if
duplicates were counted twice, those influential customers would (wrongly) alert.

The brand accounts are traps too: their apologies score negative and they have huge audiences,
so without `brand_accounts` they would alert; and they reply to, like and follow the
`unhappy_no_reach` customers, so if brand-authored interactions counted as reach, most of those
would alert as well.

Run `python -m sense_respond.scenario --out FEED.jsonl --truth TRUTH.json --config CONFIG.toml
[--seed N]` to write a feed; the bundled `sense_respond/data/demo_feed.jsonl` (with
`demo_truth.json` and `demo_config.toml`) is the default `generate()` output.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import string
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

DEFAULT_SEED = 7
DEFAULT_BACKGROUND = 3000
DEFAULT_START = datetime(2026, 3, 2, 8, tzinfo=UTC)
DEFAULT_HOURS = 20.0
MIN_HOURS = 17.0
MIN_BACKGROUND = 400

# Planted categories (the values of `Scenario.planted`).
CAT_FOLLOWERS = "unhappy_influential_followers"
CAT_GRAPH = "unhappy_influential_graph"
CAT_NO_REACH = "unhappy_no_reach"
CAT_HAPPY = "happy_influential"
CAT_BAD_THEN_GOOD = "one_bad_then_good"
CAT_FAR_APART = "negatives_far_apart"
CAT_UNRELATED = "unhappy_influential_unrelated"
CAT_BRAND = "brand"
ALERT_CATEGORIES = (CAT_FOLLOWERS, CAT_GRAPH)
CATEGORIES = (
    CAT_FOLLOWERS,
    CAT_GRAPH,
    CAT_NO_REACH,
    CAT_HAPPY,
    CAT_BAD_THEN_GOOD,
    CAT_FAR_APART,
    CAT_UNRELATED,
    CAT_BRAND,
)

LISTEN: dict[str, Any] = {
    # The demo's listening rules: the brands' names, hashtags and domains; the brand accounts'
    # mentions, replies and quotes count through `brand_mentions`.
    "keywords": [
        "acme air", "acmeair", "#acmeair", "acmeair.com",
        "telcocare", "telco care", "#telcocare", "telcocare.com",
        "shopnest", "shop nest", "#shopnest", "shopnest.com",
    ],
    "exclude": ["we're hiring", "acme air freshener"],
    "brand_mentions": True,
    "languages": [],
    "scope": "post",
}  # fmt: skip

# Sentiment classes of the templates and the VADER compound band each must fall in
# (lower, upper, inclusive). tests/test_scenario.py checks every rendering of every template.
SENTIMENT_BANDS: dict[str, tuple[float, float]] = {
    "negative": (-1.0, -0.5),
    "positive": (0.4, 1.0),
    "strong_positive": (0.7, 1.0),
    "neutral": (-0.1999, 0.1999),
    "apology": (-1.0, -0.4),
}

MIN_GRAPH_INBOUND = 62
"""Distinct background accounts interacting with each graph influencer (the brief asks >= 60)."""

BACKGROUND_INBOUND_CAP = 15
"""Distinct accounts interacting with any one background account, at most (hubs get >= 60)."""

NEGATIVE_ISOLATION = timedelta(hours=7)
"""A background negative post has no other scored post by its author within this distance."""

_TWEPOCH_MS = 1_288_834_974_657

# ---------------------------------------------------------------------------------- vocabulary

BRANDS: dict[str, dict[str, Any]] = {
    # handle -> domain, display name, followers. Twitter accounts, ids are fixed below.
    "AcmeAir": {"domain": "air", "followers": 1_240_000, "id": "14873201"},
    "AcmeAir_Support": {"domain": "air", "followers": 312_000, "id": "281947365"},
    "TelcoCare": {"domain": "telco", "followers": 186_000, "id": "95520417"},
    "ShopNest": {"domain": "shop", "followers": 642_000, "id": "1093348122"},
}
BRAND_DOMAINS = ("air", "telco", "shop")

SLOTS: dict[str, tuple[str, ...]] = {
    "air": ("@AcmeAir", "@AcmeAir_Support"),
    "telco": ("@TelcoCare",),
    "shop": ("@ShopNest",),
    "company": ("Acme Air", "TelcoCare", "ShopNest"),
    "flight": ("AC 1423", "AC 208", "AC 77", "AC 5510"),
    "city": ("Denver", "Chicago", "Lisbon", "Toronto", "Dublin"),
    "plan": ("5G Unlimited plan", "fiber broadband", "Home Hub", "family plan", "eSIM"),
    "item": ("standing desk", "air fryer", "headphones", "sofa", "laptop"),
    # Stand-ins for `{who}` (an account handle) when every rendering is enumerated in tests.
    "who": ("@sam_okafor", "@priyanguyen42", "@lena@fosstodon.org"),
}

EMOJI: dict[str, tuple[str, ...]] = {
    "negative": ("", "😡", "🤬", "🙄", "😤", "👎", "😒", "😠"),
    "positive": ("", "🙌", "❤️", "🙏", "💯", "👏", "✈️", "😊", "🎉"),
    "strong_positive": ("", "🙌", "❤️", "🙏", "💯", "😊"),
    "neutral": ("", "👀", "🤔", "📱", "📦", "🧳", "✈️"),
    "apology": ("", "🙏", "😞"),
}

# TEMPLATES[class][domain]: `{air}`/`{telco}`/`{shop}` are the brand's @handle (a mention),
# `{company}` a brand's plain name, `{who}` another account's @handle, `{emoji}` an emoji of the
# class. Domains: air/telco/shop (about a brand, twitter), general (any platform), reply (a
# response to someone else's post), thread (a post that draws an audience).
TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "negative": {
        "air": (
            "{air} flight {flight} delayed AGAIN. 4 hours at the gate and zero updates. "
            "worst airline ever {emoji}",
            "{air} you cancelled {flight} and lost my bag {emoji} never again.",
            "3 hours stuck on the tarmac in {city} and nobody tells us anything. "
            "{air} this is ridiculous {emoji}",
            "{air} not happy. rebooked for tomorrow, no hotel, no food voucher. pathetic {emoji}",
            "2 hours of hold music then the line drops. {air} absolutely useless and rude {emoji}",
            "{air} seriously?? my bag ended up in {city}. terrible service, so angry {emoji}",
            "wtf {air}, bumped off {flight} after checking in on time {emoji}",
            "{air} smh. delayed, then cancelled, then your app crashed. horrible {emoji}",
            "never flying {air} again. rude gate agent, broken seat, lost luggage {emoji}",
            "{air} worst customer service I've ever dealt with. still no refund for {flight} "
            "{emoji}",
            "missed my connection in {city} because {air} can't run an airline. so angry {emoji}",
            "{air} 6 hour delay on {flight} and the staff were rude about it. disgraceful {emoji}",
        ),
        "telco": (
            "{telco} my {plan} has been down all day in {city} and nobody can tell me why. "
            "awful, just awful {emoji}",
            "{telco} charged twice for my {plan} this month and still waiting on a refund. "
            "not happy, this is a scam {emoji}",
            "{telco} 45 min on hold to be told to restart the router. useless, so frustrated "
            "{emoji}",
            "{telco} signal is dead again in {city}. paying for {plan} for this?? "
            "total scam {emoji}",
            "ffs {telco} the {plan} keeps dropping and your chat bot is hopeless {emoji}",
            "third outage this week in {city}. {telco} this is unacceptable and pathetic {emoji}",
            "{telco} nobody showed up for the technician visit AGAIN. "
            "terrible, just terrible {emoji}",
            "switching providers. {telco} overcharged me for {plan} and the refund is stuck. "
            "done with this scam {emoji}",
        ),
        "shop": (
            "{shop} ordered a {item} 3 weeks ago and it's still missing. "
            "disgusted and angry {emoji}",
            "{shop} my {item} arrived broken and the return page keeps failing. terrible {emoji}",
            "{shop} cancelled my {item} order without telling me. really disappointed {emoji}",
            "ugh {shop} wrong {item} delivered AGAIN. this is awful {emoji}",
            "{shop} tracking says delivered, no {item} anywhere. worst delivery ever {emoji}",
            "{shop} refund for my {item} still missing after a month. not happy, this is "
            "ridiculous {emoji}",
        ),
        "general": (
            "Day 3 without internet. {company} keeps hanging up on me. absolutely useless and rude "
            "{emoji}",
            "{company} lost my suitcase and nobody answers the phone. worst week ever {emoji}",
            "Not happy with {company} at all. rude staff, broken promises, no refund {emoji}",
            "honestly {company} is the worst, rude and useless {emoji} never again.",
            "so tired of {company} ignoring complaints. awful company {emoji}",
        ),
        # Unhappy, but about something other than a brand (the listening traps).
        "unrelated": (
            "my phone died, the bus never came and I missed the meeting. horrible day {emoji}",
            "worst referee ever, that match was a disgrace. I hate this league {emoji}",
            "stuck in traffic for 2 hours in {city}. miserable, awful commute {emoji}",
            "my landlord still hasn't fixed the heating. freezing, angry and sick of it {emoji}",
            "this Acme Air Freshener smells awful. worst purchase ever, disgusting {emoji}",
            "the #TelcoCareers fair in {city} was a total disaster. awful, rude organisers {emoji}",
            "this vaccine news is scary. awful side effects, I am so angry {emoji}",
        ),
        "reply": (
            "ugh same thing happened to me, awful {emoji}",
            "that's terrible and awful, they did the same to me last month {emoji}",
            "this is so bad. worst service ever {emoji}",
        ),
    },
    "positive": {
        "air": (
            "{air} thanks so much! crew on {flight} was amazing {emoji}",
            "shoutout to {air} for rebooking me in 5 minutes. great service {emoji}",
            "{air} smooth flight to {city} and we landed early. love it {emoji}",
            "upgraded on {flight} for free?? {air} you're the best {emoji}",
            "{air} the lounge in {city} is really nice, great start to the trip {emoji}",
            "{air} found my bag and delivered it to my hotel in {city}. thank you! {emoji}",
        ),
        "telco": (
            "{telco} my {plan} is finally working, thanks for the quick help {emoji}",
            "loving the {plan} from {telco}, super fast in {city} {emoji}",
            "{telco} technician was friendly and fixed everything in 20 minutes. great job {emoji}",
            "{telco} support chat sorted my bill in 5 min. impressed {emoji}",
        ),
        "shop": (
            "{shop} my {item} arrived a day early and it's perfect {emoji}",
            "{shop} easiest return ever, refund in 2 days. thanks! {emoji}",
            "really happy with my new {item} from {shop} {emoji}",
            "{shop} great customer service, they replaced my {item} right away {emoji}",
        ),
        "general": (
            "good morning! coffee, sunshine and a free afternoon {emoji}",
            "what a great game last night {emoji}",
            "finally home after a great trip {emoji}",
            "my dog learned a new trick today and I'm so proud {emoji}",
            "{company} actually fixed it on the first call. nice surprise, thanks {emoji}",
            "lovely walk by the river today {emoji}",
            "{who} happy birthday!! have a great one {emoji}",
            "{who} thanks for the recommendation, loved it {emoji}",
        ),
        "reply": (
            "love this {emoji}",
            "haha so true {emoji}",
            "great point, thanks for sharing {emoji}",
            "congrats!! well deserved {emoji}",
            "this is awesome {emoji}",
            "great thread, saving this {emoji}",
            "everyone should follow {who}, great tips {emoji}",
        ),
        "thread": (
            "I flew 40 times this year. here are my best tips for {city}, a thread {emoji}",
            "how I got a full refund from {company} in 48 hours, a thread. hope it helps {emoji}",
        ),
    },
    "strong_positive": {
        "air": (
            "{air} update: they refunded me and upgraded my next flight. thanks so much, "
            "really appreciate the great support {emoji}",
            "ok I take it back, {air} was amazing and super helpful. thank you! {emoji}",
            "{air} crew on {flight} were wonderful, best flight I've had in years. "
            "thank you so much {emoji}",
        ),
        "telco": (
            "{telco} tech came out, fixed the {plan} and even helped with my wifi. brilliant, "
            "thank you! {emoji}",
            "{telco} huge thanks, your support team was fantastic and sorted everything {emoji}",
            "{telco} {plan} is back and faster than ever. great service, thank you so much! "
            "{emoji}",
        ),
        "shop": (
            "{shop} replacement {item} arrived today and it's perfect. excellent service, "
            "thank you! {emoji}",
            "{shop} amazing support, full refund in a day. great experience, thanks! {emoji}",
            "{shop} love my new {item}, excellent quality and super fast delivery. thank you! "
            "{emoji}",
        ),
        "general": (
            "what an amazing day, thank you all for the kind words {emoji}",
            "{company} fixed everything and was super friendly. great job, thanks so much! {emoji}",
        ),
    },
    "neutral": {
        "air": (
            "{air} is {flight} on time today?",
            "boarding {flight} to {city} {emoji}",
            "{air} what's the carry-on limit on {flight}?",
            "anyone else on {flight} to {city} tonight? {emoji}",
            "{air} can I change my seat on {flight} in the app?",
            "landed in {city}. taxi or train? {emoji}",
        ),
        "telco": (
            "{telco} is there an outage in {city} right now?",
            "{telco} how do I move my {plan} to a new address?",
            "{telco} does the {plan} include roaming in {city}?",
            "switching my {plan} to {telco} today {emoji}",
        ),
        "shop": (
            "just ordered a {item} from {shop} {emoji}",
            "{shop} when does the {item} ship?",
            "{shop} do you deliver to {city} on weekends?",
            "comparing {item} prices this week {emoji}",
        ),
        "general": (
            "watching the match tonight {emoji}",
            "new blog post is up, link in bio",
            "reading about train travel in {city} {emoji}",
            "Monday again. coffee first {emoji}",
            "anyone know a dentist in {city}?",
            "working from the office today {emoji}",
            "{who} you need to see this {emoji}",
            "{who} are you going to the game tonight?",
            "{who} is the only one talking about this {emoji}",
        ),
        "reply": (
            "same here",
            "which gate?",
            "source?",
            "following for updates {emoji}",
            "wait, really? {emoji}",
            "what time was this?",
            "bookmarking this {emoji}",
        ),
        "thread": (
            "Thread: everything I learned flying 40 times this year. 1/12 {emoji}",
            "I tested every mobile plan in {city} so you don't have to. results below {emoji}",
            "my ranking of airport lounges in {city}, 1/9 {emoji}",
        ),
    },
    "apology": {
        "air": (
            "We're so sorry about the delay and the missed connection, that's really "
            "frustrating. DM us your booking ref {emoji}",
            "We're really sorry your bag didn't arrive in {city}. We know how stressful that "
            "is. DM us the file reference {emoji}",
            "Sorry to hear this. The delays at {city} are due to weather and we apologize for "
            "the frustration {emoji}",
            "So sorry for the trouble with {flight}, that's not the experience we want for you. "
            "DM us {emoji}",
        ),
        "telco": (
            "We're sorry you've been stuck without signal in {city}, that's awful. DM us and "
            "we'll dig in {emoji}",
            "We're so sorry about the outage in {city}. Engineers are on it, sorry for the "
            "disruption {emoji}",
            "Sorry for the frustration with your {plan}, that's not ok. DM us your account "
            "number {emoji}",
        ),
        "shop": (
            "Oh no, we're so sorry your {item} went missing, that's really frustrating. DM us your "
            "order number {emoji}",
            "We're so sorry your {item} arrived damaged, that's really disappointing. DM us your "
            "order number {emoji}",
            "Sorry about the late delivery of your {item}. We know that's frustrating. DM us "
            "{emoji}",
        ),
    },
}

# Name parts of generated handles: none is a VADER lexicon word (checked in tests).
FIRST_NAMES = (
    "sam", "priya", "jordan", "alex", "maria", "dev", "chen", "lena", "omar", "tariq", "nina",
    "marco", "aisha", "ken", "rosa", "ivan", "zoe", "liam", "noor", "ben", "kate", "raj", "yuki",
    "diego", "emma", "felix", "hana", "luca", "mei", "nico", "olga", "pete", "quinn", "ravi",
    "sara", "tom", "uma", "wes", "yara", "zack", "ada", "cal", "dana", "eli", "finn", "gus",
    "ida", "kai", "lou", "max", "ned", "pia", "sid", "tess", "jules", "mara", "theo", "ines",
)  # fmt: skip
LAST_NAMES = (
    "okafor", "rivera", "kim", "patel", "nguyen", "smith", "garcia", "mueller", "rossi", "silva",
    "cohen", "ito", "novak", "haddad", "osei", "berg", "lindqvist", "moreau", "kowalski", "reyes",
    "fischer", "tanaka", "obi", "costa", "walsh", "byrne", "dubois", "jansen", "ahmed", "khan",
    "park", "lopez", "wright", "hughes", "shah", "malik", "ferreira", "sato", "kumar", "zhang",
    "adams", "ward", "mensah", "larsen", "petrov", "romero", "yilmaz", "santos", "ortiz", "wong",
)  # fmt: skip
HANDLE_TAGS = ("travels", "codes", "runs", "photo", "writes", "reads", "cooks", "hq", "irl")
MASTODON_SERVERS = ("mastodon.social", "fosstodon.org", "hachyderm.io", "mstdn.ca")


# ------------------------------------------------------------------------------------ renders


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def template_renderings() -> Iterator[tuple[str, str, str, str]]:
    """Every text any template can render to: (class, domain, template, text).

    `{who}` stands in for account handles (sample values); generated feeds use real handles.
    """
    for cls, domains in TEMPLATES.items():
        for domain, templates in domains.items():
            for template in templates:
                names = _fields(template)
                pools = [EMOJI[cls] if name == "emoji" else SLOTS[name] for name in names]
                for combo in itertools.product(*pools):
                    text = template.format(**dict(zip(names, combo, strict=True)))
                    yield cls, domain, template, " ".join(text.split())


@dataclass(frozen=True, slots=True)
class Account:
    """A generated account."""

    platform: str
    id: str
    handle: str
    followers: int

    @property
    def cid(self) -> str:
        """The customer id, `{platform}:{id}`."""
        return f"{self.platform}:{self.id}"

    def ref(self) -> dict[str, Any]:
        """The account as an event's `author` / `target`."""
        return {"id": self.id, "handle": self.handle, "followers": self.followers}


@dataclass
class _Pending:
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


@dataclass
class Scenario:
    """A generated feed and its ground truth."""

    events: list[dict[str, Any]]
    expected_alerts: set[str]
    planted: dict[str, str]
    brand_accounts: list[str]
    negatives: dict[str, list[str]] = field(default_factory=dict)
    """Customer id -> ids of its planted negative posts, in event-time order."""
    influence_basis: dict[str, str] = field(default_factory=dict)
    """Planted customer id -> "followers", "graph" or "none"."""
    handles: dict[str, str] = field(default_factory=dict)
    """Planted customer id -> handle."""
    followers: dict[str, int] = field(default_factory=dict)
    """Planted customer id -> followers."""
    text_classes: dict[str, str] = field(default_factory=dict)
    """Event id -> sentiment class of its text (every scored event)."""
    duplicate_ids: list[str] = field(default_factory=list)
    """Ids of events delivered twice."""
    out_of_order: int = 0
    """Deliveries that came after an event with a later `created_at`."""
    background_accounts: int = 0
    seed: int = DEFAULT_SEED
    start: datetime = DEFAULT_START
    hours: float = DEFAULT_HOURS
    listen: dict[str, Any] = field(default_factory=lambda: dict(LISTEN))
    """The `[listen]` rules the truth holds under."""

    def jsonl_bytes(self) -> bytes:
        """The feed as JSONL bytes, one event per line in delivery order."""
        return b"".join(orjson.dumps(event) + b"\n" for event in self.events)

    def write_jsonl(self, path: str | Path) -> int:
        """Write the feed as JSONL; returns the number of lines."""
        Path(path).write_bytes(self.jsonl_bytes())
        return len(self.events)

    def config_toml(self) -> str:
        """The settings the truth holds under: the brand accounts and the listening rules."""
        lines = [
            "# The bundled demo's settings (sense_respond/scenario.py writes them).",
            "brand_accounts = " + orjson.dumps(self.brand_accounts).decode(),
            "",
            "[listen]",
        ]
        for key, value in self.listen.items():
            lines.append(f"{key} = " + orjson.dumps(value).decode())
        return "\n".join(lines) + "\n"

    def truth_dict(self) -> dict[str, Any]:
        """The ground truth as JSON-able data (see the module docstring)."""
        kinds = Counter(e["kind"] for e in self.events)
        platforms = Counter(e["platform"] for e in self.events)
        unique = {(e["platform"], e["id"]) for e in self.events}
        alerts = {
            cid: {
                "category": self.planted[cid],
                "handle": self.handles[cid],
                "followers": self.followers[cid],
                "influence": self.influence_basis[cid],
                "negative_event_ids": self.negatives[cid],
                "must_fire_by_event_id": self.negatives[cid][2],
            }
            for cid in sorted(self.expected_alerts)
        }
        planted = {
            cid: {
                "category": cat,
                "handle": self.handles[cid],
                "followers": self.followers[cid],
                "influence": self.influence_basis[cid],
                "negative_event_ids": self.negatives.get(cid, []),
            }
            for cid, cat in sorted(self.planted.items())
        }
        return {
            "version": 1,
            "seed": self.seed,
            "start": self.start.isoformat().replace("+00:00", "Z"),
            "hours": self.hours,
            "brand_accounts": list(self.brand_accounts),
            "listen": dict(self.listen),
            "brand_customer_ids": sorted(c for c, cat in self.planted.items() if cat == CAT_BRAND),
            "expected_alerts": sorted(self.expected_alerts),
            "alerts": alerts,
            "planted": planted,
            "duplicate_event_ids": list(self.duplicate_ids),
            "rule": {
                "min_posts": 2,
                "unhappy_mean_compound": -0.35,
                "influence_percentile": 0.90,
                "followers_threshold": 10_000,
                "window_seconds": 6 * 3600,
            },
            "counts": {
                "lines": len(self.events),
                "unique_events": len(unique),
                "duplicates": len(self.events) - len(unique),
                "out_of_order": self.out_of_order,
                "background_accounts": self.background_accounts,
                "by_kind": dict(sorted(kinds.items())),
                "by_platform": dict(sorted(platforms.items())),
                "by_category": dict(sorted(Counter(self.planted.values()).items())),
            },
        }


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Builder:
    """Builds one scenario; all randomness comes from one seeded `random.Random`."""

    def __init__(self, seed: int, background: int, start: datetime, hours: float) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be an aware datetime")
        if hours < MIN_HOURS:
            raise ValueError(f"hours must be >= {MIN_HOURS} (negatives_far_apart needs room)")
        if background < MIN_BACKGROUND:
            raise ValueError(f"background must be >= {MIN_BACKGROUND} accounts")
        self.rng = random.Random(seed)
        self.seed = seed
        self.n_background = background
        self.start = start.astimezone(UTC)
        self.hours = float(hours)
        self.end = self.start + timedelta(hours=hours)
        self.entries: list[tuple[datetime, int, dict[str, Any]]] = []
        self.pending: list[_Pending] = []
        self.text_classes: dict[str, str] = {}
        self._id_seq: dict[tuple[str, int], int] = {}
        self._used_ids: set[str] = set()
        self._used_handles: set[str] = set()
        self.brands: dict[str, Account] = {}
        self.accounts: list[Account] = []  # background
        self.by_platform: dict[str, list[Account]] = {}
        self.planted: dict[str, str] = {}
        self.negatives: dict[str, list[str]] = {}
        self.basis: dict[str, str] = {}
        self.planted_accounts: dict[str, Account] = {}
        self.duplicate_of: list[str] = []
        self.brand_posts: dict[str, list[tuple[str, datetime]]] = {}
        self.inbound: dict[str, set[str]] = {}  # background customer id -> distinct inbound
        self.when: dict[str, datetime] = {}  # event id -> created_at
        self.used_templates: dict[str, set[str]] = {}  # author customer id -> templates used

    # ------------------------------------------------------------------------ primitives

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

    def _account(self, platform: str, followers: int, style: str = "person") -> Account:
        return Account(
            platform, self._account_id(platform), self._handle(platform, style), followers
        )

    def _emit(
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
        for name in _fields(template):
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
        event = self._emit(
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
        """Emit a background text event; its text is rendered in `_settle_background_texts`."""
        event = self._emit(kind, ts, author, target=target, in_reply_to=in_reply_to)
        self.pending.append(
            _Pending(event, author, ts, domain, may_be_negative, target, brand, who, tone)
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

    # --------------------------------------------------------------------------- accounts

    def make_accounts(self) -> None:
        rng = self.rng
        for handle, info in BRANDS.items():
            account = Account("twitter", info["id"], handle, info["followers"])
            self._used_ids.add(account.cid)
            self._used_handles.add(handle.lower())
            self.brands[handle] = account
            self.brand_posts[handle] = []
        for _ in range(self.n_background):
            platform = "mastodon" if rng.random() < 0.08 else "twitter"
            # Log-normal audience, median ~200; capped below the absolute follower threshold.
            followers = min(9_400, int(math.exp(rng.gauss(math.log(200), 1.15))))
            account = self._account(platform, followers)
            self.accounts.append(account)
            self.by_platform.setdefault(platform, []).append(account)
        # Activity is heavy-tailed: a few background accounts do much of the talking.
        self.activity = [rng.lognormvariate(0.0, 0.75) for _ in self.accounts]

    def plant(self, category: str, basis: str, platform: str = "twitter") -> Account:
        rng = self.rng
        if basis == "followers":
            followers = int(math.exp(rng.uniform(math.log(25_000), math.log(400_000))))
            style = "hub"
        elif basis == "graph":
            followers = rng.randint(250, 420)
            style = "hub"
        else:
            followers = rng.randint(5, 60)
            style = "person"
        account = self._account(platform, followers, style)
        self.planted[account.cid] = category
        self.basis[account.cid] = basis
        self.planted_accounts[account.cid] = account
        return account

    # ------------------------------------------------------------------------- background

    def background_activity(self) -> None:
        rng = self.rng
        n = self.n_background
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
        actions = [(self.diurnal_time(), kind, i) for i, kind in
                   enumerate(rng.choices(kinds, weights=rates, k=n))]  # fmt: skip
        rest = 1.0 - 1.0 / sum(rates)
        for kind, rate in per_account.items():
            k = round(rate * rest * n)
            for author_index in rng.choices(range(n), weights=self.activity, k=k):
                actions.append((self.diurnal_time(), kind, author_index))
        actions.sort(key=lambda a: (a[0], a[1], a[2]))
        # Brand announcements early on give the background something of theirs to reply to.
        for handle in self.brands:
            for _ in range(2):
                self.brand_post(handle, self.at(rng.uniform(0.05, self.hours - 1)))
        recent: dict[str, list[tuple[str, Account]]] = {"twitter": [], "mastodon": []}
        brand_posts = sorted(
            ((ts, eid, h) for h, posts in self.brand_posts.items() for eid, ts in posts),
        )
        for ts, kind, index in actions:
            author = self.accounts[index]
            platform = author.platform
            picked: tuple[str | None, Account] | None = None
            brand: str | None = None
            domain = "reply"
            if kind == "follow":
                picked = self._pick(
                    author, lambda p=platform: (None, rng.choice(self.by_platform[p]))
                )
            elif kind != "post":
                # Interactions with a post: mostly recent background posts, sometimes a brand's.
                on_brand = [p for p in brand_posts if p[0] < ts]
                if platform == "twitter" and on_brand and rng.random() < 0.06:
                    _, post_id, brand = rng.choice(on_brand)
                    picked, domain = (post_id, self.brands[brand]), BRANDS[brand]["domain"]
                elif recent[platform]:
                    picked = self._pick(author, lambda p=platform: rng.choice(recent[p]))
            if kind == "post" or picked is None:
                # A post (also when there is nothing, or nobody left, to interact with).
                domain, who = self._post_flavour(author)
                event = self.pending_text("post", ts, author, domain, may_be_negative=True, who=who)
                recent[platform].append((event["id"], author))
                del recent[platform][:-400]  # people interact with what is recent
                continue
            post_id, target = picked
            if kind == "reply":
                self.pending_text(
                    "reply", ts, author, domain, may_be_negative=True, target=target,
                    in_reply_to=post_id, brand=brand,
                )  # fmt: skip
            elif kind == "quote":
                self.pending_text(
                    "quote", ts, author, domain, may_be_negative=True, target=target, brand=brand
                )
            else:
                self._emit(kind, ts, author, target=target)

    def _pick(
        self, author: Account, draw: Callable[[], tuple[str | None, Account]]
    ) -> tuple[str | None, Account] | None:
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

    def _post_flavour(self, author: Account) -> tuple[str, Account | None]:
        rng = self.rng
        r = rng.random()
        if author.platform == "twitter" and r < 0.3:
            return rng.choice(BRAND_DOMAINS), None
        if r < 0.4:
            picked = self._pick(
                author, lambda: (None, rng.choice(self.by_platform[author.platform]))
            )
            if picked is not None:
                return "general", picked[1]
        return "general", None

    def _settle_background_texts(self) -> None:
        """Decide the sentiment class of every background text, then render them all.

        A negative text is only given to an author with no other scored event within
        `NEGATIVE_ISOLATION`, so it is alone in every 6 h window: no background account is ever
        unhappy under the default rule, whatever its influence.
        """
        rng = self.rng
        times: dict[str, list[tuple[datetime, int]]] = {}
        for n, p in enumerate(self.pending):
            times.setdefault(p.author.cid, []).append((p.at, n))
        for n, p in enumerate(self.pending):
            alone = all(
                abs(t - p.at) >= NEGATIVE_ISOLATION for t, m in times[p.author.cid] if m != n
            )
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
            text, mentions = self.render(
                cls, p.domain, brand=p.brand, who=p.who, reply_to=p.target, author=p.author
            )
            p.event["text"] = text
            if mentions:
                p.event["mentions"] = [{"id": m.id, "handle": m.handle} for m in mentions]
            self.text_classes[p.event["id"]] = cls
            # The brand answers complaints and questions addressed to it (always apologising).
            if p.domain in BRAND_DOMAINS and cls != "positive" and rng.random() < 0.55:
                handle = p.brand or next(
                    (m.handle for m in mentions if m.handle in self.brands),
                    None,
                )
                if handle is not None:
                    self.brand_reply(handle, p.author, p.event["id"], p.at)

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
            self._emit("like", reply_ts - timedelta(seconds=rng.uniform(5, 60)), brand,
                       target=customer)  # fmt: skip
        return event

    def support_handle(self, domain: str) -> str:
        options = [h for h, info in BRANDS.items() if info["domain"] == domain]
        return self.rng.choice(options)

    # ---------------------------------------------------------------------------- planted

    def negative_burst(self, customer: Account, t0: datetime, count: int, domain: str) -> list[str]:
        """`count` negative posts 5-30 min apart starting at `t0`, with brand replies between."""
        rng = self.rng
        ids: list[str] = []
        ts = t0
        last_brand_reply: tuple[str, str] | None = None  # (event id, handle)
        company = rng.choice(SLOTS["company"])  # one grievance per burst
        for k in range(count):
            if k:
                ts += timedelta(minutes=rng.uniform(5, 30))
            if customer.platform != "twitter":
                event = self.text_event(
                    "post", ts, customer, "negative", "general", company=company
                )
                ids.append(event["id"])
                continue
            handle = self.support_handle(domain)
            if last_brand_reply is not None and rng.random() < 0.6:
                reply_id, replied_by = last_brand_reply
                kind = rng.choice(("reply", "quote"))
                event = self.text_event(
                    kind, ts, customer, "negative", domain, target=self.brands[replied_by],
                    in_reply_to=reply_id if kind == "reply" else None, brand=replied_by,
                )  # fmt: skip
            else:
                event = self.text_event("post", ts, customer, "negative", domain, brand=handle)
            ids.append(event["id"])
            if k + 1 < count and rng.random() < 0.7:
                # The brand answers within a few minutes, before the next complaint.
                reply = self.brand_reply(handle, customer, event["id"], ts, rng.uniform(2, 4.5))
                last_brand_reply = (reply["id"], handle)
        return ids

    def graph_audience(self, hub: Account, t0: datetime) -> int:
        """Make `hub` influential through the graph: a viral post at t0, then many distinct
        background accounts interact with it over the next 5 h. Returns the distinct count."""
        rng = self.rng
        viral = self.text_event("post", t0, hub, rng.choice(("neutral", "positive")), "thread")
        fans = rng.sample(self.by_platform[hub.platform], MIN_GRAPH_INBOUND + rng.randint(0, 26))
        # A few fans come back a second time (a reply, then a like ...).
        visits = fans + rng.sample(fans, rng.randint(8, 20))
        kinds = ("reply", "repost", "like", "quote", "mention", "follow")
        weights = (0.3, 0.25, 0.2, 0.1, 0.1, 0.05)
        for fan in visits:
            ts = t0 + timedelta(minutes=rng.uniform(5, 300))
            kind = rng.choices(kinds, weights)[0]
            if kind == "reply":
                self.pending_text(
                    "reply", ts, fan, "reply", may_be_negative=False, target=hub,
                    in_reply_to=viral["id"],
                )  # fmt: skip
            elif kind == "quote":
                self.pending_text("quote", ts, fan, "reply", may_be_negative=False, target=hub)
            elif kind == "mention":
                self.pending_text("post", ts, fan, "general", may_be_negative=False, who=hub)
            else:
                self._emit(kind, ts, fan, target=hub)
        return len(fans)

    def plant_all(self) -> None:
        rng = self.rng
        H = self.hours

        def domain() -> str:
            return rng.choice(BRAND_DOMAINS)

        def minutes(m: float) -> timedelta:
            return timedelta(minutes=m)

        # 1. Unhappy, influential by followers: a complaint burst; one of them on Mastodon.
        for i in range(4):
            platform = "mastodon" if i == 3 else "twitter"
            c = self.plant(CAT_FOLLOWERS, "followers", platform)
            t1 = rng.uniform(2.0, H - 4.0)
            if t1 > 8.0:
                # An upbeat post earlier in the day, well outside the window of the burst.
                d = domain() if platform == "twitter" else "general"
                self.text_event("post", self.at(t1 - rng.uniform(7.0, 8.0)), c, "positive", d)
            negs = self.negative_burst(c, self.at(t1), rng.randint(3, 5), domain())
            self.negatives[c.cid] = negs
            self._sympathy(c, negs)
        # 2. Unhappy, influential through the graph alone.
        for _ in range(4):
            c = self.plant(CAT_GRAPH, "graph")
            t0 = rng.uniform(0.3, H - 12.0)
            self.graph_audience(c, self.at(t0))
            t1 = t0 + rng.uniform(6.75, 7.5)
            negs = self.negative_burst(c, self.at(t1), rng.randint(3, 5), domain())
            self.negatives[c.cid] = negs
            self._sympathy(c, negs)
        # 3. Unhappy with no reach: the brand answers them, nobody else does.
        for _ in range(4):
            c = self.plant(CAT_NO_REACH, "none")
            d = domain()
            t1 = rng.uniform(1.0, H - 3.0)
            negs = self.negative_burst(c, self.at(t1), rng.randint(3, 5), d)
            self.negatives[c.cid] = negs
            last = self.when[negs[-1]]
            for handle in [h for h, info in BRANDS.items() if info["domain"] == d]:
                self.brand_reply(handle, c, negs[-1], last, rng.uniform(5, 40))
                self._emit("follow", last + minutes(rng.uniform(30, 60)), self.brands[handle],
                           target=c)  # fmt: skip
        # 4-6: influential customers who must not alert; the last of each is a graph hub.
        for category in (CAT_HAPPY, CAT_BAD_THEN_GOOD, CAT_FAR_APART):
            for i in range(4):
                basis = "graph" if i == 3 else "followers"
                c = self.plant(category, basis)
                d = domain()
                if category == CAT_FAR_APART:
                    t0 = rng.uniform(0.2, 0.6)
                    t1 = t0 + 6.75 if basis == "graph" else rng.uniform(0.5, 2.0)
                else:
                    t0 = rng.uniform(0.3, H - 10.0)
                    t1 = t0 + rng.uniform(6.75, 7.5) if basis == "graph" else rng.uniform(1, H - 3)
                if basis == "graph":
                    self.graph_audience(c, self.at(t0))
                if category == CAT_HAPPY:
                    ts = self.at(t1)
                    for _ in range(rng.randint(3, 4)):
                        cls = rng.choice(("positive", "strong_positive"))
                        self.text_event("post", ts, c, cls, d)
                        self._emit("like", ts + minutes(rng.uniform(3, 30)),
                                   self.brands[self.support_handle(d)], target=c)  # fmt: skip
                        ts += minutes(rng.uniform(10, 60))
                elif category == CAT_BAD_THEN_GOOD:
                    ts = self.at(t1)
                    handle = self.support_handle(d)
                    bad = self.text_event("post", ts, c, "negative", d, brand=handle)
                    self.negatives[c.cid] = [bad["id"]]
                    self.duplicate_of.append(bad["id"])
                    self.brand_reply(handle, c, bad["id"], ts, rng.uniform(3, 8))
                    ts += minutes(rng.uniform(10, 25))
                    for _ in range(rng.randint(3, 4)):
                        self.text_event("post", ts, c, "strong_positive", d, brand=handle)
                        ts += minutes(rng.uniform(10, 30))
                else:  # CAT_FAR_APART
                    ids = []
                    t = t1
                    while t < H - 0.25:
                        handle = self.support_handle(d)
                        e = self.text_event("post", self.at(t), c, "negative", d, brand=handle)
                        ids.append(e["id"])
                        self.brand_reply(handle, c, e["id"], self.at(t))
                        t += rng.uniform(7.0, 8.5)
                    assert len(ids) >= 2, "negatives_far_apart needs two negative posts"
                    self.negatives[c.cid] = ids
                    self.duplicate_of.append(ids[0])
        # 7. Unhappy and influential, about other things: only listening keeps them quiet.
        for i in range(4):
            basis = "graph" if i == 3 else "followers"
            c = self.plant(CAT_UNRELATED, basis, "mastodon" if i == 2 else "twitter")
            if basis == "graph":
                t0 = rng.uniform(0.3, H - 12.0)
                self.graph_audience(c, self.at(t0))
                t1 = t0 + rng.uniform(6.75, 7.5)
            else:
                t1 = rng.uniform(1.0, H - 3.0)
            negs = self.unrelated_burst(c, self.at(t1), rng.randint(3, 5))
            self.negatives[c.cid] = negs
            self._sympathy(c, negs)

    def unrelated_burst(self, customer: Account, t0: datetime, count: int) -> list[str]:
        """`count` negative posts 5-30 min apart about things that are no brand's business."""
        ids = []
        ts = t0
        for k in range(count):
            if k:
                ts += timedelta(minutes=self.rng.uniform(5, 30))
            event = self.text_event("post", ts, customer, "negative", "unrelated")
            ids.append(event["id"])
        return ids

    def _sympathy(self, customer: Account, negs: list[str]) -> None:
        """A few background accounts reply to a planted complaint (neutrally)."""
        rng = self.rng
        base = self.when[negs[-1]]
        for _ in range(rng.randint(1, 4)):
            fan = rng.choice(self.by_platform[customer.platform])
            ts = base + timedelta(minutes=rng.uniform(1, 60))
            self.pending_text(
                "reply", ts, fan, "reply", may_be_negative=False, target=customer,
                in_reply_to=rng.choice(negs), tone="neutral",
            )  # fmt: skip

    # ---------------------------------------------------------------------------- delivery

    def deliver(self) -> tuple[list[dict[str, Any]], list[str], int]:
        """Delivery order: event time, a few events late by up to 60 s, a few twice."""
        rng = self.rng
        entries = [(ts, seq, e) for ts, seq, e in self.entries if ts < self.end]
        entries.sort(key=lambda x: (x[0], x[1]))
        by_id = {e["id"]: (ts, e) for ts, _, e in entries}
        dup_ids = [i for i in self.duplicate_of if i in by_id]
        alert_negs = [ids[1] for cid, ids in sorted(self.negatives.items())
                      if self.planted[cid] in ALERT_CATEGORIES]  # fmt: skip
        dup_ids += rng.sample(alert_negs, 2)
        special = {a.cid for a in self.planted_accounts.values()}
        special |= {b.cid for b in self.brands.values()}
        plain = [
            e["id"] for _, _, e in entries if f"{e['platform']}:{e['author']['id']}" not in special
        ]
        dup_ids += rng.sample(plain, 5)
        keyed: list[tuple[datetime, int, dict[str, Any]]] = []
        for ts, seq, e in entries:
            late = timedelta(seconds=rng.uniform(1, 60)) if rng.random() < 0.015 else timedelta()
            keyed.append((ts + late, seq, e))
        for n, event_id in enumerate(dup_ids):
            ts, e = by_id[event_id]
            keyed.append((ts + timedelta(seconds=rng.uniform(1, 60)), len(entries) + n, e))
        keyed.sort(key=lambda x: (x[0], x[1]))
        events = [e for _, _, e in keyed]
        out_of_order, newest = 0, ""
        for e in events:
            if e["created_at"] < newest:
                out_of_order += 1
            newest = max(newest, e["created_at"])
        return events, dup_ids, out_of_order

    def build(self) -> Scenario:
        self.make_accounts()
        self.background_activity()
        self.plant_all()
        self._settle_background_texts()
        events, dup_ids, out_of_order = self.deliver()
        planted = dict(self.planted)
        handles = {cid: a.handle for cid, a in self.planted_accounts.items()}
        followers = {cid: a.followers for cid, a in self.planted_accounts.items()}
        basis = dict(self.basis)
        for brand in self.brands.values():
            planted[brand.cid] = CAT_BRAND
            handles[brand.cid] = brand.handle
            followers[brand.cid] = brand.followers
            basis[brand.cid] = "followers"
        kept = {e["id"] for e in events}
        return Scenario(
            events=events,
            expected_alerts={cid for cid, cat in planted.items() if cat in ALERT_CATEGORIES},
            planted=planted,
            brand_accounts=list(self.brands),
            negatives={cid: ids for cid, ids in self.negatives.items()},
            influence_basis=basis,
            handles=handles,
            followers=followers,
            text_classes={i: c for i, c in self.text_classes.items() if i in kept},
            duplicate_ids=dup_ids,
            out_of_order=out_of_order,
            background_accounts=self.n_background,
            seed=self.seed,
            start=self.start,
            hours=self.hours,
        )


def generate(
    seed: int = DEFAULT_SEED,
    background: int = DEFAULT_BACKGROUND,
    start: datetime = DEFAULT_START,
    hours: float = DEFAULT_HOURS,
) -> Scenario:
    """Generate the scenario for `seed`: same arguments, byte-identical feed."""
    return _Builder(seed, background, start, hours).build()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m sense_respond.scenario --out FEED.jsonl [--truth TRUTH.json] [--seed N] ...`"""
    parser = argparse.ArgumentParser(
        prog="python -m sense_respond.scenario",
        description="Write a synthetic SocialEvent v1 feed with planted unhappy influential "
        "customers and its ground truth.",
    )
    parser.add_argument("--out", required=True, help="JSONL feed to write ('-' for stdout)")
    parser.add_argument("--truth", help="JSON ground truth to write")
    parser.add_argument("--config", help="TOML settings to write (brand accounts, [listen])")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--background", type=int, default=DEFAULT_BACKGROUND,
                        help="number of background accounts")  # fmt: skip
    parser.add_argument("--hours", type=float, default=DEFAULT_HOURS)
    args = parser.parse_args(argv)
    try:
        scenario = generate(seed=args.seed, background=args.background, hours=args.hours)
    except ValueError as exc:
        parser.error(str(exc))
    if args.out == "-":
        sys.stdout.buffer.write(scenario.jsonl_bytes())
    else:
        scenario.write_jsonl(args.out)
    if args.truth:
        truth = orjson.dumps(scenario.truth_dict(), option=orjson.OPT_INDENT_2) + b"\n"
        Path(args.truth).write_bytes(truth)
    if args.config:
        Path(args.config).write_text(scenario.config_toml())
    counts = scenario.truth_dict()["counts"]
    print(orjson.dumps(counts).decode(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
