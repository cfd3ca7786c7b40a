"""Listening rules: table tests of the matcher and of a post's relevance."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime

import pytest

from config.listen import ListenSettings
from config.settings import Settings
from operators.brands import BrandAccounts
from operators.events import SocialEvent
from operators.listen import Listener, fold, primary_language, split_sentences, term_key

T0 = datetime(2026, 3, 2, 10, tzinfo=UTC)

ACME = ListenSettings(
    keywords=["acme air", "acmeair", "#acmeair", "acmeair.com", "united", "Straße", "#FlyAcme"],
    exclude=["we're hiring", "acme air freshener"],
)
BRANDS = BrandAccounts.parse(["AcmeAir", "acme_support@mastodon.social", "twitter:95520417"])


def listener(rules: ListenSettings | None = ACME, brands: BrandAccounts = BRANDS) -> Listener:
    return Listener(rules, brands)


def post(text: str, **extra) -> SocialEvent:
    fields = {
        "id": "p1",
        "platform": "twitter",
        "kind": "post",
        "created_at": T0,
        "author": {"id": "42", "handle": "someone"},
        "text": text,
    }
    fields.update(extra)
    return SocialEvent.model_validate(fields)


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        # phrases, with any whitespace
        ("I flew Acme Air today", ("acme air",)),
        ("I flew ACME   AIR today", ("acme air",)),
        ("acme\nair lost it", ("acme air",)),
        ("acme airline", ()),
        # word boundaries
        ("flew United again", ("united",)),
        ("the disunited states", ()),
        ("united2 is a username", ()),
        ("reunited with my bag", ()),
        ("UNITED!!!", ("united",)),
        ("(united)", ("united",)),
        # hashtags with and without '#', whichever was configured
        ("#AcmeAir why", ("acmeair",)),
        ("acmeair why", ("acmeair",)),
        ("#flyacme always", ("#FlyAcme",)),
        ("flyacme always", ("#FlyAcme",)),
        ("#flyacmenow", ()),
        # emoji right next to terms
        ("✈️united😤", ("united",)),
        ("😡acmeair😡", ("acmeair",)),
        ("👍#AcmeAir👍", ("acmeair",)),
        # domains
        ("see acmeair.com/refunds", ("acmeair.com",)),
        ("see https://www.AcmeAir.com/x?y=1", ("acmeair.com",)),
        ("mail me at bob@acmeair.com", ("acmeair.com",)),
        # Unicode case folding
        ("STRASSE closed", ("Straße",)),
        ("die straße", ("Straße",)),
        ("nothing here at all", ()),
        ("", ()),
    ],
)
def test_keywords(text: str, terms: tuple[str, ...]) -> None:
    assert listener().match_text(text).terms == terms


@pytest.mark.parametrize(
    ("text", "excluded"),
    [
        ("We're hiring at Acme Air!", ("we're hiring",)),
        ("we\u2019re hiring (typographic apostrophe) at acmeair", ("we're hiring",)),
        ("Acme Air Freshener, pine scent", ("acme air freshener",)),
        ("acme air lost my bag", ()),
        ("we are hiring at acme air", ()),
    ],
)
def test_excludes(text: str, excluded: tuple[str, ...]) -> None:
    found = listener().match_text(text)
    assert found.excluded == excluded
    assert found.about is (not excluded)


def test_exclude_hidden_under_a_longer_keyword_still_excludes() -> None:
    rules = ListenSettings(keywords=["acme air freshener deluxe"], exclude=["acme air freshener"])
    found = listener(rules).match_text("the acme air freshener deluxe is here")
    assert found.excluded == ("acme air freshener",)
    assert not found.about


def test_domain_is_not_found_inside_another_host() -> None:
    rules = ListenSettings(keywords=["acmeair.com"])
    assert listener(rules).match_text("phish at acmeair.com.evil.example").terms == ()
    assert listener(rules).match_text("phish at notacmeair.com").terms == ()
    assert listener(rules).match_text("phish at https://login-acmeair.com/win").terms == ()
    assert listener(rules).match_text("see www.acmeair.com/x").terms == ("acmeair.com",)
    # the word keyword still matches after a hyphen; only the host name is another one
    both = ListenSettings(keywords=["acmeair.com", "acmeair"])
    assert listener(both).match_text("login-acmeair.com").terms == ("acmeair",)
    assert listener(both).match_text("acmeair.com").terms == ("acmeair.com",)
    # a longer term that starts with the domain still wins at its position
    jobs = listener(ListenSettings(keywords=["acme.com"], exclude=["acme.com/jobs"]))
    assert jobs.match_text("apply at acme.com/jobs today").excluded == ("acme.com/jobs",)
    # an exclude domain inside a keyword after a `-` is another host: not implied
    phish = listener(ListenSettings(keywords=["login-acmeair.com"], exclude=["acmeair.com"]))
    found = phish.match_text("my login-acmeair.com is broken")
    assert (found.terms, found.excluded) == (("login-acmeair.com",), ())
    # a term that starts with a host name is another host's after a `-` too
    status = listener(ListenSettings(keywords=["acmeair.com/status"], exclude=["acmeair.com"]))
    other = status.match_text("foo-acmeair.com/status")
    assert (other.terms, other.excluded) == ((), ())
    ours = status.match_text("see acmeair.com/status")
    assert (ours.terms, ours.excluded) == (("acmeair.com/status",), ("acmeair.com",))
    assert listener(rules).match_text("visit acmeair.com.").terms == ("acmeair.com",)


@pytest.mark.parametrize(
    ("text", "handles"),
    [
        ("@AcmeAir lost my bag", ("@acmeair",)),
        ("hey @acmeair.", ("@acmeair",)),
        ("@AcmeAir@mastodon.social is slow", ("@acmeair",)),  # local part of a bare handle
        ("@AcmeAir@other.example too", ("@acmeair",)),
        ("@acme_support@mastodon.social help", ("@acme_support@mastodon.social",)),
        ("@acme_support help", ()),  # configured with its instance: only that instance
        ("@acme_support@evil.example help", ()),
        ("@AcmeAirFan said so", ()),
        ("bob@acmeair is an address-ish thing", ()),
        ("no mention at all", ()),
    ],
)
def test_handles_in_text(text: str, handles: tuple[str, ...]) -> None:
    assert listener(ListenSettings()).match_text(text).handles == handles


@pytest.mark.parametrize(
    ("event", "relevant", "matched"),
    [
        (post("Acme Air lost my bag"), True, ("acme air",)),
        (post("@AcmeAir lost my bag"), True, ("acmeair", "@acmeair")),
        (post("my phone died, the bus never came"), False, ()),
        (post("We're hiring: Acme Air cabin crew"), False, ()),
        (
            post("lost my bag", mentions=[{"id": "95520417", "handle": "TelcoBrand"}]),
            True,
            ("@telcobrand",),
        ),
        (
            post("still waiting", kind="reply", target={"id": "95520417"}, in_reply_to="x"),
            True,
            ("twitter:95520417",),
        ),
        (
            post("great thread", kind="quote", target={"id": "7", "handle": "AcmeAir"}),
            True,
            ("@acmeair",),
        ),
        # a like or repost of the brand is not a post about it (and carries no text to score)
        (post("nice", kind="repost", target={"id": "95520417"}), False, ()),
        (post("awful", mentions=[{"id": "5", "handle": "someone_else"}]), False, ()),
    ],
)
def test_relevance(event: SocialEvent, relevant: bool, matched: tuple[str, ...]) -> None:
    r = listener().relevance(event)
    assert r.relevant is relevant
    assert r.matched == matched


def test_brand_mentions_off_ignores_brand_accounts() -> None:
    rules = ListenSettings(keywords=["acme air"], brand_mentions=False)
    assert not listener(rules).relevance(post("@AcmeAir lost my bag")).relevant
    assert listener(rules).relevance(post("acme air lost my bag")).relevant


def test_without_rules_every_post_counts() -> None:
    bare = Listener(None, BrandAccounts())
    assert not bare.active
    r = bare.relevance(post("my phone died, the bus never came"))
    assert r.relevant and r.scorable and r.matched == ()


def test_brand_accounts_alone_decide_by_mention() -> None:
    brands_only = Listener(None, BrandAccounts.parse(["AcmeAir"]))
    assert brands_only.active
    assert brands_only.relevance(post("@AcmeAir two hours on hold")).relevant
    assert not brands_only.relevance(post("acme air two hours on hold")).relevant
    assert not brands_only.relevance(post("my phone died")).relevant


@pytest.mark.parametrize(
    ("languages", "lang", "relevant", "scorable"),
    [
        ([], None, True, True),
        ([], "en", True, True),
        ([], "en-GB", True, True),
        ([], "und", True, True),
        ([], "es", True, False),
        ([], "de", True, False),
        (["en"], "en-US", True, True),
        (["en"], "fr", False, False),
        (["en"], None, True, True),
        (["en", "es"], "es", True, True),  # listed: scored (with a lexicon of your own, say)
    ],
)
def test_languages(languages: list[str], lang: str | None, relevant: bool, scorable: bool) -> None:
    rules = ListenSettings(keywords=["acme air"], languages=languages)
    r = listener(rules).relevance(post("acme air perdió mi maleta", lang=lang))
    assert r.relevant is relevant
    if relevant:
        assert r.scorable is scorable


def test_thousand_terms_all_found_on_their_boundaries() -> None:
    rng = random.Random(3)
    words = sorted(
        {"".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 9))) for _ in range(1200)}
    )
    terms = words[:1000]
    phrases = [f"{a} {b}" for a, b in zip(terms[::2], terms[1::2], strict=True)]
    rules = ListenSettings(keywords=terms[:500] + phrases[250:] + ["#" + t for t in terms[500:600]])
    big = listener(rules, BrandAccounts())
    assert len(rules.keywords) == 850
    for term in terms[:600]:
        assert big.match_text(f"so... {term.upper()}! 😤").terms == (
            term if term in terms[:500] else "#" + term,
        )
        assert big.match_text(f"x{term}x {term}s").terms == ()
    for phrase in phrases[250:]:
        assert phrase in big.match_text(f"about {phrase.replace(' ', '  ')} today").terms
    # one pass finds several terms of one post, in order
    text = f"{terms[3]}, then #{terms[510]} and {phrases[300]}"
    assert big.match_text(text).terms == (terms[3], "#" + terms[510], phrases[300])


def test_one_compiled_pattern_for_all_terms() -> None:
    big = listener(ListenSettings(keywords=[f"term{i}" for i in range(1000)]), BrandAccounts())
    # a trie: the thousand terms share their prefix once, not a thousand alternatives
    assert big._pattern.pattern.count("term") == 1


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("One. Two! Three? Four… five", ["One.", "Two!", "Three?", "Four…", "five"]),
        ("line one\nline two", ["line one", "line two"]),
        ("no break here", ["no break here"]),
        ("version 2.5 is out", ["version 2.5 is out"]),
    ],
)
def test_split_sentences(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences


def test_sentence_scope_selects_mentions_and_neighbours() -> None:
    rules = ListenSettings(keywords=["acme air"], scope="sentences")
    listen = listener(rules)
    text = "A. B. C. Acme Air lost my bag. D. E."
    assert listen.text_to_score(text) == "C. Acme Air lost my bag. D."
    assert listen.text_to_score("A. B. nothing here.") == "A. B. nothing here."  # no sentence
    assert listen.text_to_score("A. acme air. B.") == "A. acme air. B."  # every sentence
    post_scope = listener(ListenSettings(keywords=["acme air"]))
    assert post_scope.text_to_score(text) == text


def test_helpers() -> None:
    assert fold("İSTANBUL Straße") == "i̇stanbul strasse"
    assert term_key("  #Acme   Air ") == "acme air"
    assert primary_language("pt_BR") == "pt"
    assert primary_language(None) == ""


@pytest.mark.parametrize(
    "bad",
    [
        {"listen": {"keywords": ["  "]}},
        {"listen": {"keywords": ["#"]}},
        {"listen": {"keywords": ["acme"], "languages": ["english please"]}},
        {"listen": {"keywords": [], "brand_mentions": True}},  # no brand accounts: matches nothing
        {"listen": {"keywords": [], "brand_mentions": False}, "brand_accounts": ["acme"]},
        {"listen": {"keywords": ["acme"], "scope": "paragraph"}},
        {"listen": {"keywords": ["acme"], "unknown": 1}},
    ],
)
def test_listen_settings_reject(bad: dict) -> None:
    with pytest.raises(ValueError):
        Settings(**bad)


def test_listen_settings_accept() -> None:
    s = Settings(listen={"keywords": [], "brand_mentions": True}, brand_accounts=["acme"])
    assert s.listen is not None and s.listen.brand_mentions


def test_the_issue_example_scores_negative_under_sentence_scope() -> None:
    from operators.scoring import Scorer

    listen = listener(ListenSettings(keywords=["acme air"], scope="sentences"))
    text = "Loving my new phone. But @AcmeAir lost my bag again, awful"
    assert Scorer().score(listen.text_to_score(text)).compound < -0.05


def _naive_terms(keys: list[str], text: str) -> set[str]:
    """The matcher's contract, the slow way: at each start position, the longest term there."""
    import re

    from operators.listen import _DOMAIN, _DOMAIN_END, _WORD_END

    patterns = {
        key: re.compile(
            r"\s+".join(re.escape(w) for w in key.split(" "))
            + (_DOMAIN_END if _DOMAIN.match(key) else _WORD_END)
        )
        for key in keys
    }
    folded = fold(text)
    found: set[str] = set()
    for pos in range(len(folded)):
        if pos and (folded[pos - 1].isalnum() or folded[pos - 1] == "_"):
            continue
        best = max(
            ((m.end() - pos, key) for key, p in patterns.items() if (m := p.match(folded, pos))),
            default=None,
        )
        if best is not None:
            found.add(best[1])
    return found


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_WORDS = st.text(alphabet="abé", min_size=1, max_size=3)
_TERMS = st.lists(
    st.builds(
        lambda words, dot: (".".join if dot else " ".join)(words),
        st.lists(_WORDS, min_size=1, max_size=3),
        st.booleans(),
    ),
    min_size=1,
    max_size=8,
    unique=True,
)


