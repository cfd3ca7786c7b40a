"""Sentiment scoring with VADER: exactly the reference `vaderSentiment` scores, unless a domain
lexicon is configured.

The analyzer loads its lexicon once (tens of milliseconds); `analyzer()` builds it once per process
and every Bytewax worker in that process shares it (it is read-only after construction).

A domain lexicon (`[sentiment]`) is applied on top of VADER's, in a separate analyzer instance, so
the reference analyzer and its scores are never touched. VADER looks words up one token at a time,
so a multi-word entry (`"lost my bag"`, `"on hold"`) cannot go into its lexicon as such. Instead the
`Scorer` rewrites each such phrase in the text, in one pass of one compiled pattern, to a single
token (`lost_my_bag`) that carries the phrase's valence. VADER's rules then apply to it as to any
word: negation (`not on hold`), boosters (`so delayed`), `but`, punctuation emphasis. The phrase's
own words no longer count separately (`lost` in `lost my bag` is part of the phrase's valence).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from operators.records import Sentiment

VALENCE_RANGE = (-4.0, 4.0)
"""VADER's lexicon scale."""


@cache
def analyzer() -> SentimentIntensityAnalyzer:
    """The process-wide reference VADER analyzer (never modified)."""
    return SentimentIntensityAnalyzer()


def score_text(text: str) -> Sentiment:
    """VADER's compound, pos, neu and neg for one text, as written (no preprocessing)."""
    s = analyzer().polarity_scores(text)
    return Sentiment(compound=s["compound"], pos=s["pos"], neu=s["neu"], neg=s["neg"])


def score_texts(texts: Iterable[str]) -> list[Sentiment]:
    """Score many texts with one analyzer lookup (the hot path of the flow)."""
    polarity = analyzer().polarity_scores
    out = []
    for text in texts:
        s = polarity(text)
        out.append(Sentiment(s["compound"], s["pos"], s["neu"], s["neg"]))
    return out


def phrase_token(phrase: str) -> str:
    """The single token a multi-word lexicon entry becomes in the text (`lost_my_bag`)."""
    return "_".join(phrase.lower().split())


class Scorer:
    """VADER with an optional domain lexicon of words and phrases (valence -4..+4).

    Without a lexicon it is the reference analyzer itself; `Scorer()` scores exactly as
    `score_text` does.
    """

    __slots__ = ("_analyzer", "_phrases", "lexicon")

    def __init__(self, lexicon: Mapping[str, float] | None = None) -> None:
        self.lexicon = dict(lexicon or {})
        lo, hi = VALENCE_RANGE
        for word, valence in self.lexicon.items():
            if not word.strip():
                raise ValueError("empty lexicon entry")
            if not lo <= valence <= hi:
                raise ValueError(f"lexicon valence of {word!r} must be within -4..+4: {valence}")
        if not self.lexicon:
            self._analyzer = analyzer()
            self._phrases = None
            return
        custom = SentimentIntensityAnalyzer()
        phrases = []
        for entry, valence in self.lexicon.items():
            words = entry.lower().split()
            custom.lexicon[phrase_token(entry) if len(words) > 1 else words[0]] = float(valence)
            if len(words) > 1:
                phrases.append(words)
        self._analyzer = custom
        self._phrases = _phrase_pattern(phrases) if phrases else None

    @property
    def is_reference(self) -> bool:
        """No lexicon: the scores are exactly the reference `vaderSentiment` scores."""
        return not self.lexicon

    def prepare(self, text: str) -> str:
        """The text as VADER reads it: each lexicon phrase joined into one token."""
        if self._phrases is None:
            return text
        return self._phrases.sub(lambda m: phrase_token(m.group(0)), text)

    def score(self, text: str) -> Sentiment:
        s = self._analyzer.polarity_scores(self.prepare(text))
        return Sentiment(s["compound"], s["pos"], s["neu"], s["neg"])

    def score_many(self, texts: Iterable[str]) -> list[Sentiment]:
        polarity = self._analyzer.polarity_scores
        prepare = self.prepare
        out = []
        for text in texts:
            s = polarity(prepare(text))
            out.append(Sentiment(s["compound"], s["pos"], s["neu"], s["neg"]))
        return out


def _phrase_pattern(phrases: list[list[str]]) -> re.Pattern[str]:
    # Longest first, so that "lost my bag again" wins over "lost my bag"; one pattern for all.
    alternatives = sorted(
        (r"\s+".join(re.escape(w) for w in words) for words in phrases), key=len, reverse=True
    )
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)
