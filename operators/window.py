"""A customer's sliding event-time window of scored posts.

The window is evaluated at the customer's own event-time clock `now` (the newest `created_at`
seen for that customer, advanced further by `advance()` when the customer is idle): it holds the
posts with `now - length < created_at <= now`. Posts are kept sorted by event time, so a post that
arrives out of order lands in its right place and counts exactly as if it had come in order.
A post older than the window (plus the allowed lateness) is reported as late and ignored.

State is a short list per customer (bounded by `max_posts`), which keeps Bytewax snapshots small.
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass, field
from enum import Enum


@dataclass(frozen=True, slots=True, order=True)
class WindowPost:
    """One post in a window; ordered by event time, then id (a stable tie-break)."""

    ts: float
    event_id: str
    compound: float
    text: str
    matched: tuple[str, ...] = field(default=(), compare=False)
    """The listening terms or brand accounts that made the post about the business."""
    url: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class WindowSummary:
    """The numbers the rule looks at."""

    posts: int
    mean: float
    min: float
    latest: float
    window_seconds: int


class Placement(Enum):
    """What happened to a post offered to the window."""

    ADDED = "added"
    REPLACED = "replaced"
    LATE = "late"


EMPTY = WindowSummary(posts=0, mean=0.0, min=0.0, latest=0.0, window_seconds=0)


class CustomerWindow:
    """Sorted posts within `length_seconds` of the customer's event-time clock."""

    __slots__ = ("_lateness", "_length", "_max_posts", "_summary", "now", "posts")

    def __init__(self, length_seconds: float, allowed_lateness_seconds: float, max_posts: int):
        self._length = float(length_seconds)
        self._lateness = float(allowed_lateness_seconds)
        self._max_posts = max_posts
        self.posts: list[WindowPost] = []
        self.now = float("-inf")
        self._summary: WindowSummary | None = None  # cached until the window changes

    def __getstate__(self) -> tuple:
        return (self._length, self._lateness, self._max_posts, self.posts, self.now)

    def __setstate__(self, state: tuple) -> None:
        self._length, self._lateness, self._max_posts, self.posts, self.now = state
        self._summary = None

    def reconfigure(
        self, length_seconds: float, allowed_lateness_seconds: float, max_posts: int
    ) -> None:
        """Apply changed window settings to a restored window (recovery resume)."""
        self._length = float(length_seconds)
        self._lateness = float(allowed_lateness_seconds)
        self._max_posts = max_posts
        if len(self.posts) > max_posts:
            del self.posts[: len(self.posts) - max_posts]  # the oldest go, as in `add`
        self._summary = None

    def add(self, post: WindowPost) -> Placement:
        """Place a post by its event time; a post with a known id replaces it (an edit)."""
        if post.ts <= self.now - self._length - self._lateness:
            return Placement.LATE
        replaced = self.remove(post.event_id)
        insort(self.posts, post)
        self._summary = None
        if len(self.posts) > self._max_posts:
            del self.posts[0]
        self.advance(post.ts)
        return Placement.REPLACED if replaced else Placement.ADDED

    def remove(self, event_id: str) -> bool:
        """Withdraw a post (deleted by its author); True if it was in the window."""
        for i, kept in enumerate(self.posts):
            if kept.event_id == event_id:
                del self.posts[i]
                self._summary = None
                return True
        return False

    def advance(self, now: float) -> None:
        """Move the clock forward (never back) and drop the posts that fell out of the window."""
        if now <= self.now:
            return
        self.now = now
        self._summary = None
        cutoff = now - self._length
        posts = self.posts
        drop = 0
        while drop < len(posts) and posts[drop].ts <= cutoff:
            drop += 1
        if drop:
            del posts[:drop]

    def _first_inside(self) -> int:
        # Posts are sorted and none is newer than `now`; only a late post that landed before
        # the window's start (kept for the allowed lateness) can sit at the front.
        cutoff = self.now - self._length
        posts = self.posts
        i = 0
        while i < len(posts) and posts[i].ts <= cutoff:
            i += 1
        return i

    def current(self) -> list[WindowPost]:
        """The posts inside the window at `now`, oldest first."""
        return self.posts[self._first_inside() :]

    def summary(self) -> WindowSummary:
        """Count, mean, min and latest compound of the posts in the window at `now`."""
        if self._summary is None:
            compounds = [p.compound for p in self.current()]
            self._summary = (
                WindowSummary(
                    posts=len(compounds),
                    mean=sum(compounds) / len(compounds),
                    min=min(compounds),
                    latest=compounds[-1],
                    window_seconds=int(self._length),
                )
                if compounds
                else EMPTY
            )
        return self._summary

    def is_empty(self) -> bool:
        """True when no post is left: the state can be dropped."""
        return not self.posts
