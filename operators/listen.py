"""Listening: which posts are about the business, and why.

A `Listener` is built once from the `[listen]` rules and the brand accounts, and then answers, for
each post, whether it is about the business (`Relevance`), with the terms and brand accounts that
made it so (`matched`). Only relevant posts are scored and enter a customer's window.

Matching is one pass over the text. Every keyword and exclude term is compiled into one regular
expression shaped like a trie (common prefixes shared, `acme(?:\\s+air|air)`), so the engine walks
at most one branch per character whatever the number of terms: the cost per post stays flat with
1,000 terms (`benchmarks/listen_terms.py` measures the ratio). The same pattern also picks up the
`@handle` mentions written in the text, which are compared with the brand handles by set lookup.

Rules, all on the case-folded text (`str.casefold`, so `STRASSE` matches `straße`):

* A term matches on word boundaries: `united` is not found in `disunited` or `united2`, but is
  next to punctuation or emoji (`✈️united`, `united😤`).
* `#acmeair` and `acmeair` are the same term: each matches the word with and without `#`.
* A phrase (`acme air`) matches across any run of whitespace (`Acme   Air`, a line break).
* A domain (`acmeair.com`) matches as a host name: also `www.acmeair.com` and in URLs, but not
  `acmeair.com.evil.example` or `notacmeair.com`.
* Typographic apostrophes count as `'` (U+2019 in `we\u2019re hiring` is `'`).
* A post is excluded when any exclude term matches, even where it overlaps a keyword (`acme air
  freshener` excludes a post that the keyword `acme air` would have matched).
* Brand mentions (with `brand_mentions`): a structured mention of a brand account, a reply to
  or a quote of one (`target`), or `@h` written in the text, which matches the brand handle `h`
  and `h@instance` (a Mastodon account's local part; a handle configured with its instance,
  `h@instance`, matches only that instance).

Language: VADER is English-only. A relevant post whose `lang` names another language is kept as
relevant but not scorable (its sentiment is unknown) unless `languages` lists that language. When
`languages` is set, posts in other languages are not about the business at all. A post without
`lang` (or `und`) is taken as English.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from config.listen import ListenSettings
from operators.brands import BrandAccounts
from operators.events import SocialEvent

ENGLISH = "en"
UNKNOWN_LANGUAGES = frozenset({"", "und", "unk", "zxx"})
_STRUCTURED_KINDS = frozenset({"reply", "quote"})
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\uff07": "'"})
_DOMAIN = re.compile(r"^[\w-]+(?:\.[\w-]+)+$")
_TERM_EDGE_CHARS = "#@"
_WS = re.compile(r"\s+")
_END = ""  # trie key of "a term ends here"
# A term ends where no word character follows; a domain also where no `.label` follows, so that
# `acmeair.com` is not found in `acmeair.com.evil.example`.
_WORD_END = r"(?!\w)"
_DOMAIN_END = r"(?![\w-]|\.\w)"
_MENTION = r"(?<![\w@.])@(?=(?P<h>\w[\w.\-]*(?:@\w[\w\-]*(?:\.\w[\w\-]*)+)?))"
_SENTENCE_BREAK = re.compile(r"(?<=[.!?…])\s+|\s*\n\s*")


def fold(text: str) -> str:
    """Text as matched: Unicode case folding, typographic apostrophes as `'`."""
    return text.casefold().translate(_APOSTROPHES)


def term_key(term: str) -> str:
    """A configured term as matched: folded, `#`/`@` stripped, whitespace collapsed."""
    return " ".join(fold(term).strip().lstrip(_TERM_EDGE_CHARS).split())


def primary_language(lang: str | None) -> str:
    """The primary subtag of a language tag, lowercased (`pt-BR` -> `pt`); '' when unknown."""
    if not lang:
        return ""
    return lang.strip().replace("_", "-").split("-", 1)[0].lower()


@dataclass(frozen=True, slots=True)
class Relevance:
    """Whether a post is about the business, and why.

    `matched`: the keywords (as configured) and brand accounts (`@handle` or customer id) that
    made it relevant; empty when no listening rule is set (every post counts). `excluded`: the
    exclude terms found. `scorable`: its sentiment can be scored (its language is English or
    listed in `languages`); a relevant post that is not scorable has unknown sentiment.
    """

    relevant: bool
    matched: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    scorable: bool = True
    reason: str = ""


EVERY_POST = Relevance(True, reason="no listening rule set: every post counts")
NOT_ABOUT = Relevance(False, reason="no keyword or brand mention")
"""Most posts of a feed (one shared value: building a frozen dataclass for each costs ~1 µs)."""


@dataclass(frozen=True, slots=True)
class TextMatch:
    """What one pass over a text found."""

    terms: tuple[str, ...]
    excluded: tuple[str, ...]
    handles: tuple[str, ...]

    @property
    def about(self) -> bool:
        """A keyword or a brand handle, and no exclude term."""
        return bool(self.terms or self.handles) and not self.excluded


NOTHING = TextMatch((), (), ())


def _starts_with_host(term: str) -> bool:
    """Whether a term is a host name, or starts with one (`acmeair.com/status`): after a `-`
    it would be another host's."""
    return _DOMAIN.match(term.partition("/")[0]) is not None


