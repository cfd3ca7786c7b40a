"""What the business listens for ([listen]) and how posts about it are scored ([sentiment])."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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


class SentimentSettings(_Section):
    """Optional domain lexicon on top of VADER's (off by default: scores stay the reference)."""

    lexicon_files: list[str] = Field(
        default_factory=list, description="TOML files of word = valence overrides."
    )
    lexicon: dict[str, float] = Field(
        default_factory=dict, description="Inline word = valence overrides (VADER scale -4..+4)."
    )
