"""Sentiment scoring with VADER, exactly the reference `vaderSentiment` scores.

The analyzer loads its lexicon once (tens of milliseconds); `analyzer()` builds it once per process
and every Bytewax worker in that process shares it (it is read-only after construction).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from operators.records import Sentiment


@cache
def analyzer() -> SentimentIntensityAnalyzer:
    """The process-wide VADER analyzer."""
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
