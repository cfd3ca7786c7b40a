"""What the business listens for ([listen]) and how posts about it are scored ([sentiment])."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListenSettings(_Section):
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


class SentimentSettings(_Section):
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
