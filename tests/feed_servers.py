"""Real local servers for the live-feed tests, each on 127.0.0.1 with a free port, each in its own
thread, each stopped by its context manager:

- `JetstreamServer`: a WebSocket server replaying Jetstream frames; honours `cursor=` (frames with
  `time_us >= cursor`) and can drop connections abruptly after N frames.
- `SseServer`: an HTTP/1.1 server streaming Mastodon SSE frames (chunked, like Mastodon's
  streaming server), with heartbeats, bearer-token checking, a redirect, and abrupt drops.
- `ProfilesServer`: an `app.bsky.actor.getProfiles` endpoint with canned follower counts.

Plus `cassette_sse_bodies`, which pulls the recorded SSE bodies out of Mastodon.py's vcrpy YAML
cassettes without a YAML library.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection, serve

# -- Jetstream ---------------------------------------------------------------------------------


FAST_FEED: dict[str, float | int] = {
    "reconnect_initial_seconds": 0.01,
    "reconnect_max_seconds": 0.05,
    "connect_timeout_seconds": 2.0,
    "poll_interval_ms": 1,
}
"""Live-feed settings for tests: quick reconnects and polling."""


def frame_time(frame: str | bytes, previous: int) -> int:
    """The replay position of a frame: its time_us, or the previous one for unreadable frames."""
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return previous
    value = obj.get("time_us") if isinstance(obj, dict) else None
    return value if type(value) is int else previous


@dataclass
class JetstreamServer:
    """Replays `frames` to every connection, starting at `cursor=` when the client sends one.

    `drops[i]`, when given, makes connection number i (0-based) abort without a close frame
    after sending that many frames, as a network failure would. `drop_after_index[i]` does the
    same right after sending `frames[k]` (k an index into `frames`): a drop at a fixed point of
    the stream, wherever the client's cursor made that connection start.
    """

    frames: Sequence[str | bytes]
    drops: dict[int, int] = field(default_factory=dict)
    drop_after_index: dict[int, int] = field(default_factory=dict)
    frame_delay: float = 0.0
    reject_status: int | None = None
    ping_only: dict[int, int] = field(default_factory=dict)
    """Connection i sends that many frames, then nothing but pings (every 50 ms) forever."""
    connections: list[dict[str, Any]] = field(default_factory=list)
    sent: list[list[str | bytes]] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        times, prev = [], 0
        for frame in self.frames:
            prev = frame_time(frame, prev)
            times.append(prev)
        self._times = times
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="jetstream-server", daemon=True)

    @property
    def url(self) -> str:
        """The subscribe URL."""
        return f"ws://127.0.0.1:{self.port}/subscribe"

    def __enter__(self) -> JetstreamServer:
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("jetstream test server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(
            self._handler, "127.0.0.1", 0, process_request=self._process_request
        ) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()
            server.close(close_connections=True)

    def _process_request(self, connection: ServerConnection, request: Any) -> Any:
        if self.reject_status is not None:
            return connection.respond(self.reject_status, "rejected by test server\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        query = parse_qs(urlsplit(ws.request.path).query)
        cursor = int(query["cursor"][0]) if "cursor" in query else None
        index = len(self.connections)
        self.connections.append({"path": ws.request.path, "cursor": cursor, "query": query})
        sent: list[str | bytes] = []
        self.sent.append(sent)
        drop_after = self.drops.get(index)
        drop_index = self.drop_after_index.get(index)
        ping_after = self.ping_only.get(index)
        for k, (frame, at) in enumerate(zip(self.frames, self._times, strict=True)):
            if cursor is not None and at < cursor:
                continue
            if ping_after is not None and len(sent) >= ping_after:
                with contextlib.suppress(Exception):
                    while True:  # alive, answering pongs, delivering nothing
                        await ws.ping()
                        await asyncio.sleep(0.05)
                return
            if drop_after is not None and len(sent) >= drop_after:
                ws.transport.abort()  # no close frame: like a network failure
                return
            await ws.send(frame)
            sent.append(frame)
            if drop_index is not None and k >= drop_index:
                # Let the kernel have every frame sent so far, so the client sees exactly
                # frames[..k] before the connection breaks.
                while ws.transport.get_write_buffer_size():
                    await asyncio.sleep(0.001)
                ws.transport.abort()
                return
            if self.frame_delay:
                await asyncio.sleep(self.frame_delay)
        # A live stream goes quiet, it does not end: wait for the client to leave.
        await ws.wait_closed()


# -- Mastodon SSE ------------------------------------------------------------------------------


def sse_blocks(text: str) -> list[str]:
    """Split an SSE document into blocks: each frame (ending with a blank line) or comment line,
    in order, each with its line terminators."""
    blocks: list[str] = []
    current: list[str] = []
    # LF only: str.splitlines would also split inside JSON at U+0085, U+2028, ...
    for line in text.replace("\r\n", "\n").split("\n"):
        line += "\n"
        if line.startswith(":") and not current:
            blocks.append(line)
            continue
        current.append(line)
        if line.strip() == "":
            blocks.append("".join(current))
            current = []
    if current and "".join(current).strip():
        blocks.append("".join(current) + "\n")
    return [b for b in blocks if b.strip()]


class _SseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _SseHttpServer

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        return

    def do_GET(self) -> None:
        owner = self.server.owner
        record = {"path": self.path, "authorization": self.headers.get("Authorization")}
        owner.requests.append(record)
        if owner.redirect_from is not None and self.path.startswith(owner.redirect_from):
            self.send_response(302)
            self.send_header("Location", owner.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if owner.token is not None and record["authorization"] != f"Bearer {owner.token}":
            body = b'{"error":"The access token is invalid"}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        connection = len(owner.served)
        owner.served.append([])
        drop_after = owner.drops.get(connection)
        sent = 0
        try:
            self._chunk(":)\n")
            while True:
                with owner.lock:
                    if owner.position >= len(owner.blocks):
                        block = None
                    else:
                        if drop_after is not None and sent >= drop_after:
                            # Frames emitted while the client is away are lost (no replay).
                            lost = 0
                            while lost < owner.lost_on_drop and owner.position < len(owner.blocks):
                                lost += not owner.blocks[owner.position].startswith(":")
                                owner.position += 1
                            self._abort()
                            return
                        block = owner.blocks[owner.position]
                        owner.position += 1
                if block is None:
                    if owner.close_at_end:
                        self._chunk("")  # the terminating zero-length chunk: a clean end
                        return
                    self._chunk(":thump\n")
                    time.sleep(owner.heartbeat_interval)
                    continue
                self._chunk(block)
                owner.served[connection].append(block)
                if not block.startswith(":"):
                    sent += 1
                if owner.frame_delay:
                    time.sleep(owner.frame_delay)
        except (BrokenPipeError, ConnectionResetError):
            return

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _abort(self) -> None:
        # Mid-stream, without the terminating chunk: the client sees a broken response.
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _QuietHttpServer(ThreadingHTTPServer):
    """A client hanging up mid-answer is what these tests do on purpose: no traceback for it."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _SseHttpServer(_QuietHttpServer):
    daemon_threads = True
    owner: SseServer


