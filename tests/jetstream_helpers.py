"""Shared by the Bluesky Jetstream tests (`tests/test_jetstream_*.py`): the own and the real
captured frames, accounts and settings of the tests, what a frame maps to, synthetic frames, the
source's partition as Bytewax builds it, and the `no_reader_threads_left` fixture (autouse: a test
module imports it, `from jetstream_helpers import no_reader_threads_left as
no_reader_threads_left`, and then every test of it must stop the reader threads it started).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from feed_plumbing import FAST_FEED, wait_until

from config.feeds import JetstreamSettings
from connectors.feed_runtime import FeedPartition
from connectors.jetstream import JetstreamSource
from connectors.jetstream_frames import finalize, map_frame, time_us_to_datetime

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
OWN_FRAMES = (FIXTURES / "jetstream_frames.jsonl").read_bytes().splitlines()
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "streaming_fixtures"
REAL_DIR = SHARED / "bluesky_jetstream"
NOW = datetime(2026, 5, 28, 21, 0, tzinfo=UTC)


def did(name: str) -> str:
    return f"did:plc:{name:a<24}"


ALICE, BOB, CAROL, DAVE, ERIN, FRANK, GINA, ACME, HELP = (
    did(n) for n in ["alice", "bob", "carol", "dave", "erin", "frank", "gina", "acme", "acmehelp"]
)
POST = "app.bsky.feed.post"


def fast(**kw: Any) -> JetstreamSettings:
    """Settings for tests: quick reconnects and polling."""
    return JetstreamSettings(**{**FAST_FEED, **kw})


def mapped(raw: bytes) -> list[Any]:
    """Everything one frame becomes, validated."""
    frame = map_frame(raw, NOW)
    return [finalize(e, raw, NOW) for e in frame.events] + frame.items


@pytest.fixture(autouse=True)
def no_reader_threads_left() -> Iterator[None]:
    """Every test must stop the reader threads it started."""
    yield
    assert wait_until(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("sense-respond-")], 3
    ), [t.name for t in threading.enumerate()]


def real_lines(name: str) -> list[bytes]:
    path = REAL_DIR / name
    if not path.is_file():
        pytest.skip(f"shared fixtures absent: {path}")
    return path.read_bytes().splitlines()


def part_for(
    url: str, settings: JetstreamSettings, batch_size: int, resume: int | None = None
) -> FeedPartition[int]:
    """Build the source's partition as Bytewax would."""
    return JetstreamSource(url, settings, batch_size).build_part("in", "jetstream", resume)


def synthetic(
    n: int, t0: int = 1_780_000_000_000_000, step_us: int = 10_000, authors: int = 7
) -> list[bytes]:
    """n post frames, `step_us` apart, by `authors` distinct accounts."""
    frames = []
    for i in range(n):
        t = t0 + i * step_us
        frames.append(
            orjson.dumps(
                {
                    "did": did(f"user{i % authors}"),
                    "time_us": t,
                    "kind": "commit",
                    "commit": {
                        "rev": f"r{i}",
                        "operation": "create",
                        "collection": POST,
                        "rkey": f"k{i:05d}",
                        "record": {
                            "$type": POST,
                            "createdAt": time_us_to_datetime(t).isoformat(),
                            "text": f"post {i}",
                        },
                        "cid": f"c{i}",
                    },
                }
            )
        )
    return frames
