"""The base of every settings section: one place says what a section is."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A settings section: unknown keys are errors (a typo must not pass silently), and the
    values are frozen (settings are built once, at the edge, and only read after that)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
