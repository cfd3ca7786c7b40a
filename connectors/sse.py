"""Server-sent events (the `text/event-stream` wire format of Mastodon's streaming API), parsed
line by line: `event:` / `data:` fields, a blank line ends a frame, comment lines (`:thump`)
are heartbeats. No I/O: `connectors.mastodon` feeds it the lines it reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from operators.events import MAX_LINE_BYTES


@dataclass(slots=True)
class SseFrame:
    """One server-sent event: its `event` name and its `data` (lines joined by newlines)."""

    event: str
    data: str
    oversize: bool = False


@dataclass(slots=True)
class SseParser:
    """Incremental SSE parser: feed it lines (without line terminators)."""

    max_bytes: int = MAX_LINE_BYTES
    heartbeats: int = 0
    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _size: int = 0
    _oversize: bool = False

    def feed(self, line: str) -> SseFrame | None:
        """Consume one line; returns a frame when a blank line completes one."""
        if not line:
            if not self._data and not self._event:
                return None
            frame = SseFrame(self._event or "message", "\n".join(self._data), self._oversize)
            self._event, self._data, self._size, self._oversize = "", [], 0, False
            return frame
        if line.startswith(":"):
            self.heartbeats += 1  # ":thump", ":)": keep-alives
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._size += len(value) + 1
            if self._size > self.max_bytes:
                # Keep only the head: the frame is dead-lettered, memory stays bounded.
                self._oversize = True
            else:
                self._data.append(value)
        # `id:` and `retry:` carry nothing the mapping needs; unknown fields are ignored (spec).
        return None

    def feed_oversize(self, excerpt: str) -> None:
        """A line longer than the line limit was skipped: its frame becomes a dead letter that
        keeps only the line's head."""
        if not self._oversize and not self._data:
            self._data.append(excerpt)
        self._oversize = True