@dataclass
class SseServer:
    """Streams `text` (an SSE document) as a live Mastodon stream: every connection continues
    where the stream is (no replay), connection i is dropped after `drops[i]` frames, and
    `lost_on_drop` frames are skipped at each drop (posted while the client was away)."""

    text: str
    token: str | None = None
    drops: dict[int, int] = field(default_factory=dict)
    lost_on_drop: int = 0
    close_at_end: bool = False
    heartbeat_interval: float = 0.05
    frame_delay: float = 0.0
    redirect_from: str | None = None
    redirect_to: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    served: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.blocks = sse_blocks(self.text)
        self.position = 0
        self.lock = threading.Lock()
        self._httpd = _SseHttpServer(("127.0.0.1", 0), _SseHandler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str = "/api/v1/streaming/public") -> str:
        """The stream URL."""
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> SseServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_at_end = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


class _BackgroundHttp:
    """Serves an HTTP server from a daemon thread while in its `with` block."""

    _httpd: ThreadingHTTPServer
    _thread: threading.Thread

    def _serve(self, httpd: ThreadingHTTPServer) -> int:
        """Adopt `httpd` (its handlers find this object as `server.owner`); returns its port."""
        self._httpd = httpd
        httpd.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        return httpd.server_address[1]

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


# -- misbehaving HTTP servers ------------------------------------------------------------------