class _Trie:
    """Terms as a character trie, emitted as one regular expression."""

    def __init__(self) -> None:
        self.root: dict = {}

    def add(self, key: str, terminal: str) -> None:
        node = self.root
        for ch in key:
            node = node.setdefault(ch, {})
        node[_END] = terminal

    def pattern(self) -> str:
        return _emit(self.root)


def _emit(node: dict) -> str:
    """The regex of a trie node: longer continuations first, then the term ending here."""
    alternatives = []
    for ch in sorted(k for k in node if k != _END):
        child = node[ch]
        run = [ch]
        # Collapse single-child chains into one literal run (shallower, faster pattern).
        while len(child) == 1 and _END not in child:
            (nxt,) = child
            run.append(nxt)
            child = child[nxt]
        literal = "".join(r"\s+" if c == " " else re.escape(c) for c in run)
        alternatives.append(literal + _emit(child))
    if _END in node:
        alternatives.append(node[_END])
    if len(alternatives) == 1:
        return alternatives[0]
    return "(?:" + "|".join(alternatives) + ")"


class Listener:
    """The listening rules, compiled once; `relevance()` is pure and cheap per post."""

    __slots__ = (
        "_bare_handles",
        "_brands",
        "_excludes",
        "_handles",
        "_implied_excludes",
        "_keywords",
        "_languages",
        "_pattern",
        "_platform_handles",
        "_words_only",
        "active",
        "brand_mentions",
        "scope",
    )

    def __init__(self, rules: ListenSettings | None, brands: BrandAccounts) -> None:
        """`rules` None: no `[listen]` section (brand mentions decide, or every post counts)."""
        self._brands = brands
        self.active = rules is not None or bool(brands)
        rules = rules if rules is not None else ListenSettings()
        self.brand_mentions = rules.brand_mentions and bool(brands)
        self.scope = rules.scope
        self._languages = frozenset(primary_language(x) for x in rules.languages) - {""}
        self._handles = frozenset(brands.handles) if self.brand_mentions else frozenset()
        self._bare_handles = frozenset(h for h in self._handles if "@" not in h)
        # Handles configured for one platform (`twitter:acme`): matched in that platform's posts.
        by_platform: dict[str, set[str]] = {}
        if self.brand_mentions:
            for platform, value in brands.platform_values:
                by_platform.setdefault(platform, set()).add(value.lower())
        self._platform_handles = {p: frozenset(v) for p, v in by_platform.items()}
        self._keywords = _keyed(rules.keywords)
        self._excludes = _keyed(rules.exclude)
        self._implied_excludes = self._excludes_within_keywords()
        self._words_only: re.Pattern[str] | None = None  # set by _compile
        self._pattern = self._compile()

    # ------------------------------------------------------------------------------- building

    def _compile(self) -> re.Pattern[str] | None:
        keys = set(self._keywords) | set(self._excludes)
        if not keys and not self._handles and not self._platform_handles:
            return None
        trie, words = _Trie(), _Trie()
        for key in keys:
            trie.add(key, _DOMAIN_END if _DOMAIN.match(key) else _WORD_END)
            if not _starts_with_host(key):
                words.add(key, _WORD_END)
        parts = []
        if self._handles or self._platform_handles:
            parts.append(_MENTION)
        if keys:
            parts.append(r"(?<!\w)(?=(?P<t>" + trie.pattern() + "))")
        # After a `-` a host name is another host (`login-acmeair.com`): the longest term found
        # there is looked for again among the other terms (rare: only on such a match).
        self._words_only = re.compile("(?=(?P<t>" + words.pattern() + "))") if words.root else None
        return re.compile("|".join(parts))

    def _excludes_within_keywords(self) -> dict[str, tuple[str, ...]]:
        """Keywords that contain an exclude term (a match of one is a match of the other).

        One pass reports one term per start position, the longest; a keyword that extends an
        exclude term (`acme air freshener deluxe` over `acme air freshener`) would hide it.
        """
        if not self._excludes:
            return {}
        trie = _Trie()
        for key in self._excludes:
            trie.add(key, _DOMAIN_END if _DOMAIN.match(key) else _WORD_END)
        excludes = re.compile(r"(?<!\w)(?=(" + trie.pattern() + "))")
        implied = {}
        for key in self._keywords:
            if key in self._excludes:
                continue
            found = tuple(
                dict.fromkeys(
                    self._excludes[_norm(m.group(1))]
                    for m in excludes.finditer(key)
                    if not (
                        m.start() and key[m.start() - 1] == "-" and _starts_with_host(m.group(1))
                    )
                )
            )
            if found:
                implied[key] = found
        return implied

    # ------------------------------------------------------------------------------- matching

    def match_text(self, text: str, platform: str | None = None) -> TextMatch:
        """Keywords, exclude terms and brand handles in one pass over the folded text (brand
        handles configured for one platform only count in that `platform`'s posts)."""
        pattern = self._pattern
        if pattern is None or not text:
            return NOTHING
        terms: dict[str, None] = {}
        excluded: dict[str, None] = {}
        handles: dict[str, None] = {}
        keywords, excludes = self._keywords, self._excludes
        folded = fold(text)
        for m in pattern.finditer(folded):
            if m.lastgroup == "t":  # a term (else "h": an @mention)
                key = _norm(m.group("t"))
                at = m.start()
                if at and folded[at - 1] == "-" and _starts_with_host(key):
                    other = self._words_only.match(folded, at) if self._words_only else None
                    if other is None:
                        continue
                    key = _norm(other.group("t"))
                if key in excludes:
                    excluded[excludes[key]] = None
                elif key in keywords:
                    terms[keywords[key]] = None
                    for implied in self._implied_excludes.get(key, ()):
                        excluded[implied] = None
                continue
            handle = self._brand_handle(m.group("h"), platform)
            if handle is not None:
                handles["@" + handle] = None
        if not (terms or excluded or handles):
            return NOTHING
        return TextMatch(tuple(terms), tuple(excluded), tuple(handles))

    def _brand_handle(self, written: str | None, platform: str | None) -> str | None:
        """The brand handle an `@mention` written in the text names, if any."""
        if written is None:
            return None
        token = written.rstrip(".-")
        local, at, _instance = token.partition("@")
        if token in self._handles or (at and local in self._bare_handles):
            return local if token not in self._handles else token
        only_here = self._platform_handles.get(platform or "", frozenset())
        if token in only_here:
            return token
        if at and local in only_here:
            return local
        return None

    def structured_brands(self, event: SocialEvent) -> tuple[str, ...]:
        """Brand accounts the event mentions, replies to or quotes (structured fields)."""
        if not self.brand_mentions:
            return ()
        found: dict[str, None] = {}
        matches = self._brands.matches
        for mention in event.mentions:
            if matches(event.account_id(mention.id), mention.handle):
                found[_account_label(event.account_id(mention.id), mention.handle)] = None
        target = event.target
        if (
            target is not None
            and event.kind in _STRUCTURED_KINDS
            and matches(event.account_id(target.id), target.handle)
        ):
            found[_account_label(event.account_id(target.id), target.handle)] = None
        return tuple(found)

    def relevance(self, event: SocialEvent) -> Relevance:
        """Whether this post is about the business (and whether its sentiment can be scored)."""
        lang = primary_language(event.lang)
        known = lang not in UNKNOWN_LANGUAGES
        if known and self._languages and lang not in self._languages:
            return Relevance(False, reason=f"language {lang!r} not in listen.languages")
        scorable = not known or lang == ENGLISH or lang in self._languages
        if not self.active:
            return EVERY_POST if scorable else Relevance(True, scorable=False, reason=_NOT_EN)
        found = self.match_text(event.text or "", event.platform)
        if found.excluded:
            return Relevance(False, excluded=found.excluded, reason="exclude term")
        matched = found.terms + tuple(h for h in found.handles if h not in found.terms)
        structured = self.structured_brands(event)
        if structured:
            matched += tuple(b for b in structured if b not in matched)
        if not matched:
            return NOT_ABOUT
        return Relevance(True, matched, scorable=scorable, reason="" if scorable else _NOT_EN)

    # --------------------------------------------------------------------------- sentence scope

    def text_to_score(self, text: str, platform: str | None = None) -> str:
        """What VADER scores: the whole text (scope `post`), or the sentences about the
        business plus the one before and after each (scope `sentences`); the whole text when
        no single sentence mentions the business (a structured mention, a term split over two
        sentences) or when every sentence is selected."""
        if self.scope != "sentences" or self._pattern is None:
            return text
        sentences = split_sentences(text)
        if len(sentences) < 2:
            return text
        about = [i for i, s in enumerate(sentences) if self.match_text(s, platform).about]
        if not about:
            return text
        chosen = sorted({j for i in about for j in (i - 1, i, i + 1) if 0 <= j < len(sentences)})
        if len(chosen) == len(sentences):
            return text
        return " ".join(sentences[j] for j in chosen)


_NOT_EN = "not English: sentiment unknown (VADER is English-only)"


def split_sentences(text: str) -> list[str]:
    """Sentences at `.`, `!`, `?`, `…` followed by whitespace, and at line breaks."""
    return [s for s in _SENTENCE_BREAK.split(text.strip()) if s]


def _keyed(terms: Iterable[str]) -> dict[str, str]:
    """Matching key -> the term as configured (the first spelling wins)."""
    out: dict[str, str] = {}
    for term in terms:
        key = term_key(term)
        if key:
            out.setdefault(key, term.strip())
    return out


def _norm(matched: str) -> str:
    # The pattern matches any run of whitespace inside a phrase; keys have single spaces.
    return " ".join(matched.split()) if _WS.search(matched) else matched


def _account_label(customer_id: str, handle: str | None) -> str:
    return "@" + handle.strip().lstrip("@").lower() if handle else customer_id
