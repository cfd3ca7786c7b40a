"""Scores are exactly the reference vaderSentiment scores; fidelity on VADER's own human ratings."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from operators.scoring import analyzer, score_text, score_texts

TEXTS = [
    "VADER is smart, handsome, and funny.",
    "The flight was delayed 5 hours and nobody told us anything. NEVER AGAIN!!! 😡",
    "not bad at all :)",
    "My bag is lost. Great job, @AcmeAir...",
    "",
    "ok",
]


@pytest.mark.parametrize("text", TEXTS)
def test_scores_equal_the_reference(text: str) -> None:
    ref = SentimentIntensityAnalyzer().polarity_scores(text)
    s = score_text(text)
    assert (s.compound, s.pos, s.neu, s.neg) == (
        ref["compound"],
        ref["pos"],
        ref["neu"],
        ref["neg"],
    )


def test_batch_equals_single() -> None:
    assert score_texts(TEXTS) == [score_text(t) for t in TEXTS]


def test_analyzer_is_built_once() -> None:
    assert analyzer() is analyzer()


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "vader_groundtruth"


@pytest.mark.shared
@pytest.mark.skipif(not (SHARED / "tweets_GroundTruth.txt").exists(), reason="../shared absent")
def test_correlation_with_human_ratings_on_tweets() -> None:
    # The VADER paper reports r = 0.881; vaderSentiment 3.3.2 gives about 0.872 on this set.
    human, ours = [], []
    with (SHARED / "tweets_GroundTruth.txt").open(encoding="utf-8", errors="replace") as fh:
        for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(row) >= 3:
                human.append(float(row[1]))
                ours.append(score_text(row[2]).compound)
    assert len(human) > 4000
    n = len(human)
    mh, mo = sum(human) / n, sum(ours) / n
    cov = sum((h - mh) * (o - mo) for h, o in zip(human, ours, strict=True))
    r = cov / math.sqrt(sum((h - mh) ** 2 for h in human) * sum((o - mo) ** 2 for o in ours))
    assert r > 0.86
