"""What PagerDuty, Slack and a Standard Webhooks receiver get for each lifecycle event (pure)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson
import pytest

from config.notify import DestinationSettings
from connectors.notify.events import InvalidEvent, parse_entry, takes
from connectors.notify.payloads import (
    mrkdwn_escape,
    pagerduty_body,
    safe_url,
    slack_body,
    summary_line,
    webhook_request,
)
from tests.notify_fixtures import WEBHOOK_KEY, lifecycle_event


def parsed(event: dict, default_team: str = "service"):
    return parse_entry({b"alert": orjson.dumps(event), b"id": event["id"].encode()}, default_team)


def test_pagerduty_trigger_exact_payload() -> None:
    event = parsed(lifecycle_event("firing", "inc-1", team="billing"))
    body = pagerduty_body(event, "R0UTINGKEY")
    data = event.data
    assert body == {
        "routing_key": "R0UTINGKEY",
        "event_action": "trigger",
        "dedup_key": "inc-1",
        "payload": {
            "summary": "CRITICAL: unhappy influential customer @alice.example (bluesky)"
            " - mean sentiment -0.72 over 4 posts"
            " - 120,000 followers, influence percentile 0.99, 35 accounts interacting",
            "source": "bluesky:@alice.example",
            "severity": "critical",
            "timestamp": "2026-11-30T12:00:00Z",
            "component": "bluesky",
            "group": "billing",
            "class": "unhappy_influential_customer",
            "custom_details": {
                "incident_id": "inc-1",
                "customer_id": "bluesky:did:plc:alice",
                "sentiment": data["sentiment"],
                "influence": data["influence"],
                "evidence": data["evidence"],
                "reasons": data["reasons"],
                "routing": {"team": "billing", "route": "default", "matched": []},
                "event_id": event.event_id,
            },
        },
        "client": "sense-respond",
        "links": [
            {
                "href": "https://bsky.app/profile/alice.example/post/1",
                "text": "post: Worst airline ever, lost my bag <again> & no answer",
            }
        ],
    }


@pytest.mark.parametrize(
    ("status", "action"), [("acknowledged", "acknowledge"), ("resolved", "resolve")]
)
def test_pagerduty_ack_and_resolve_carry_only_three_keys(status: str, action: str) -> None:
    body = pagerduty_body(parsed(lifecycle_event(status, "inc-1")), "KEY")
    assert body == {"routing_key": "KEY", "event_action": action, "dedup_key": "inc-1"}


def test_pagerduty_summary_capped_and_no_links_without_urls() -> None:
    event = parsed(
        lifecycle_event(
            "firing",
            "inc-2",
            handle="x" * 2000,
            evidence=[{"id": "p", "text": "bad", "compound": -0.9, "url": "javascript:alert(1)"}],
        )
    )
    body = pagerduty_body(event, "KEY")
    assert len(body["payload"]["summary"]) == 1024
    assert body["payload"]["summary"].endswith("…")
    assert "links" not in body


def test_pagerduty_source_without_handle_is_the_customer_id() -> None:
    body = pagerduty_body(parsed(lifecycle_event("firing", "i", handle=None)), "K")
    assert body["payload"]["source"] == "bluesky:did:plc:alice"


def test_slack_firing_message() -> None:
    event = parsed(lifecycle_event("firing", "inc-1", team="billing", severity="warning"))
    body = slack_body(event)
    assert body["text"].startswith(":warning: WARNING: unhappy influential customer @alice.example")
    assert "team billing, incident inc-1" in body["text"]
    blocks = body["blocks"]
    assert blocks[0] == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": "WARNING: unhappy influential customer @alice.example (bluesky)",
            "emoji": True,
        },
    }
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert fields == [
        "*Customer*\n@alice.example (bluesky)",
        "*Severity*\n:warning: warning",
        "*Sentiment*\nmean sentiment -0.72 over 4 posts",
        "*Followers and reach*\n120,000 followers, influence percentile 0.99,"
        " 35 accounts interacting",
    ]
    # evidence quoted, escaped, linked where the URL is known
    assert blocks[2]["text"]["text"] == (
        "> Worst airline ever, lost my bag &lt;again&gt; &amp; no answer\n"
        "compound -0.91 · 2026-11-30T11:58:00Z"
        " · <https://bsky.app/profile/alice.example/post/1|open post>"
    )
    assert blocks[3]["text"]["text"] == "> Still waiting\ncompound -0.50 · 2026-11-30T11:59:00Z"
    assert blocks[4]["text"]["text"] == (
        "*Why it fired*\n• mean sentiment -0.72 over 4 posts &lt;= -0.35\n"
        "• 120000 followers &gt;= 10000\n• routed by default"
    )
    assert blocks[5] == {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": "Team *billing* · incident `inc-1` · event time 2026-11-30T12:00:00Z",
            }
        ],
    }


def test_slack_cannot_be_made_to_ping_or_forge_links() -> None:
    hostile = "<!channel> <https://evil.example|your bank> &amp;"
    event = parsed(
        lifecycle_event(
            "firing",
            "i",
            handle="h<!here>",
            evidence=[{"id": "p", "text": hostile, "compound": -1, "url": "https://x.example/a>b"}],
        )
    )
    body = slack_body(event)
    header = body["blocks"].pop(0)
    assert header["text"]["type"] == "plain_text"  # shown as typed, never parsed
    dumped = orjson.dumps(body).decode()  # every mrkdwn text and the fallback
    assert "<!channel>" not in dumped and "<!here>" not in dumped
    assert "<https://evil.example" not in dumped and "a>b" not in dumped
    assert "&lt;!channel&gt;" in dumped and "&amp;amp;" in dumped


def test_slack_follow_ups() -> None:
    ack = slack_body(parsed(lifecycle_event("acknowledged", "inc-1")))
    assert ack["text"] == "Acknowledged by sam: @alice.example (bluesky) (incident inc-1)"
    assert (
        ack["blocks"][0]["text"]["text"]
        == ":eyes: *Acknowledged* by *sam*: @alice.example (bluesky)"
    )
    res = slack_body(parsed(lifecycle_event("resolved", "inc-1")))
    assert (
        res["text"] == "Resolved (sentiment recovered): @alice.example (bluesky) (incident inc-1)"
    )
    assert res["blocks"][-1]["elements"][0]["text"].startswith("Team *service* · incident `inc-1`")


def test_slack_block_limits() -> None:
    long = "é" * 5000
    event = parsed(
        lifecycle_event(
            "firing",
            "i",
            handle="h" * 400,
            evidence=[{"id": str(n), "text": long, "compound": -1} for n in range(9)],
        )
    )
    body = slack_body(event)
    assert len(body["blocks"][0]["text"]["text"]) <= 150
    assert len(body["blocks"]) <= 50
    for block in body["blocks"]:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
    assert len(body["text"]) <= 4000


def test_webhook_request_is_the_stream_bytes_signed() -> None:
    event = parsed(lifecycle_event("resolved", "inc-9"))
    body, headers = webhook_request(event, WEBHOOK_KEY, 1_764_583_200)
    assert body == event.raw
    assert headers["content-type"] == "application/cloudevents+json"
    assert headers["webhook-id"] == event.event_id
    assert headers["webhook-timestamp"] == "1764583200"
    expected = base64.b64encode(
        hmac.new(
            WEBHOOK_KEY, f"{event.event_id}.1764583200.".encode() + body, hashlib.sha256
        ).digest()
    ).decode()
    assert headers["webhook-signature"] == "v1," + expected


def test_summary_line_for_events_without_scores() -> None:
    assert summary_line(parsed(lifecycle_event("resolved", "i", severity="warning"))) == (
        "WARNING: unhappy influential customer @alice.example (bluesky)"
    )


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://bsky.app/profile/a/post/1", True),
        ("http://mastodon.example/@a/1", True),
        ("javascript:alert(1)", False),
        ("ftp://x/y", False),
        ("https://", False),
        ("https://a b", False),
        ("https://x/|y", False),
        (None, False),
        (42, False),
    ],
)
def test_safe_url(url: object, ok: bool) -> None:
    assert (safe_url(url) is not None) is ok


def test_mrkdwn_escape() -> None:
    assert mrkdwn_escape("a & <b> &amp;") == "a &amp; &lt;b&gt; &amp;amp;"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({}, "no 'alert' field"),
        ({b"alert": b"{not json"}, "not JSON"),
        ({b"alert": b"[]"}, "alert field"),
        ({b"alert": orjson.dumps({**lifecycle_event("firing", "i"), "type": "other"})}, "unknown"),
        (
            {b"alert": orjson.dumps(lifecycle_event("firing", "i")), b"id": b"another-id"},
            "differs",
        ),
    ],
)
def test_invalid_entries(fields: dict, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        parse_entry(fields, "service")


def test_status_must_match_type_and_incident_is_required() -> None:
    event = lifecycle_event("firing", "i")
    event["data"]["status"] = "resolved"
    with pytest.raises(InvalidEvent, match=r"data\.status"):
        parsed(event)
    event = lifecycle_event("firing", "i")
    del event["data"]["incident_id"]
    with pytest.raises(InvalidEvent, match="incident_id"):
        parsed(event)


def test_events_without_routing_go_to_the_default_team() -> None:
    event = lifecycle_event("firing", "i")
    del event["data"]["routing"]
    assert parsed(event, default_team="care").team == "care"


def _dest(**kw) -> DestinationSettings:
    return DestinationSettings(name="d", type="slack", url="https://h/x", **kw)


@pytest.mark.parametrize(
    ("dest", "event", "taken"),
    [
        ({}, {}, True),
        ({"teams": ["billing"]}, {"team": "billing"}, True),
        ({"teams": ["billing"]}, {"team": "service"}, False),
        ({"teams": ["a", "service"]}, {}, True),
        ({"min_severity": "critical"}, {"severity": "warning"}, False),
        ({"min_severity": "critical"}, {"severity": "critical"}, True),
        ({"min_severity": "warning"}, {"severity": "warning"}, True),
        ({}, {"silenced_by": "silence-1"}, False),
        ({"teams": ["service"]}, {"silenced_by": "s"}, False),
    ],
)
def test_takes(dest: dict, event: dict, taken: bool) -> None:
    assert takes(_dest(**dest), parsed(lifecycle_event("firing", "i", **event))) is taken


def test_events_routed_to_several_teams_reach_each_teams_destinations() -> None:
    event = lifecycle_event("firing", "i", team="service")
    event["data"]["routing"]["teams"] = ["service", "billing"]
    ev = parsed(event)
    assert ev.team == "service" and ev.teams == ("service", "billing")
    assert takes(_dest(teams=["billing"]), ev)
    assert not takes(_dest(teams=["legal"]), ev)
    footer = slack_body(ev)["blocks"][-1]["elements"][0]["text"]
    assert footer.startswith("Teams *service, billing* · incident `i`")
    assert pagerduty_body(ev, "K")["payload"]["group"] == "service"  # the primary team


def test_slack_says_escalated_and_resolution_details() -> None:
    event = lifecycle_event("firing", "i")
    event["data"]["transition"] = "escalated"
    header = slack_body(parsed(event))["blocks"][0]["text"]["text"]
    assert header.startswith("CRITICAL (escalated): unhappy influential customer")
    resolved = lifecycle_event("resolved", "i")
    resolved["data"] |= {"sentiment": {"mean": 0.12, "posts": 5}, "note": "refund <sent>"}
    resolved["data"]["resolved_reason"] = "manual"
    resolved["data"]["resolved_by"] = "ana"
    blocks = slack_body(parsed(resolved))["blocks"]
    assert blocks[0]["text"]["text"] == (
        ":white_check_mark: *Resolved* by *ana*: @alice.example (bluesky) (resolved by hand)"
    )
    assert blocks[1]["elements"][0]["text"] == "Now: mean sentiment +0.12 over 5 posts"
    assert blocks[2]["text"]["text"] == "> refund &lt;sent&gt;"