Script = Callable[[BaseHTTPRequestHandler], None]
"""What one connection of a `ScriptedServer` does with its request."""
CHUNK = b"x" * 65536


def _start(handler: BaseHTTPRequestHandler, status: int = 200, **headers: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Transfer-Encoding", "chunked")
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()


def _chunk(handler: BaseHTTPRequestHandler, data: bytes) -> None:
    handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    handler.wfile.flush()


def sse_then_heartbeats(text: str, interval: float = 0.05) -> Script:
    """A well-behaved stream: the SSE document, then heartbeats until the client leaves."""

    def script(handler: BaseHTTPRequestHandler) -> None:
        _start(handler)
        _chunk(handler, text.encode())
        while True:
            _chunk(handler, b":thump\n")
            time.sleep(interval)

    return script


def long_line(size: int, then: str) -> Script:
    """`data: ` and `size` bytes without a newline, streamed (never built in memory), then the
    frame's end and `then`."""

    def script(handler: BaseHTTPRequestHandler) -> None:
        _start(handler)
        _chunk(handler, b":)\nevent: update\ndata: ")
        for _ in range(size // len(CHUNK)):
            _chunk(handler, CHUNK)
        _chunk(handler, b"\n\n" + then.encode())
        while True:
            _chunk(handler, b":thump\n")
            time.sleep(0.05)

    return script


def gzip_bomb(zeros: int, then: str) -> Script:
    """Content-Encoding gzip: `zeros` zero bytes (no newline: one endless line) compressed to a
    few hundred KiB, then `then`, compressed in the same stream."""

    def script(handler: BaseHTTPRequestHandler) -> None:
        _start(handler, Content_Encoding="gzip")
        packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        _chunk(handler, packer.compress(b":)\nevent: update\ndata: "))
        zero = bytes(1 << 20)
        for _ in range(zeros >> 20):
            out = packer.compress(zero)
            if out:
                _chunk(handler, out)
        _chunk(handler, packer.compress(b"\n\n" + then.encode()) + packer.flush(zlib.Z_SYNC_FLUSH))
        while True:
            _chunk(handler, packer.compress(b":thump\n") + packer.flush(zlib.Z_SYNC_FLUSH))
            time.sleep(0.05)

    return script


def endless_error(status: int) -> Script:
    """An error answer whose body never ends."""

    def script(handler: BaseHTTPRequestHandler) -> None:
        _start(handler, status)
        while True:
            _chunk(handler, CHUNK)

    return script


def trickle(interval: float) -> Script:
    """Slowloris: one byte of a line that never ends, every `interval` seconds."""

    def script(handler: BaseHTTPRequestHandler) -> None:
        _start(handler)
        _chunk(handler, b":)\ndata: ")
        while True:
            _chunk(handler, b"x")
            time.sleep(interval)

    return script


def heartbeats_only(interval: float = 0.05) -> Script:
    """Nothing but `:thump` comments."""

    def script(handler: BaseHTTPRequestHandler) -> None:
        _start(handler)
        while True:
            _chunk(handler, b":thump\n")
            time.sleep(interval)

    return script


class _ScriptedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ScriptedHttpServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        owner = self.server.owner
        with owner.lock:
            index = len(owner.requests)
            owner.requests.append(self.path)
        script = owner.scripts[min(index, len(owner.scripts) - 1)]
        with contextlib.suppress(OSError):  # the client leaving ends every script
            script(self)


class _ScriptedHttpServer(_QuietHttpServer):
    daemon_threads = True
    owner: ScriptedServer


@dataclass
class ScriptedServer(_BackgroundHttp):
    """An HTTP server whose connection i runs `scripts[i]` (the last one repeats)."""

    scripts: list[Script]
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        port = self._serve(_ScriptedHttpServer(("127.0.0.1", 0), _ScriptedHandler))
        self.url = f"http://127.0.0.1:{port}/api/v1/streaming/public"


# -- Bluesky getProfiles -----------------------------------------------------------------------


class _ProfilesHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProfilesHttpServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)
        actors = parse_qs(parts.query).get("actors", [])
        owner.requests.append(actors)
        if owner.delay:
            time.sleep(owner.delay)
        if parts.path != "/xrpc/app.bsky.actor.getProfiles" or owner.fail:
            body, status = b'{"error":"InternalServerError"}', 500
        else:
            profiles = [
                {"did": a, "handle": h, "followersCount": n}
                for a in actors
                if a in owner.profiles
                for h, n in [owner.profiles[a]]
            ]
            body, status = orjson.dumps({"profiles": profiles}), 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _ProfilesHttpServer(_QuietHttpServer):
    daemon_threads = True
    owner: ProfilesServer


@dataclass
class ProfilesServer(_BackgroundHttp):
    """Answers getProfiles from `profiles` (DID -> (handle, followers)); can fail or be slow."""

    profiles: dict[str, tuple[str, int]]
    fail: bool = False
    delay: float = 0.0
    requests: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        port = self._serve(_ProfilesHttpServer(("127.0.0.1", 0), _ProfilesHandler))
        self.url = f"http://127.0.0.1:{port}"


# -- helpers -----------------------------------------------------------------------------------


def drain(part: Any, until: Callable[[list[Any]], bool], timeout: float = 5.0) -> list[Any]:
    """Poll the partition like Bytewax would, until `until(items)` or the timeout."""
    items: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(items):
        try:
            batch = part.next_batch()
        except StopIteration:
            break
        items.extend(batch)
        if not batch:
            time.sleep(0.002)
    return items


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, step: float = 0.005) -> bool:
    """Poll `predicate` until true or `timeout`; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


_SINGLE_QUOTED = re.compile(r"^(\s*)string: '", re.MULTILINE)


def _fold_single_quoted(raw: str) -> str:
    """YAML single-quoted flow scalar folding: a lone line break is a space, n+1 line breaks are
    n newlines, continuation lines lose their indentation, `''` is a quote."""
    lines = raw.split("\n")
    out = lines[0].rstrip(" \t")
    empties = 0
    for line in lines[1:]:
        stripped = line.strip(" \t")
        if not stripped:
            empties += 1
            continue
        out += ("\n" * empties if empties else " ") + stripped
        empties = 0
    if empties:
        out += "\n" * empties
    return out.replace("''", "'")


def cassette_sse_bodies(path: Path) -> list[tuple[str, str]]:
    """(uri, body) of every recorded response to a `/api/v1/streaming/` request in a vcrpy
    cassette whose body holds SSE frames."""
    text = path.read_text(encoding="utf-8")
    out: list[tuple[str, str]] = []
    for match in re.finditer(r"^    uri: (\S+/api/v1/streaming/\S*)$", text, re.MULTILINE):
        uri = match.group(1)
        body_at = _SINGLE_QUOTED.search(text, match.end())
        if body_at is None:
            continue
        i = body_at.end()
        chars: list[str] = []
        while i < len(text):
            if text[i] == "'":
                if text.startswith("''", i):
                    chars.append("''")
                    i += 2
                    continue
                break
            chars.append(text[i])
            i += 1
        body = _fold_single_quoted("".join(chars))
        if "event:" in body:
            out.append((uri, body))
    return out


def jetstream_commit(
    did: str,
    time_us: int,
    collection: str,
    rkey: str,
    record: dict[str, Any] | None = None,
    operation: str = "create",
) -> bytes:
    """One Jetstream v1 commit frame, in the shape the public service sends."""
    commit: dict[str, Any] = {
        "rev": f"3l{rkey}",
        "operation": operation,
        "collection": collection,
        "rkey": rkey,
    }
    if record is not None:
        commit["record"] = {"$type": collection, **record}
        commit["cid"] = f"bafyrei{rkey}"
    return orjson.dumps({"did": did, "time_us": time_us, "kind": "commit", "commit": commit})
