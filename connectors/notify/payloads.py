"""What each destination type receives for a lifecycle event: pure functions of the event.

- PagerDuty Events API v2: `trigger` / `acknowledge` / `resolve` with `dedup_key = incident_id`.
- Slack incoming webhook: `text` (notification fallback) plus Block Kit `blocks`.
- Standard Webhooks: the CloudEvent bytes as they are in the stream, signed per attempt.

Everything that comes from a customer (texts, handles) is escaped for Slack's mrkdwn and cut to
the receivers' documented limits; only http(s) URLs are ever linked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import urlsplit

from connectors.notify.events import LifecycleEvent

PAGERDUTY_ACTION = {"firing": "trigger", "acknowledged": "acknowledge", "resolved": "resolve"}
PAGERDUTY_CLASS = "unhappy_influential_customer"
PAGERDUTY_SUMMARY_CHARS = 1024
PAGERDUTY_CLIENT = "sense-respond"

SLACK_HEADER_CHARS = 150  # plain_text of a header block
SLACK_SECTION_CHARS = 3000  # text of a section block
SLACK_FALLBACK_CHARS = 4000
SLACK_QUOTE_CHARS = 500

CLOUDEVENTS_JSON = "application/cloudevents+json"

TRANSITION_NOTE = {"escalated": " (escalated)", "repeat": " (still unhappy)"}
"""A firing event's `data.transition` besides "opened": said in the Slack header."""

RESOLVED_WHY = {
    "sentiment_recovered": "sentiment recovered",
    "quiet": "no posts about the business for a while",
    "manual": "resolved by hand",
}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def who(data: dict[str, Any]) -> str:
    """The customer as people name them: `@handle (platform)`, else the customer id."""
    handle = data.get("handle")
    platform = data.get("platform") or ""
    if handle:
        return f"@{handle} ({platform})" if platform else f"@{handle}"
    return str(data.get("customer_id", "?"))


def _sentiment_phrase(data: dict[str, Any]) -> str | None:
    sent = data.get("sentiment") or {}
    if "mean" not in sent:
        return None
    return f"mean sentiment {float(sent['mean']):+.2f} over {sent.get('posts', '?')} posts"


def _influence_phrase(data: dict[str, Any]) -> str | None:
    inf = data.get("influence") or {}
    if not inf:
        return None
    parts = [f"{int(inf.get('followers') or 0):,} followers"]
    pct = inf.get("percentile")
    if pct is not None:
        parts.append(f"influence percentile {float(pct):.2f}")
    if inf.get("inbound_accounts"):
        parts.append(f"{int(inf['inbound_accounts']):,} accounts interacting")
    return ", ".join(parts)


def safe_url(url: Any) -> str | None:
    """`url` if it is an absolute http(s) URL with a host, else None (never link anything else)."""
    if not isinstance(url, str) or len(url) > 2048:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if any(c.isspace() or c in '<>|"' for c in url):
        return None
    return url


def summary_line(event: LifecycleEvent) -> str:
    """One line: who, how unhappy, how influential (PagerDuty's summary, Slack's fallback)."""
    data = event.data
    bits = [f"{event.severity.upper()}: unhappy influential customer {who(data)}"]
    for phrase in (_sentiment_phrase(data), _influence_phrase(data)):
        if phrase:
            bits.append(phrase)
    return _cut(" - ".join(bits), PAGERDUTY_SUMMARY_CHARS)


# -- PagerDuty -------------------------------------------------------------------------------


def pagerduty_body(event: LifecycleEvent, routing_key: str) -> dict[str, Any]:
    """The Events API v2 request body; acknowledge/resolve carry only the three keys."""
    action = PAGERDUTY_ACTION[event.status]
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": event.incident_id,
    }
    if action != "trigger":
        return body
    data = event.data
    platform = str(data.get("platform") or "")
    handle = data.get("handle")
    source = f"{platform}:@{handle}" if handle else str(data.get("customer_id"))
    links = []
    for item in data.get("evidence") or []:
        url = safe_url(item.get("url"))
        if url:
            links.append({"href": url, "text": _cut(f"post: {item.get('text', '')}", 200)})
    body["payload"] = {
        "summary": summary_line(event),
        "source": source,
        "severity": event.severity,
        "timestamp": data.get("event_time"),
        "component": platform or None,
        "group": event.team,
        "class": PAGERDUTY_CLASS,
        "custom_details": {
            "incident_id": event.incident_id,
            "customer_id": data.get("customer_id"),
            "sentiment": data.get("sentiment"),
            "influence": data.get("influence"),
            "evidence": data.get("evidence"),
            "reasons": data.get("reasons"),
            "routing": data.get("routing"),
            "event_id": event.event_id,
        },
    }
    if body["payload"]["component"] is None:
        del body["payload"]["component"]
    if body["payload"]["timestamp"] is None:
        del body["payload"]["timestamp"]
    body["client"] = PAGERDUTY_CLIENT
    if links:
        body["links"] = links
    return body


# -- Slack -----------------------------------------------------------------------------------