@settings(max_examples=300, deadline=None)
@given(terms=_TERMS, text=st.text(alphabet="abéAB .#@-_\n😤", max_size=40))
def test_one_pass_finds_what_a_loop_over_every_term_finds(terms: list[str], text: str) -> None:
    keys = list(dict.fromkeys(term_key(t) for t in terms))
    found = Listener(ListenSettings(keywords=terms), BrandAccounts()).match_text(text)
    assert {term_key(t) for t in found.terms} == _naive_terms(keys, text)


def test_listening_rules_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from config.settings import load_settings

    monkeypatch.setenv("SR_BRAND_ACCOUNTS", '["acme"]')
    monkeypatch.setenv("SR_LISTEN__KEYWORDS", '["acme air"]')
    monkeypatch.setenv("SR_LISTEN__SCOPE", "sentences")
    s = load_settings()
    assert s.listen is not None and s.listen.keywords == ["acme air"]
    assert s.listen.scope == "sentences"
    monkeypatch.setenv("SR_LISTEN__KEYWORD", '["typo"]')
    with pytest.raises(ValueError, match="SR_LISTEN__KEYWORD"):
        load_settings()


def test_handles_configured_for_one_platform_count_only_there() -> None:
    # `platform:handle` entries: a text `@acme_care` is the brand on that platform only
    listen = Listener(ListenSettings(), BrandAccounts.parse(["twitter:acme_care"]))
    assert listen.relevance(post("@acme_care help")).matched == ("@acme_care",)
    assert not listen.relevance(post("@acme_care help", platform="mastodon")).relevant
