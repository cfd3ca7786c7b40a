"""The optional domain lexicon ([sentiment]) and `score --explain`."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from config.listen import LEXICONS_DIR, SentimentSettings, lexicon_path, load_lexicon
from config.settings import Settings
from operators.scoring import Scorer, analyzer, phrase_token, score_text
from sense_respond.cli import main

REFERENCE_TEXTS = [
    "VADER is smart, handsome, and funny!",
    "The plot was good, but the characters are uncompelling and the dialog is not great.",
    "Today only kinda sux! But I'll get by, lol",
    "two hours on hold and my flight was cancelled",
    "Catch utf-8 emoji such as 💘 and 💋 and 😁",
]


def test_without_a_lexicon_scores_are_the_reference() -> None:
    scorer = Scorer()
    assert scorer.is_reference
    assert [scorer.score(t) for t in REFERENCE_TEXTS] == [score_text(t) for t in REFERENCE_TEXTS]
    assert scorer.score_many(REFERENCE_TEXTS) == [score_text(t) for t in REFERENCE_TEXTS]


def test_a_lexicon_never_touches_the_reference_analyzer() -> None:
    before = dict(analyzer().lexicon)
    Scorer({"cancelled": -3.0, "on hold": -2.0})
    assert analyzer().lexicon == before
    assert score_text("my flight was cancelled").compound == pytest.approx(-0.25)


@pytest.mark.parametrize(
    ("text", "reference", "with_lexicon"),
    [
        ("two hours on hold", 0.0, "negative"),
        ("Two hours ON   HOLD again", 0.0, "negative"),  # phrases ignore case and spacing
        ("still waiting for a refund", 0.0, "negative"),
        ("not on hold at all today", 0.0, "positive"),  # VADER's negation applies to a phrase
        ("the hold on my account is lifted", 0.0, "neutral"),  # "hold on" is not "on hold"
    ],
)
def test_lexicon_words_and_phrases(text: str, reference: float, with_lexicon: str) -> None:
    scorer = Scorer({"on hold": -1.8, "still waiting": -2.2, "refund": -1.0})
    assert score_text(text).compound == reference
    compound = scorer.score(text).compound
    expected = {"negative": compound < -0.05, "positive": compound > 0.05, "neutral": True}
    assert expected[with_lexicon], compound
    if with_lexicon == "neutral":
        assert compound == 0.0


def test_longest_phrase_wins() -> None:
    scorer = Scorer({"on hold": -1.0, "still on hold": -3.0})
    assert scorer.prepare("I am still on hold") == "I am still_on_hold"
    assert phrase_token("Lost  My Bag") == "lost_my_bag"


@pytest.mark.parametrize("bad", [{"": -1.0}, {"refund": -4.5}, {"great": 9}])
def test_lexicon_values_are_checked(bad: dict) -> None:
    with pytest.raises(ValueError):
        Scorer(bad)
    with pytest.raises(ValueError):
        Settings(sentiment={"lexicon": bad})


def test_files_then_inline_entries(tmp_path: Path) -> None:
    one = tmp_path / "one.toml"
    one.write_text('[lexicon]\nrefund = -1.0\n"on hold" = -2.0\n')
    two = tmp_path / "two.toml"
    two.write_text('description = "x"\n[lexicon]\nrefund = -1.5\n')
    settings = SentimentSettings(lexicon_files=[str(one), str(two)], lexicon={"ON  Hold": -0.5})
    assert load_lexicon(settings) == {"refund": -1.5, "on hold": -0.5}
    assert load_lexicon(SentimentSettings()) == {}


@pytest.mark.parametrize(
    "content", ["refund = -1.0\n", "[lexicon]\nrefund = -7\n", "[lexicon]\nx = 1\n[extra]\n"]
)
def test_bad_lexicon_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ValueError, match=r"bad\.toml"):
        load_lexicon(SentimentSettings(lexicon_files=[str(path)]))


def test_missing_lexicon_file() -> None:
    with pytest.raises(FileNotFoundError):
        lexicon_path("no/such/lexicon.toml")


def test_bundled_customer_service_lexicon() -> None:
    path = lexicon_path("customer_service")
    assert path == LEXICONS_DIR / "customer_service.toml"
    assert lexicon_path("config/lexicons/customer_service.toml").samefile(path)
    lexicon = load_lexicon(SentimentSettings(lexicon_files=["customer_service"]))
    assert {"cancelled", "delayed", "on hold", "refund", "lost my bag"} <= set(lexicon)
    reference = analyzer().lexicon
    for word, valence in lexicon.items():
        # vocabulary VADER scores neutral, or less negative than complaints mean it
        assert word not in reference or valence < reference[word], word
    scorer = Scorer(lexicon)
    complaint = "@AcmeAir flight cancelled, 2 hours on hold and still waiting for a refund"
    assert score_text(complaint).compound > -0.3
    assert scorer.score(complaint).compound < -0.6
    assert scorer.score("thank you for the quick refund, great crew!").compound > 0.5


def test_score_explain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "acme.toml"
    config.write_text(
        'brand_accounts = ["AcmeAir"]\n[listen]\nkeywords = ["acme air"]\n'
        'exclude = ["acme air freshener"]\nscope = "sentences"\n'
        '[sentiment]\nlexicon_files = ["customer_service"]\n'
    )
    texts = [
        "Loving my new phone. Great weather. Sunny. Then @AcmeAir lost my bag again, awful",
        "my phone died, the bus never came",
        "this acme air freshener stinks",
    ]
    assert main(["score", "--explain", "--config", str(config), *texts]) == 0
    rows = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    about, unrelated, excluded = rows
    assert about["relevant"] and about["matched"] == ["@acmeair"]
    assert about["scope"] == "sentences"
    assert about["scored_text"] == "Sunny. Then @AcmeAir lost my bag again, awful"
    assert about["sentiment"]["compound"] < -0.5
    assert about["lexicon_entries"] > 50
    assert not unrelated["relevant"] and not unrelated["scored"]
    assert "sentiment" not in unrelated
    assert excluded["excluded"] == ["acme air freshener"] and not excluded["relevant"]


def test_score_explain_other_language(capsys: pytest.CaptureFixture[str]) -> None:
    text = "@AcmeAir perdieron mi maleta, servicio horrible"
    assert main(["score", "--explain", "--lang", "es", text]) == 0
    row = orjson.loads(capsys.readouterr().out)
    assert row["relevant"] and not row["listening"]  # no rules: every post counts
    assert row["sentiment"] is None and "English" in row["reason"]


def test_score_without_explain_is_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", "two hours on hold"]) == 0
    assert orjson.loads(capsys.readouterr().out)["compound"] == 0.0
