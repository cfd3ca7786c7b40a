"""A customer's sliding event-time window of scored posts.

The window is evaluated at the customer's clock `now`: the newest `created_at` seen for that
customer or the flow's event-time watermark, whichever is later. It holds the posts with
`now - length < created_at <= now`. Posts are kept sorted by event time, so a post that arrives
out of order lands in its right place and counts exactly as if it had come in order.

Lateness (`window.allowed_lateness_seconds`) is measured against the watermark: a post dated
more than that behind the watermark is late, counted (`Placement.LATE`) and dropped, whatever
its customer's own clock says; a post within it counts (the settings keep the lateness within the
window length, so an accepted post is always inside the window). A post older than the window at
`now` could never count either and is late too. What is accepted is therefore decided by the
stream's own times, not by how fast it is read.

State only (a short sorted list and the clock); the length, lateness and bound on posts are the
caller's policy (`WindowSettings`), passed to each call.
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass, field
from enum import Enum

from config.detection import WindowSettings

_STATE_VERSION = 1


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
    """Sorted posts within the window length of the customer's event-time clock."""

    __slots__ = ("_summary", "now", "posts")

    def __init__(self) -> None:
        self.posts: list[WindowPost] = []
        self.now = float("-inf")
        self._summary: WindowSummary | None = None  # cached until the window changes

    def __getstate__(self) -> tuple:
        return (_STATE_VERSION, self.posts, self.now)

    def __setstate__(self, state: tuple) -> None:
        version, self.posts, self.now = state
        if version != _STATE_VERSION:
            raise ValueError(f"unsupported CustomerWindow state version {version!r}")
        self._summary = None

    def add(
        self, post: WindowPost, policy: WindowSettings, watermark: float = float("-inf")
    ) -> Placement:
        """Place a post by its event time; a post with a known id replaces it (an edit).

        An edit keeps its post's event time, and edits come minutes to days after the post: one
        whose post is still in the window replaces it however late it is. Lateness bounds only
        what new posts may still enter the window.
        """
        self.advance(watermark, policy)
        replaced = self.remove(post.event_id)
        if not replaced and (
            post.ts < watermark - policy.allowed_lateness_seconds
            or post.ts <= self.now - policy.length_seconds
        ):
            return Placement.LATE
        insort(self.posts, post)
        self._summary = None
        if len(self.posts) > policy.max_posts:
            del self.posts[: len(self.posts) - policy.max_posts]  # the oldest go
        self.advance(post.ts, policy)
        return Placement.REPLACED if replaced else Placement.ADDED

    def remove(self, event_id: str) -> bool:
        """Withdraw a post (deleted by its author); True if it was in the window."""
        for i, kept in enumerate(self.posts):
            if kept.event_id == event_id:
                del self.posts[i]
                self._summary = None
                return True
        return False

    def advance(self, now: float, policy: WindowSettings) -> None:
        """Move the clock forward (never back) and drop the posts that fell out of the window."""
        if now > self.now:
            self.now = now
            self._summary = None
        cutoff = self.now - policy.length_seconds
        posts = self.posts
        drop = 0
        while drop < len(posts) and posts[drop].ts <= cutoff:
            drop += 1
        if drop:
            del posts[:drop]
            self._summary = None

    def current(self) -> list[WindowPost]:
        """The posts inside the window at `now`, oldest first (advance keeps no others)."""
        return self.posts

    def summary(self, policy: WindowSettings) -> WindowSummary:
        """Count, mean, min and latest compound of the posts in the window at `now`."""
        if self._summary is None:
            compounds = [p.compound for p in self.posts]
            self._summary = (
                WindowSummary(
                    posts=len(compounds),
                    mean=sum(compounds) / len(compounds),
                    min=min(compounds),
                    latest=compounds[-1],
                    window_seconds=int(policy.length_seconds),
                )
                if compounds
                else EMPTY
            )
        return self._summary

    def is_empty(self) -> bool:
        """True when no post is left."""
        return not self.posts
