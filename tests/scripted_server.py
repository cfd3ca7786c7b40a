"""Misbehaving HTTP servers for the hostile-server tests: `ScriptedServer`, whose connection i runs
a script (the last one repeats), and the scripts: oversized lines, decompression bombs, endless
error bodies, slowloris, heartbeat-only streams.
"""

from __future__ import annotations

import contextlib
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from feed_plumbing import BackgroundHttp, QuietHttpServer

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


class _ScriptedHttpServer(QuietHttpServer):
    daemon_threads = True
    owner: ScriptedServer


@dataclass
class ScriptedServer(BackgroundHttp):
    """An HTTP server whose connection i runs `scripts[i]` (the last one repeats)."""

    scripts: list[Script]
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        port = self._serve(_ScriptedHttpServer(("127.0.0.1", 0), _ScriptedHandler))
        self.url = f"http://127.0.0.1:{port}/api/v1/streaming/public"
