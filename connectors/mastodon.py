"""Mastodon streaming as a live input: `--input mastodon:https://HOST/api/v1/streaming/STREAM`.

Server-sent events over a long-lived HTTP response (`connectors.sse`). Streams: `public`,
`public/local`, `public/remote`, `hashtag?tag=...`, `hashtag/local?tag=...`, `list?list=...`, and
the brand's own `user` / `user/notification`. The bearer token comes from
`MastodonSettings.access_token` (a `SecretStr`, never logged) or, discouraged, from an
`access_token=` URL parameter. This module reads the stream (reader, partition, source); the
frames are mapped to the flow's items by `connectors.mastodon_statuses`.

The streaming API cannot replay: after a drop the source reconnects with backoff and the gap is
logged and counted (`metrics.gaps`, `metrics.gap_seconds`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx
from pydantic import SecretStr

from config.feeds import MastodonSettings
from connectors.bounded_streams import LineSplitter, OversizeLine, decoded_chunks, read_capped
from connectors.feed_reader import Entry, FatalFeedError, FeedReader, redact_url
from connectors.feed_runtime import FeedPartition, FeedSource
from connectors.mastodon_statuses import MastodonMapper
from connectors.sse import SseFrame, SseParser
from operators.events import MAX_LINE_BYTES

log = logging.getLogger(__name__)

ERROR_BODY_BYTES = 4096
"""How much of an error answer is read (and 200 characters of it quoted)."""
FATAL_STATUSES = frozenset({400, 401, 403, 404, 405, 410})
"""Handshake answers that will not get better by retrying (bad URL or credentials)."""


def split_token(url: str) -> tuple[str, str | None]:
    """The URL without an `access_token` query parameter, and that token (or None)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    tokens = [v for k, v in query if k == "access_token"]
    if not tokens:
        return url, None
    rest = urlencode([(k, v) for k, v in query if k != "access_token"])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment)), tokens[0]


def _same_site(old: str, new: str) -> bool:
    """Whether a redirect stays on the instance (e.g. HOST -> streaming.HOST): keep the token."""
    a, b = urlsplit(old).hostname or "", urlsplit(new).hostname or ""
    return bool(a) and (b == a or b.endswith("." + a) or a.endswith("." + b))


