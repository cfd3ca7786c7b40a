"""Live sources against real local servers that misbehave: a 200 MB line without a newline, a
gzip bomb, endless error bodies, a slowloris, heartbeat-only and ping-only streams.

Each source runs in a child process (`hostile_child.py`) that reports its peak resident set
(`VmHWM`) against its resident set before the source started: the growth must stay under
100 MB, and the events sent after the misbehaviour must still arrive.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from feed_plumbing import FAST_FEED
from jetstream_server import JetstreamServer, jetstream_commit
from scripted_server import (
    ScriptedServer,
    endless_error,
    gzip_bomb,
    heartbeats_only,
    long_line,
    sse_then_heartbeats,
    trickle,
)

CHILD = Path(__file__).with_name("hostile_child.py")
MAX_GROWTH_KB = 100 * 1024
QUICK_STALL = {"stall_seconds": 1.0}
"""Stall cases: a short stall_seconds. Floods (the 200 MB line, the bomb) keep the default 90 s:
reading them is no stall, only slow under CPU contention."""


def status_frame(n: int) -> str:
    """One `update` frame of a public status, in Mastodon's shape."""
    status = {
        "id": f"11400000000000000{n}",
        "created_at": "2026-05-28T10:00:00.000Z",
        "in_reply_to_id": None,
        "in_reply_to_account_id": None,
        "visibility": "public",
        "language": "en",
        "url": f"https://social.example/@zed/11400000000000000{n}",
        "content": f"<p>after the storm, status {n}: still no refund\u0085 from acme</p>",
        "reblog": None,
        "account": {"id": "110000000000000042", "acct": "zed", "followers_count": 12},
        "mentions": [],
    }
    return f"event: update\ndata: {orjson.dumps(status).decode()}\n\n"


GOOD = status_frame(1) + status_frame(2)
GOOD_IDS = ["114000000000000001", "114000000000000002"]


def run_child(kind: str, url: str, want: int, timeout: float = 60.0, **settings: Any) -> dict:
    spec = {
        "kind": kind,
        "url": url,
        "settings": {**FAST_FEED, **settings},
        "want": want,
        "timeout": timeout,
    }
    done = subprocess.run(
        [sys.executable, str(CHILD), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout + 60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    growth = report["peak_kb"] - report["baseline_kb"]
    print(f"{kind}: peak RSS growth {growth / 1024:.1f} MB; {report}")
    assert growth < MAX_GROWTH_KB, report
    return report


@pytest.mark.parametrize(
    ("name", "scripts", "stalls"),
    [
        ("200 MB line", [long_line(200 << 20, GOOD)], 0),
        ("gzip bomb", [gzip_bomb(256 << 20, GOOD)], 0),
        ("endless 503 body", [endless_error(503), sse_then_heartbeats(GOOD)], 0),
        ("slowloris", [trickle(0.05), sse_then_heartbeats(GOOD)], 1),
        ("heartbeats only", [heartbeats_only(), sse_then_heartbeats(GOOD)], 1),
    ],
)
def test_mastodon_survives_a_misbehaving_server(name: str, scripts: list, stalls: int) -> None:
    settings = QUICK_STALL if stalls else {}
    with ScriptedServer(scripts) as server:
        report = run_child("mastodon", server.url, want=2, read_timeout_seconds=10.0, **settings)
    assert report["events"] == GOOD_IDS, name
    assert report["fatal"] is None
    assert report["stalls"] == report["stalls_metric"] == stalls
    if stalls:
        assert report["reconnects_metric"] >= 1
    if name in ("200 MB line", "gzip bomb"):
        # The endless line is one dead letter with an excerpt, not 200 MB.
        assert report["oversize_lines"] == 1
        [dead] = report["dead_letters"]
        assert "larger than" in dead["reason"] and dead["raw_bytes"] <= 2048


def test_mastodon_endless_401_body_fails_fast_without_reading_it() -> None:
    with ScriptedServer([endless_error(401)]) as server:
        report = run_child("mastodon", server.url, want=1, timeout=30)
    assert report["events"] == []
    assert report["fatal"] is not None and "HTTP 401" in report["fatal"]


def test_jetstream_ping_only_connection_reconnects_with_its_cursor() -> None:
    did = "did:plc:pingpingpingpingpingping"
    frames = [
        jetstream_commit(did, 1_000_000 * (100 + i), "app.bsky.feed.post", f"r{i}", {
            "createdAt": "2026-05-28T10:00:00Z", "text": f"post {i}"})
        for i in range(4)
    ]  # fmt: skip
    with JetstreamServer(frames, ping_only={0: 2}) as server:
        report = run_child("jetstream", server.url, want=5, rewind_seconds=0, **QUICK_STALL)
        connections = server.connections
    # Resumed at the newest frame read: it comes again (the flow's de-duplication drops it).
    assert report["events"] == [f"at://{did}/app.bsky.feed.post/r{i}" for i in (0, 1, 1, 2, 3)]
    assert report["stalls"] == report["stalls_metric"] == 1
    assert report["reconnects_metric"] >= 1
    assert connections[0]["cursor"] is None
    assert connections[1]["cursor"] == 101_000_000  # the newest frame read, no rewind
