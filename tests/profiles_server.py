"""A real local Bluesky AppView for the live-feed tests: `ProfilesServer`, an
`app.bsky.actor.getProfiles` endpoint with canned follower counts, which can fail or be slow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from feed_plumbing import BackgroundHttp, QuietHttpServer


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


class _ProfilesHttpServer(QuietHttpServer):
    daemon_threads = True
    owner: ProfilesServer


@dataclass
class ProfilesServer(BackgroundHttp):
    """Answers getProfiles from `profiles` (DID -> (handle, followers)); can fail or be slow."""

    profiles: dict[str, tuple[str, int]]
    fail: bool = False
    delay: float = 0.0
    requests: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        port = self._serve(_ProfilesHttpServer(("127.0.0.1", 0), _ProfilesHandler))
        self.url = f"http://127.0.0.1:{port}"