class MastodonReader(FeedReader[str]):
    """Reads a Mastodon SSE stream in the background; see the module docstring."""

    def __init__(self, url: str, settings: MastodonSettings, resume_id: str | None) -> None:
        super().__init__("mastodon", settings)
        self.url, url_token = split_token(url)
        if url_token is not None:
            # A token in the URL would end up in access logs (and httpx's request log line).
            log.warning(
                "mastodon: access_token found in the URL; it is sent as an Authorization header "
                "instead (prefer SR_MASTODON__ACCESS_TOKEN)"
            )
            if settings.access_token is None:
                settings = settings.model_copy(update={"access_token": SecretStr(url_token)})
        self.settings = settings
        self.ms: MastodonSettings = settings
        self.mapper = MastodonMapper(
            settings.notification_types, settings.status_memory, settings.include_private
        )
        self._resumed_from = resume_id
        self.position_seen = resume_id
        self._client: httpx.AsyncClient | None = None

    def _headers(self, with_token: bool) -> dict[str, str]:
        headers = {
            "Accept": "text/event-stream",
            "Cache-Control": "no-cache",
            # What `BoundedDecoder` decodes (piece by piece, so a bomb stays small).
            "Accept-Encoding": "gzip, deflate",
            "User-Agent": self.ms.user_agent,
        }
        if with_token and self.ms.access_token is not None:
            headers["Authorization"] = f"Bearer {self.ms.access_token.get_secret_value()}"
        return headers

    async def run(self) -> None:
        """Run sessions with one HTTP client (connection pool) for the reader's lifetime."""
        timeout = httpx.Timeout(
            connect=self.ms.connect_timeout_seconds,
            read=self.ms.read_timeout_seconds,
            write=10.0,
            pool=10.0,
        )
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            self._client = client
            await super().run()

    async def session(self) -> None:
        """One streaming HTTP response, read until it ends."""
        assert self._client is not None
        url, with_token = self.url, True
        for _ in range(5):
            async with self._client.stream("GET", url, headers=self._headers(with_token)) as resp:
                if resp.is_redirect and "location" in resp.headers:
                    new = urljoin(url, resp.headers["location"])
                    # httpx would drop the token on a cross-origin redirect anyway; we keep it
                    # only for the instance's own hosts (mastodon.example -> streaming.mastodon...).
                    with_token = with_token and _same_site(url, new)
                    url = new
                    continue
                if resp.status_code in FATAL_STATUSES:
                    # Read only the head of an error answer: a hostile one never ends.
                    head, _ = await read_capped(resp, ERROR_BODY_BYTES)
                    body = head[:200].decode(errors="replace")
                    raise FatalFeedError(
                        f"mastodon: {redact_url(url)} answered HTTP {resp.status_code}: {body!r}"
                        + (
                            " (is access_token set and valid?)"
                            if resp.status_code in (401, 403)
                            else ""
                        )
                    )
                if resp.status_code != 200:
                    raise ConnectionError(f"HTTP {resp.status_code}")
                await self._read(resp, url)
                return
        raise ConnectionError("too many redirects")

    async def _read(self, resp: httpx.Response, url: str) -> None:
        gap = self.on_connected()
        if gap is not None:
            self.metrics.gaps += 1
            self.metrics.gap_seconds += gap
            log.warning(
                "mastodon: stream gap of %.1fs: reconnected to %s; statuses posted meanwhile are "
                "not replayed by the streaming API (gaps so far: %d)",
                gap,
                redact_url(url),
                self.metrics.gaps,
            )
        elif self._resumed_from is not None:
            self.metrics.gaps += 1
            log.warning(
                "mastodon: resumed after a restart (last delivered status %s); statuses posted "
                "while stopped are not replayed",
                self._resumed_from,
            )
        else:
            log.info("mastodon: connected to %s", redact_url(url))
        self._resumed_from = None
        parser = SseParser()
        # Lines end at LF only (httpx's aiter_lines splits like str.splitlines, at U+0085 and
        # U+2028 too, which JSON carries unescaped), and no line is buffered past the limit.
        splitter = LineSplitter(MAX_LINE_BYTES)
        async for chunk in decoded_chunks(resp):
            for raw_line in splitter.feed(chunk):
                if isinstance(raw_line, OversizeLine):
                    self.metrics.oversize_lines += 1
                    parser.feed_oversize(raw_line.excerpt.decode(errors="replace"))
                    continue
                line = raw_line.decode(errors="replace")  # SSE: UTF-8, errors replaced
                # Heartbeats keep the HTTP read timeout quiet but are not activity (idle, stall).
                if line.startswith(":"):
                    self.metrics.heartbeats += 1
                    continue
                frame = parser.feed(line)
                if frame is None:
                    continue
                await self._deliver(frame)

    async def _deliver(self, frame: SseFrame) -> None:
        self.frame_received()
        self.metrics.frames += 1
        mapped = self.mapper.map(frame, datetime.now(UTC))
        self.metrics.unknown_deletes = self.mapper.unknown_deletes
        if mapped.ignored is not None:
            self.metrics.ignored += 1
        if mapped.items:
            await self.put(Entry(tuple(mapped.items), mapped.status_id))
        if mapped.status_id is not None:
            self.position_seen = mapped.status_id


class MastodonPartition(FeedPartition[str]):
    """The single Mastodon stream partition; its snapshot is the last status id delivered."""


class MastodonSource(FeedSource[str]):
    """A Mastodon streaming endpoint as a Bytewax source (one partition).

    `url`: https://HOST/api/v1/streaming/public (or public/local, hashtag?tag=, user...).
    """

    part_name = "mastodon"
    settings: MastodonSettings

    def make_partition(self, resume_state: str | None) -> MastodonPartition:
        """Connect; a `resume_state` only serves to report the gap since the last run."""
        reader = MastodonReader(self.url, self.settings, resume_state)
        return MastodonPartition(reader, self.batch_size, resume_state)
