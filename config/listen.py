"""What the business listens for ([listen]) and how posts about it are scored ([sentiment])."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from config.section import Section

LEXICONS_DIR = Path(__file__).with_name("lexicons")
"""`lexicon_files = ["customer_service"]` reads `lexicons/customer_service.toml`."""

_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")


class ListenSettings(Section):
    """Listening rules: which posts are about the business."""

    keywords: list[str] = Field(
        default_factory=list,
        description="Words, phrases, hashtags and domains that make a post about the business.",
    )
    exclude: list[str] = Field(
        default_factory=list, description="A post matching any of these is not about the business."
    )
    brand_mentions: bool = Field(
        default=True,
        description="Mentions of, replies to and quotes of a brand account are about the business.",
    )
    languages: list[str] = Field(
        default_factory=list,
        description="Only posts whose language is one of these (empty: every language).",
    )
    scope: Literal["post", "sentences"] = Field(
        default="post",
        description="Score the whole post, or only the sentences about the business (+/- one).",
    )

    @field_validator("keywords", "exclude")
    @classmethod
    def _terms(cls, value: list[str]) -> list[str]:
        for term in value:
            if not term.strip().lstrip("#@").strip():
                raise ValueError(f"empty listening term {term!r}")
        return value

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not _LANGUAGE_TAG.match(tag.strip()):
                raise ValueError(f"not a language tag (BCP 47, e.g. 'en', 'pt-BR'): {tag!r}")
        return value


class SentimentSettings(Section):
    """Optional domain lexicon on top of VADER's (off by default: scores stay the reference)."""

    lexicon_files: list[str] = Field(
        default_factory=list, description="TOML files of word = valence overrides."
    )
    lexicon: dict[str, float] = Field(
        default_factory=dict,
        description="Inline word or phrase = valence overrides (VADER scale -4..+4).",
    )

    @field_validator("lexicon")
    @classmethod
    def _valences(cls, value: dict[str, float]) -> dict[str, float]:
        for word, valence in value.items():
            if not word.strip():
                raise ValueError("empty lexicon entry")
            if not -4.0 <= valence <= 4.0:
                raise ValueError(f"lexicon valence of {word!r} must be within -4..+4: {valence}")
        return value


def lexicon_path(entry: str) -> Path:
    """Where a `lexicon_files` entry is: a path (relative to the working directory), or the name
    of a bundled lexicon in `config/lexicons/` (with or without `.toml`)."""
    path = Path(entry).expanduser()
    if path.is_file():
        return path
    bundled = LEXICONS_DIR / (path.name if path.suffix == ".toml" else f"{path.name}.toml")
    if bundled.is_file() and (len(path.parts) == 1 or path.parts[-2:-1] == ("lexicons",)):
        return bundled
    raise FileNotFoundError(f"lexicon file not found: {entry}")


def read_lexicon_file(path: Path) -> dict[str, float]:
    """A lexicon file: TOML with a `[lexicon]` table of word or phrase = valence (-4..+4)."""
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    unknown = set(data) - {"lexicon", "description", "source"}
    if unknown or not isinstance(data.get("lexicon"), dict):
        raise ValueError(
            f"{path}: a lexicon file has a [lexicon] table (unknown keys: {sorted(unknown)})"
        )
    try:
        table = SentimentSettings(lexicon=data["lexicon"]).lexicon
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return table


def load_lexicon(settings: SentimentSettings) -> dict[str, float]:
    """The domain lexicon of these settings: the files in order, then the inline entries (a
    later entry of the same word wins); keys lowercased, whitespace collapsed. Empty: off."""
    merged: dict[str, float] = {}
    tables = [read_lexicon_file(lexicon_path(f)) for f in settings.lexicon_files]
    for table in [*tables, settings.lexicon]:
        for word, valence in table.items():
            merged[" ".join(word.lower().split())] = float(valence)
    return merged
