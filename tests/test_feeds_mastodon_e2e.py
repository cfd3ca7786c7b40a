"""End to end over a live Mastodon stream: a status is deleted, another edited, and the SSE
connection drops twice (the stream resumes where it is, without replay); the alert fires on the
edited status and every view counts each live status once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis
from feed_flow import COMMON, RULE, assert_closed, compounds, live_source, run_flow, sentiment_view
from feed_plumbing import FAST_FEED
from redis_helpers import stream_alerts
from sse_server import SseServer

from config.settings import load_settings
from connectors.mastodon_statuses import html_to_text
from connectors.redis_client import dlq_key

M_LOUD = "110000000000000042"
M_CALM = "110000000000000007"
M_GRUMPY = "110000000000000013"
ACCOUNTS = {
    M_LOUD: ("loud", 25_000),  # over the 10k follower threshold, under the critical 100k
    M_CALM: ("calm", 80),
    M_GRUMPY: ("grumpy", 12),  # unhappy, but nobody listens
}
FIRST_HTML = "<p>The Acme headphones are okay I guess.</p>"
EDITED_HTML = (
    "<p>Acme headphones broke after a day. Awful quality, total rip-off, I&#39;m furious.</p>"
)
DELETED_HTML = "<p>Acme refund denied. Horrible, dishonest company, I am angry.</p>"
THIRD_HTML = "<p>Acme lost my order again. Terrible, awful, horrible support.</p>"
LAST_HTML = '<p>Still waiting on <span class="h-card">@Acme</span>. Not happy.</p>'


def m_status(
    status_id: str, account_id: str, created: datetime, html: str, edited: datetime | None = None
) -> dict[str, Any]:
    """A Mastodon Status, with the fields the mapping reads."""
    username, followers = ACCOUNTS[account_id]

    def iso(moment: datetime) -> str:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    return {
        "id": status_id,
        "created_at": iso(created),
        "edited_at": None if edited is None else iso(edited),
        "in_reply_to_id": None,
        "in_reply_to_account_id": None,
        "spoiler_text": "",
        "visibility": "public",
        "language": "en",
        "uri": f"https://social.example/users/{username}/statuses/{status_id}",
        "url": f"https://social.example/@{username}/{status_id}",
        "content": html,
        "account": {
            "id": account_id,
            "username": username,
            "acct": username,
            "followers_count": followers,
        },
        "mentions": [],
        "reblog": None,
    }


def sse(event: str, payload: dict[str, Any] | str) -> str:
    """One SSE frame as Mastodon's streaming server writes it."""
    data = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
    return f"event: {event}\ndata: {data}\n\n"


def mastodon_conversation(t0: datetime) -> tuple[list[str], dict[str, str], dict[str, int]]:
    """SSE frames, the status ids the assertions name, and where the connection drops (frames
    sent on connection i before it breaks)."""
    ids = {
        "first": "112000000000000101",  # okay-ish, later edited to furious
        "deleted": "112000000000000103",
        "third": "112000000000000106",
        "last": "112000000000000110",
    }
    at = {k: t0 + timedelta(seconds=10 * n) for n, k in enumerate("abcdefghij")}
    frames = [
        sse("update", m_status(ids["first"], M_LOUD, at["a"], FIRST_HTML)),
        sse("update", m_status("112000000000000102", M_CALM, at["b"], "<p>Lovely day!</p>")),
        sse("update", m_status(ids["deleted"], M_LOUD, at["c"], DELETED_HTML)),
        sse("update", m_status("112000000000000104", M_GRUMPY, at["d"], THIRD_HTML)),
        sse("delete", ids["deleted"]),
        # -- connection 0 breaks here
        sse("update", m_status(ids["third"], M_LOUD, at["f"], THIRD_HTML)),
        ":thump\n",
        sse("update", m_status("112000000000000107", M_GRUMPY, at["g"], DELETED_HTML)),
        sse("status.update", m_status(ids["first"], M_LOUD, at["a"], EDITED_HTML, at["h"])),
        # -- connection 1 breaks here
        sse("update", m_status(ids["last"], M_LOUD, at["i"], LAST_HTML)),
        sse("update", m_status("112000000000000111", M_CALM, at["j"], "<p>Good coffee.</p>")),
    ]
    return frames, ids, {0: 5, 1: 3}


def test_mastodon_delete_edit_and_dropped_stream_through_the_flow(
    redis_url: str, redis_prefix: str, redis_client: redis.Redis, no_leftover_threads: None
) -> None:
    first, edited, deleted, third, last = compounds(
        [html_to_text(h) for h in (FIRST_HTML, EDITED_HTML, DELETED_HTML, THIRD_HTML, LAST_HTML)]
    )
    # The scenario's premises: no alert until the edit, unless the deleted status is counted
    # (then the third status fires it); the edit alone turns the account unhappy.
    assert first > 0 > edited and deleted < 0 and third < 0
    assert (first + deleted) / 2 > RULE and (first + third) / 2 > RULE
    assert (first + deleted + third) / 3 <= RULE
    assert (edited + third) / 2 <= RULE

    t0 = (datetime.now(UTC) - timedelta(minutes=30)).replace(microsecond=0)
    frames, ids, drops = mastodon_conversation(t0)
    items = sum(1 for f in frames if f.startswith("event:"))  # each maps to one item
    with SseServer("".join(frames), drops=drops) as server:
        settings = load_settings(
            overrides={
                **COMMON,
                "input": f"mastodon:{server.url('/api/v1/streaming/public')}",
                "redis": {"url": redis_url, "prefix": redis_prefix},
                "mastodon": {
                    **FAST_FEED,
                    "max_events": items,
                    "idle_timeout_seconds": 5.0,  # a safety net: the run must end
                },
            },
            environ={},
        )
        source = live_source(settings, redis_url)
        run_flow(settings, source)
        requests, served, port = server.requests, server.served, server.port
    assert_closed(port)

    # Two drops, two reconnects, and the statuses after each reconnect still arrived.
    assert len(requests) == 3
    metrics = source.partitions[0].metrics
    assert (metrics.reconnects, metrics.gaps) == (2, 2)
    assert metrics.withdrawals == 1 and metrics.unknown_deletes == 0
    assert any(ids["third"] in block for block in served[1])
    assert any(ids["last"] in block for block in served[2])

    alerts = stream_alerts(redis_client, redis_prefix)
    assert [a["subject"] for a in alerts] == [f"mastodon:{M_LOUD}"], alerts
    data = alerts[0]["data"]
    # The edit made the rule true: the alert fires on the edited status.
    assert data["trigger_event_id"] == ids["first"]
    assert data["handle"] == "loud" and data["influence"]["followers"] == 25_000
    evidence = {e["id"]: e for e in data["evidence"]}
    assert set(evidence) == {ids["first"], ids["third"]}  # the deleted status is gone
    assert evidence[ids["first"]]["compound"] == pytest.approx(edited)
    assert evidence[ids["first"]]["text"] == html_to_text(EDITED_HTML)
    assert data["sentiment"]["posts"] == 2
    assert data["sentiment"]["mean"] == pytest.approx((edited + third) / 2, abs=1e-4)

    # The last status arrived after the second reconnect; the edited status counts once, with
    # its new score.
    view = sentiment_view(redis_client, redis_prefix, f"mastodon:{M_LOUD}")
    assert view["posts"] == 3
    assert view["mean"] == pytest.approx((edited + third + last) / 3, abs=1e-4)
    assert sentiment_view(redis_client, redis_prefix, f"mastodon:{M_GRUMPY}")["posts"] == 2
    assert redis_client.xlen(dlq_key(redis_prefix)) == 0
