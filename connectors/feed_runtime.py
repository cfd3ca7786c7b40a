"""The Bytewax side of the live feed sources: a partition that drains a `FeedReader`'s queue
(`connectors.feed_reader`) without ever blocking the worker, and a source of one such partition,
resumable at the feed's position.
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from datetime import UTC, datetime, timedelta
from typing import Generic

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from config.feeds import _FeedSection
from connectors import shutdown
from connectors.feed_reader import FeedItem, FeedMetrics, FeedReader, P
from operators.events import SocialEvent
from sense_respond.metrics import SOURCE_LAG

log = logging.getLogger(__name__)


class FeedPartition(StatefulSourcePartition[FeedItem, P | None]):
    """Drains a `FeedReader`'s queue; the position of the last delivered frame is the snapshot."""

    def __init__(
        self, reader: FeedReader[P], batch_size: int, resume_position: P | None = None
    ) -> None:
        self.reader = reader
        self._batch_size = max(1, batch_size)
        self._position: P | None = resume_position
        self._delivered = 0
        self._done = False
        self._idle_poll = timedelta(milliseconds=reader.settings.poll_interval_ms)
        self._next_awake: datetime | None = None
        self._cursor_time: datetime | None = None
        """Event time of the newest event handed to the flow: its age is the source lag."""
        reader.start()

    @property
    def position(self) -> P | None:
        """Position of the newest frame handed to the flow (the resume state)."""
        return self._position

    @property
    def metrics(self) -> FeedMetrics:
        """The reader's counters."""
        return self.reader.metrics

    def _advance(self, position: P | None) -> None:
        """Move the position forward (subclasses decide what "forward" means)."""
        if position is not None:
            self._position = position

    def _finish(self) -> None:
        self._done = True
        self.reader.stop()

    def next_batch(self) -> list[FeedItem]:
        """Items already read by the network thread; never waits on the network."""
        if self._done or shutdown.requested():
            # A stop (SIGTERM/SIGINT) ends the partition; its cursor snapshot resumes it.
            raise StopIteration
        if self.reader.fatal is not None:
            self._finish()
            raise RuntimeError(f"{self.reader.name} source failed") from self.reader.fatal
        settings = self.reader.settings
        # Read the newest position *before* draining: every frame up to it is already queued.
        seen = self.reader.position_seen
        entries = self.reader.drain(self._batch_size)
        out: list[FeedItem] = []
        limit = settings.max_events
        reached = False
        for entry in entries:
            room = None if limit is None else limit - self._delivered - len(out)
            if room is not None and len(entry.items) > room:
                out.extend(entry.items[:room])
                reached = True
                break
            out.extend(entry.items)
            self._advance(entry.position)
            if room is not None and len(entry.items) == room:
                reached = True
                break
        if not reached and self.reader.queue_empty():
            # Frames that mapped to nothing (ignored collections) still move the cursor.
            self._advance(seen)
        self._delivered += len(out)
        self._report_lag(out)
        if reached:
            log.info("%s: max_events=%s delivered, source ends", self.reader.name, limit)
            self._finish()
            return out
        if not out:
            idle = settings.idle_timeout_seconds
            if idle is not None and time.monotonic() - self.reader.last_activity > idle:
                log.info("%s: idle for %.1fs, source ends", self.reader.name, idle)
                self._finish()
                raise StopIteration
            self._next_awake = datetime.now(UTC) + self._idle_poll
        else:
            self._next_awake = None
        return out

    def _report_lag(self, items: list[FeedItem]) -> None:
        """`sense_respond_source_lag{input}`: how old the newest delivered event is (seconds).
        It keeps growing while a feed delivers nothing."""
        for item in items:
            if isinstance(item, SocialEvent) and (
                self._cursor_time is None or item.created_at > self._cursor_time
            ):
                self._cursor_time = item.created_at
        if self._cursor_time is not None:
            lag = (datetime.now(UTC) - self._cursor_time).total_seconds()
            SOURCE_LAG.labels(input=self.reader.input_label).set(max(0.0, lag))

    def next_awake(self) -> datetime | None:
        """Back off a few ms while the queue is empty instead of spinning."""
        return self._next_awake

    def snapshot(self) -> P | None:
        """The position of the newest frame delivered: resume reads after (or just before) it."""
        return self._position

    def close(self) -> None:
        """Stop the reader thread."""
        self._done = True
        self.reader.stop()


class FeedSource(FixedPartitionedSource[FeedItem, P | None], Generic[P]):
    """A live feed as a Bytewax source: one connection, one partition resumable at a position.

    Subclasses name the partition and build the platform's reader and partition.
    """

    part_name = "feed"

    def __init__(self, url: str, settings: _FeedSection, batch_size: int) -> None:
        """`url`: the feed endpoint; `settings`: its section of the settings."""
        self.url = url
        self.settings = settings
        self.batch_size = batch_size
        self.partitions: list[FeedPartition[P]] = []

    def list_parts(self) -> list[str]:
        """One connection, one partition."""
        return [self.part_name]

    @abstractmethod
    def make_partition(self, resume_state: P | None) -> FeedPartition[P]:
        """Connect a reader and wrap it in the platform's partition."""

    @property
    def input_label(self) -> str:
        """This feed as its metrics and dead letters name it (no credentials, no query)."""
        from connectors.inputs import input_name

        return input_name(f"{self.part_name}:{self.url}")

    def build_part(self, step_id: str, for_part: str, resume_state: P | None) -> FeedPartition[P]:
        """Connect, resuming from `resume_state` when given."""
        part = self.make_partition(resume_state)
        part.reader.input_label = self.input_label
        self.partitions.append(part)
        return part
