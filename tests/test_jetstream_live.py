"""The Bluesky Jetstream source in a flow against a real local WebSocket server: our own fixture
and the real captured frames through `run_main`, `max_events`, backpressure of a small queue."""

from __future__ import annotations

from collections import Counter
from typing import Any

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main
from feed_plumbing import drain
from jetstream_helpers import OWN_FRAMES, POST, fast, mapped, part_for, real_lines, synthetic
from jetstream_helpers import no_reader_threads_left as no_reader_threads_left
from jetstream_server import JetstreamServer

from connectors.jetstream import JetstreamSource

# -- the source against a local Jetstream ----------------------------------------------------------


@pytest.mark.shared
def test_real_corpus_through_the_websocket_source() -> None:
    lines = real_lines("corpus_expected_v1.jsonl")
    expected = [i for raw in lines for i in mapped(raw)]
    with JetstreamServer(lines) as server:
        source = JetstreamSource(server.url, fast(max_events=len(expected)), batch_size=16)
        out: list[Any] = []
        flow = Dataflow("jetstream_real")
        op.output("out", op.input("in", flow, source), TestingSink(out))
        run_main(flow)
    assert [(type(i).__name__, getattr(i, "id", None)) for i in out] == [
        (type(i).__name__, getattr(i, "id", None)) for i in expected
    ]
    assert out == expected
    part = source.partitions[0]
    # the cursor is the newest time_us delivered (the capture is not strictly ordered)
    assert part.snapshot() == max(orjson.loads(raw)["time_us"] for raw in lines)


def test_own_fixture_through_run_main() -> None:
    expected = [i for raw in OWN_FRAMES for i in mapped(raw)]
    with JetstreamServer(OWN_FRAMES) as server:
        source = JetstreamSource(server.url, fast(max_events=len(expected)), batch_size=4)
        out: list[Any] = []
        flow = Dataflow("jetstream_own")
        op.output("out", op.input("in", flow, source), TestingSink(out))
        run_main(flow)
        assert server.connections[0]["query"]["wantedCollections"] == [
            POST,
            "app.bsky.feed.repost",
            "app.bsky.feed.like",
            "app.bsky.graph.follow",
        ]
    strip = lambda i: (type(i).__name__, getattr(i, "id", None), getattr(i, "reason", None))  # noqa: E731
    assert [strip(i) for i in out] == [strip(i) for i in expected]
    assert Counter(type(i).__name__ for i in out) == {
        "SocialEvent": 12,
        "DeadLetter": 7,
        "Withdrawal": 1,
        "AccountPurge": 1,
    }
    metrics = source.partitions[0].metrics
    assert (metrics.frames, metrics.ignored, metrics.dead_letters) == (25, 4, 7)


def test_max_events_ends_the_source() -> None:
    with JetstreamServer(synthetic(20)) as server:
        part = part_for(server.url, fast(max_events=7), batch_size=3)
        items = drain(part, lambda got: False, timeout=3)
    assert len(items) == 7
    with pytest.raises(StopIteration):
        part.next_batch()
    assert not part.reader.alive


def test_small_queue_applies_backpressure_without_loss() -> None:
    frames = synthetic(200)
    with JetstreamServer(frames) as server:
        part = part_for(server.url, fast(queue_size=4), batch_size=3)
        try:
            items = drain(part, lambda got: len(got) >= 200)
        finally:
            part.close()
    assert [i.id.rsplit("/", 1)[1] for i in items] == [f"k{i:05d}" for i in range(200)]
