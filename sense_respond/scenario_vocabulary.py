"""The words of the synthetic feed: brands, listening rules, text templates and name parts.

Every template of a sentiment class renders, for every choice of its slots and emoji, to a text
whose VADER compound falls in that class's `SENTIMENT_BANDS` entry (tests/test_scenario.py
enumerates them all through `template_renderings()`); the generator relies on that to know each
text's class without scoring it.
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Iterator
from typing import Any

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


def template_fields(template: str) -> list[str]:
    """The `{slot}` names of a template, in order (repeats included)."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def template_renderings() -> Iterator[tuple[str, str, str, str]]:
    """Every text any template can render to: (class, domain, template, text).

    `{who}` stands in for account handles (sample values); generated feeds use real handles.
    """
    for cls, domains in TEMPLATES.items():
        for domain, templates in domains.items():
            for template in templates:
                names = template_fields(template)
                pools = [EMOJI[cls] if name == "emoji" else SLOTS[name] for name in names]
                for combo in itertools.product(*pools):
                    text = template.format(**dict(zip(names, combo, strict=True)))
                    yield cls, domain, template, " ".join(text.split())
