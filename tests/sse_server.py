"""A real local Mastodon streaming server for the live-feed tests: `SseServer`, an HTTP/1.1
server on 127.0.0.1 (a free port, its own thread, stopped by its context manager) streaming
Mastodon SSE frames (chunked, like Mastodon's streaming server), with heartbeats, bearer-token
checking, a redirect, and abrupt drops.

Plus `sse_blocks`, which splits an SSE document into frames, and `cassette_sse_bodies`, which
pulls the recorded SSE bodies out of Mastodon.py's vcrpy YAML cassettes without a YAML library.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from feed_plumbing import QuietHttpServer


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


class _SseHttpServer(QuietHttpServer):
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