def mrkdwn_escape(text: str) -> str:
    """Slack's three control characters as entities: user text can never mention @channel,
    forge a link or break the formatting."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, SLACK_SECTION_CHARS)}}


def _context(text: str) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": _cut(text, SLACK_SECTION_CHARS)}],
    }


def _footer(event: LifecycleEvent) -> dict[str, Any]:
    data = event.data
    teams = ", ".join(mrkdwn_escape(t) for t in event.teams)
    label = "Teams" if len(event.teams) > 1 else "Team"
    return _context(
        f"{label} *{teams}* · incident `{mrkdwn_escape(event.incident_id)}`"
        f" · event time {mrkdwn_escape(str(data.get('event_time', '?')))}"
    )


def slack_body(event: LifecycleEvent) -> dict[str, Any]:
    """An incoming-webhook message: the alert on firing, a short follow-up on ack/resolve."""
    data = event.data
    name = mrkdwn_escape(who(data))
    if event.status == "acknowledged":
        by = mrkdwn_escape(str(data.get("acknowledged_by") or "someone"))
        text = f"Acknowledged by {by}: {name} (incident {event.incident_id})"
        note = data.get("note")
        blocks = [_section(f":eyes: *Acknowledged* by *{by}*: {name}")]
        if note:
            blocks.append(_section(f"> {mrkdwn_escape(_cut(str(note), SLACK_QUOTE_CHARS))}"))
        blocks.append(_footer(event))
        return {"text": _cut(text, SLACK_FALLBACK_CHARS), "blocks": blocks}
    if event.status == "resolved":
        reason = str(data.get("resolved_reason") or "")
        why = mrkdwn_escape(RESOLVED_WHY.get(reason, reason or "resolved"))
        by = data.get("resolved_by")
        by_text = f" by *{mrkdwn_escape(str(by))}*" if by else ""
        text = f"Resolved ({why}): {name} (incident {event.incident_id})"
        blocks = [_section(f":white_check_mark: *Resolved*{by_text}: {name} ({why})")]
        sentiment = _sentiment_phrase(data)
        if sentiment:
            blocks.append(_context(f"Now: {sentiment}"))
        note = data.get("note")
        if note:
            blocks.append(_section(f"> {mrkdwn_escape(_cut(str(note), SLACK_QUOTE_CHARS))}"))
        blocks.append(_footer(event))
        return {"text": _cut(text, SLACK_FALLBACK_CHARS), "blocks": blocks}

    icon = ":rotating_light:" if event.severity == "critical" else ":warning:"
    again = TRANSITION_NOTE.get(str(data.get("transition")), "")
    header = _cut(
        f"{event.severity.upper()}{again}: unhappy influential customer {who(data)}",
        SLACK_HEADER_CHARS,
    )
    fields = [{"type": "mrkdwn", "text": f"*Customer*\n{name}"}]
    fields.append({"type": "mrkdwn", "text": f"*Severity*\n{icon} {event.severity}"})
    sentiment = _sentiment_phrase(data)
    if sentiment:
        fields.append({"type": "mrkdwn", "text": f"*Sentiment*\n{sentiment}"})
    influence = _influence_phrase(data)
    if influence:
        fields.append({"type": "mrkdwn", "text": f"*Followers and reach*\n{influence}"})
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        {"type": "section", "fields": fields},
    ]
    for item in (data.get("evidence") or [])[:5]:
        quote = mrkdwn_escape(_cut(str(item.get("text", "")), SLACK_QUOTE_CHARS))
        quote = "\n".join(f"> {line}" for line in quote.splitlines() or [""])
        meta = f"compound {float(item.get('compound', 0)):+.2f}"
        if item.get("created_at"):
            meta += f" · {mrkdwn_escape(str(item['created_at']))}"
        url = safe_url(item.get("url"))
        if url:
            meta += f" · <{url.replace('&', '&amp;')}|open post>"
        blocks.append(_section(f"{quote}\n{meta}"))
    reasons = [mrkdwn_escape(str(r)) for r in data.get("reasons") or []]
    routing = data.get("routing") or {}
    if routing.get("route"):
        reasons.append(f"routed by {mrkdwn_escape(str(routing['route']))}")
    if reasons:
        blocks.append(_section("*Why it fired*\n" + "\n".join(f"• {r}" for r in reasons)))
    blocks.append(_footer(event))
    text = f"{icon} {summary_line(event)} (team {event.team}, incident {event.incident_id})"
    return {"text": _cut(mrkdwn_escape(text), SLACK_FALLBACK_CHARS), "blocks": blocks}


# -- Standard Webhooks -----------------------------------------------------------------------


def webhook_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), as Standard Webhooks signs."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_request(event: LifecycleEvent, key: bytes, timestamp: int) -> tuple[bytes, dict]:
    """Body and headers of one webhook attempt: the CloudEvent in structured mode, signed.

    The id is the CloudEvent id on every retry (receivers de-duplicate on it); the timestamp and
    signature are per attempt, so a retry is never rejected as a replay of an old request.
    """
    body = event.raw
    headers = {
        "content-type": CLOUDEVENTS_JSON,
        "webhook-id": event.event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": webhook_signature(key, event.event_id, timestamp, body),
    }
    return body, headers
