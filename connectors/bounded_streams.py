"""Bounded reading of hostile HTTP bodies: decoding a `Content-Encoding` piece by piece, reading
a body only up to a limit, and splitting a stream into lines without ever buffering more than
the line limit. Used by the live feed readers (`connectors.jetstream`, `connectors.mastodon`).

A server may send a decompression bomb, a body that never ends or a line that never ends; none
of them may make this process hold more than a bounded amount of memory.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx

from operators.events import RAW_EXCERPT_BYTES

DECODE_PIECE_BYTES = 64 * 1024
"""Largest piece a compressed stream is decoded into at once: a decompression bomb (a few KiB
of gzip that inflate to gigabytes) is decoded piece by piece and never held whole."""

MAX_BODY_BYTES = 1024 * 1024
"""Bodies read whole (error answers, getProfiles) are read only up to this many decoded bytes."""


class UnsupportedEncoding(ConnectionError):
    """A Content-Encoding this process does not decode (it asks for gzip/deflate only)."""


class BoundedDecoder:
    """Decodes a `Content-Encoding` (identity, gzip, deflate) in pieces of at most `piece`
    bytes: zlib's `max_length` bounds each step, whatever the compression ratio."""

    def __init__(self, encoding: str | None, piece: int = DECODE_PIECE_BYTES) -> None:
        codings = [c.strip().lower() for c in (encoding or "").split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise UnsupportedEncoding(f"unsupported Content-Encoding {encoding!r}")
        self._piece = piece
        self._coding = codings[0] if codings else None
        self._zlib: zlib._Decompress | None = None
        if self._coding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif self._coding == "deflate":
            self._zlib = zlib.decompressobj()  # zlib-wrapped; raw deflate is tried on error
        self._deflate_checked = self._coding != "deflate"

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces of `data` (each at most `piece` bytes)."""
        if self._zlib is None:
            for at in range(0, len(data), self._piece):
                yield data[at : at + self._piece]
            return
        if not self._deflate_checked:
            self._deflate_checked = True
            try:
                first = self._zlib.decompress(data, self._piece)
            except zlib.error:
                # Servers often send raw deflate for "deflate" (what browsers accept too).
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                first = self._zlib.decompress(data, self._piece)
            if first:
                yield first
            data = self._zlib.unconsumed_tail
        while data:
            try:
                out = self._zlib.decompress(data, self._piece)
            except zlib.error as exc:
                raise ConnectionError(f"corrupt {self._coding} stream: {exc}") from None
            data = self._zlib.unconsumed_tail
            if out:
                yield out
            if self._zlib.eof:
                return  # trailing bytes after the compressed stream are ignored
            if not out and not data:
                return


async def decoded_chunks(
    resp: httpx.Response, piece: int = DECODE_PIECE_BYTES
) -> AsyncIterator[bytes]:
    """The response body, decoded by `BoundedDecoder` from the raw stream (httpx's own decoders
    inflate each network chunk whole, which a bomb turns into hundreds of MiB at once)."""
    decoder = BoundedDecoder(resp.headers.get("content-encoding"), piece)
    # Network reads as they come (bounded by httpx's read size): `aiter_raw(n)` would wait for
    # n bytes, which a live stream may take minutes to send.
    async for raw in resp.aiter_raw():
        for out in decoder.feed(raw):
            yield out


async def read_capped(resp: httpx.Response, limit: int = MAX_BODY_BYTES) -> tuple[bytes, bool]:
    """At most `limit` decoded bytes of the body, and whether there was more (not read)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in decoded_chunks(resp):
        room = limit - size
        if len(chunk) > room:
            parts.append(chunk[:room])
            return b"".join(parts), True
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts), False


@dataclass(frozen=True, slots=True)
class OversizeLine:
    """A line longer than the limit: only its head is kept (it is dead-lettered)."""

    excerpt: bytes
    size: int


class LineSplitter:
    """Splits a byte stream into lines at LF (a CR before it is dropped), never buffering more
    than `max_line_bytes`: a longer line is reported once as an `OversizeLine` (its head kept)
    and the rest of it is skipped up to the next newline.

    Only LF ends a line (SSE and JSON Lines): `str.splitlines` would also break at U+0085,
    U+2028 and friends, which JSON strings carry unescaped.
    """

    def __init__(self, max_line_bytes: int) -> None:
        self._max = max_line_bytes
        self._buffer = bytearray()
        self._skipping: int | None = None  # bytes skipped of the current over-long line
        self._excerpt = b""

    @property
    def buffered(self) -> int:
        """Bytes held for the line in progress."""
        return len(self._buffer)

    def feed(self, data: bytes) -> Iterator[bytes | OversizeLine]:
        """Lines (without the line end) and `OversizeLine`s completed by `data`."""
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            stop = len(data) if end < 0 else end
            if self._skipping is not None:
                self._skipping += stop - start
            else:
                self._buffer += data[start:stop]
                if len(self._buffer) > self._max:
                    self._excerpt = bytes(self._buffer[:RAW_EXCERPT_BYTES])
                    self._skipping = len(self._buffer)
                    self._buffer = bytearray()
            if end < 0:
                return
            start = end + 1
            if self._skipping is not None:
                yield OversizeLine(self._excerpt, self._skipping)
                self._skipping, self._excerpt = None, b""
                continue
            line = bytes(self._buffer)
            self._buffer.clear()
            yield line[:-1] if line.endswith(b"\r") else line
