"""The notifier against real Redis and real local HTTP servers standing in for PagerDuty, Slack
and a webhook receiver (each notifier runs in a thread of the test process)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import socket
import threading
import time

import orjson
import pytest
import redis

from config.notify import DestinationSettings
from connectors.notify.deadline import environment_proxy
from connectors.notify.metrics import NOTIFY_REGISTRY
from connectors.notify.store import NotifyStore
from tests.notify_fixtures import (
    WEBHOOK_KEY,
    WEBHOOK_SECRET,
    Receiver,
    Reply,
    free_port,
    lifecycle_event,
    wait_for,
    xadd_events,
)
from tests.notify_harness import (
    dead_letters,
    drained,
    notify_settings,
    pagerduty,
    pending_count,
    running,
    slack,
    webhook,
)


def verify_standard_webhook(headers: dict[str, str], body: bytes) -> None:
    """What a receiver does: recompute the HMAC over id.timestamp.body and compare."""
    msg_id, ts = headers["webhook-id"], headers["webhook-timestamp"]
    assert abs(int(ts) - time.time()) < 300
    expected = base64.b64encode(
        hmac.new(WEBHOOK_KEY, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    signatures = [s.split(",", 1)[1] for s in headers["webhook-signature"].split()]
    assert any(hmac.compare_digest(expected, s) for s in signatures)


def metric(name: str, destination: str) -> float:
    return NOTIFY_REGISTRY.get_sample_value(name, {"destination": destination}) or 0.0


def test_delivers_to_every_destination_exact_payloads_markers_acks(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    with Receiver() as pd, Receiver() as chat, Receiver() as crm:
        settings = notify_settings(
            redis_url,
            redis_prefix,
            [pagerduty("pd1", pd.url), slack("chat1", chat.url), webhook("crm1", crm.url)],
        )
        events = [
            lifecycle_event("firing", "inc-1"),
            lifecycle_event("acknowledged", "inc-1"),
            lifecycle_event("resolved", "inc-1"),
        ]
        sent_before = metric("sense_respond_notify_sent_total", "pd1")
        xadd_events(redis_client, redis_prefix, events)
        with running(settings):
            wait_for(lambda: len(crm.delivered()) == 3 and len(pd.delivered()) == 3, what="3+3")
            wait_for(lambda: len(chat.delivered()) == 3, what="slack")
            wait_for(lambda: drained(redis_client, redis_prefix), what="acks")

    actions = [r.json() for r in pd.delivered()]
    assert [a["event_action"] for a in actions] == ["trigger", "acknowledge", "resolve"]
    assert all(a["dedup_key"] == "inc-1" and a["routing_key"] == "R0UTINGKEY" for a in actions)
    assert actions[1] == {
        "routing_key": "R0UTINGKEY",
        "event_action": "acknowledge",
        "dedup_key": "inc-1",
    }
    assert actions[0]["payload"]["class"] == "unhappy_influential_customer"
    assert pd.delivered()[0].headers["content-type"] == "application/json"

    texts = [r.json()["text"] for r in chat.delivered()]
    assert texts[0].startswith(":rotating_light: CRITICAL: unhappy influential customer")
    assert texts[1].startswith("Acknowledged by sam") and texts[2].startswith("Resolved")

    for request, event in zip(crm.delivered(), events, strict=True):
        assert request.headers["content-type"] == "application/cloudevents+json"
        assert request.headers["webhook-id"] == event["id"]
        assert orjson.loads(request.body) == event  # the CloudEvent itself (structured mode)
        verify_standard_webhook(request.headers, request.body)

    for name in ("pd1", "chat1", "crm1"):
        for event in events:
            marker = redis_client.get(f"{redis_prefix}notify:delivered:{name}:{event['id']}")
            assert marker == b"sent"
    assert metric("sense_respond_notify_sent_total", "pd1") - sent_before == 3
    assert redis_client.xlen(f"{redis_prefix}notify:dlq") == 0


def test_retries_after_500_429_and_a_connection_reset(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    script = [
        Reply(500, body=b"boom"),
        Reply(reset=True),
        Reply(429, headers={"Retry-After": "1"}, body=b"slow down"),
        Reply(502),
    ]
    with Receiver(script) as hook:
        settings = notify_settings(redis_url, redis_prefix, [webhook("crm2", hook.url)])
        retries_before = metric("sense_respond_notify_retries_total", "crm2")
        (event,) = [lifecycle_event("firing", "inc-2")]
        xadd_events(redis_client, redis_prefix, [event])
        with running(settings):
            wait_for(lambda: len(hook.delivered()) == 1, what="delivery after retries")
            wait_for(lambda: drained(redis_client, redis_prefix), what="ack")
    attempts = hook.requests
    assert len(attempts) == 5
    assert {r.headers["webhook-id"] for r in attempts} == {event["id"]}  # same id every retry
    for r in attempts:
        verify_standard_webhook(r.headers, r.body)  # re-signed per attempt
    # Retry-After: 1 honoured (a lower bound: load only makes the gap longer)
    assert attempts[3].at - attempts[2].at >= 0.95
    assert metric("sense_respond_notify_retries_total", "crm2") - retries_before == 4
    # the URL is a secret: logs name scheme, host and port only (httpx's own lines included)
    assert "retry in" in caplog.text and "/hook" not in caplog.text
    assert WEBHOOK_SECRET not in caplog.text
    assert redis_client.xlen(f"{redis_prefix}notify:dlq") == 0


def test_400_is_not_retried_and_goes_to_the_dead_letters(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    with Receiver(default=Reply(400, body=b'{"status":"invalid event"}')) as pd:
        settings = notify_settings(redis_url, redis_prefix, [pagerduty("pd3", pd.url)])
        before = metric("sense_respond_notify_dead_letters_total", "pd3")
        event = lifecycle_event("firing", "inc-3")
        xadd_events(redis_client, redis_prefix, [event])
        with running(settings):
            wait_for(lambda: drained(redis_client, redis_prefix), what="ack")
            time.sleep(0.3)  # a retry would arrive within this (retry_initial 0.05 s)
    assert len(pd.requests) == 1
    (letter,) = dead_letters(redis_client, redis_prefix)
    assert letter["destination"] == b"pd3"
    assert letter["status"] == b"400"
    assert letter["reason"].startswith(b'rejected: HTTP 400: {"status":"invalid event"}')
    assert orjson.loads(letter["event"]) == event
    assert redis_client.get(f"{redis_prefix}notify:delivered:pd3:{event['id']}") == b"dead"
    assert metric("sense_respond_notify_dead_letters_total", "pd3") - before == 1
    assert b"R0UTINGKEY" not in b"".join(letter.values())


def test_gives_up_after_max_attempts(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    with Receiver(default=Reply(503)) as chat:
        settings = notify_settings(
            redis_url, redis_prefix, [slack("chat4", chat.url)], max_attempts=3
        )
        xadd_events(redis_client, redis_prefix, [lifecycle_event("firing", "inc-4")])
        with running(settings):
            wait_for(lambda: drained(redis_client, redis_prefix), what="dead letter + ack")
    assert len(chat.requests) == 3
    (letter,) = dead_letters(redis_client, redis_prefix)
    assert letter["status"] == b"503"
    assert letter["reason"].startswith(b"gave up after 3 attempts")
    assert chat.url.encode() not in letter["reason"]


def test_gives_up_after_max_retry_seconds(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    url = f"http://127.0.0.1:{free_port()}/closed"  # nothing listens: connection refused
    settings = notify_settings(
        redis_url, redis_prefix, [webhook("crm5", url)], max_retry_seconds=0.5, max_attempts=1000
    )
    xadd_events(redis_client, redis_prefix, [lifecycle_event("firing", "inc-5")])
    with running(settings):
        wait_for(lambda: drained(redis_client, redis_prefix), what="dead letter + ack")
    (letter,) = dead_letters(redis_client, redis_prefix)
    assert letter["status"] == b"network"
    assert b"ConnectError" in letter["reason"]


class TrickleReceiver:
    """An HTTP receiver that answers one header byte every `every` seconds, for ever: each read
    gets a byte well within any read timeout, the answer never completes."""

    def __init__(self, every: float = 0.2) -> None:
        self.every = every
        self.requests = 0
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}/hook"

    def __enter__(self) -> TrickleReceiver:
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.requests += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while not self._stop.wait(self.every):
                    conn.sendall(b"a")
            except OSError:
                pass  # the notifier gave up on it


def test_a_receiver_that_trickles_its_answer_fails_the_attempt_at_its_timeout(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    """`timeout_seconds` bounds a whole attempt, not only each read: a receiver that never
    finishes its answer costs the destination's incidents `max_attempts` timeouts each, then a
    dead letter, instead of holding them all for as long as it trickles."""
    with TrickleReceiver() as slow:
        settings = notify_settings(
            redis_url,
            redis_prefix,
            [webhook("slow7", slow.url)],
            timeout_seconds=1.0,
            max_attempts=2,
        )
        events = [lifecycle_event("firing", "inc-7a"), lifecycle_event("firing", "inc-7b")]
        xadd_events(redis_client, redis_prefix, events)
        with running(settings):
            wait_for(lambda: drained(redis_client, redis_prefix), timeout=30, what="dead letters")
    letters = dead_letters(redis_client, redis_prefix)
    assert sorted(orjson.loads(letter["event"])["id"] for letter in letters) == sorted(
        e["id"] for e in events
    )
    for letter in letters:
        assert letter["status"] == b"network"
        assert letter["reason"].startswith(b"gave up after 2 attempts")
        assert b"ReadTimeout" in letter["reason"]  # at the deadline, mid-read or before one
    assert slow.requests == 4  # two attempts per event


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def _no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.mark.parametrize(
    ("env", "url", "proxy"),
    [
        ({}, "https://events.pagerduty.com/v2/enqueue", None),
        (
            {"HTTPS_PROXY": "http://proxy.corp:3128"},
            "https://hooks.slack.com/x",
            "http://proxy.corp:3128",
        ),
        ({"HTTPS_PROXY": "proxy.corp:3128"}, "https://hooks.slack.com/x", "http://proxy.corp:3128"),
        ({"HTTP_PROXY": "http://p:1"}, "https://hooks.slack.com/x", None),  # https: not HTTP_PROXY
        ({"ALL_PROXY": "http://p:1"}, "https://hooks.slack.com/x", "http://p:1"),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "slack.com"}, "https://hooks.slack.com/x", None),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.org"},
            "https://hooks.slack.com/x",
            "http://p:1",
        ),
        ({"ALL_PROXY": "socks5://p:1080"}, "https://hooks.slack.com/x", None),  # not used: warned
    ],
)
def test_the_proxy_for_a_destination_is_the_one_httpx_would_take(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], url: str, proxy: str | None
) -> None:
    _no_proxy_variables(monkeypatch)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert environment_proxy(url) == proxy


def test_requests_go_through_the_proxy_the_environment_names(
    redis_url: str,
    redis_client: redis.Redis,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`HTTP_PROXY` (and `HTTPS_PROXY`, `NO_PROXY`) are honoured as httpx honours them: the
    destination's host does not even resolve here, only the proxy can answer for it."""
    with Receiver() as proxy:
        _no_proxy_variables(monkeypatch)
        monkeypatch.setenv("HTTP_PROXY", proxy.url.removesuffix("/hook"))
        url = "http://hooks.destination.invalid/services/T0/B0"
        settings = notify_settings(redis_url, redis_prefix, [webhook("via-proxy", url)])
        event = lifecycle_event("firing", "inc-proxy")
        xadd_events(redis_client, redis_prefix, [event])
        with running(settings):
            wait_for(lambda: drained(redis_client, redis_prefix), what="delivery")
        [request] = proxy.delivered()
    assert request.path == url  # the absolute form: a request to forward
    assert request.headers["webhook-id"] == event["id"]
    assert dead_letters(redis_client, redis_prefix) == []


def test_a_down_destination_does_not_block_another(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    down = f"http://127.0.0.1:{free_port()}/down"
    with Receiver() as chat:
        settings = notify_settings(
            redis_url, redis_prefix, [webhook("down6", down), slack("chat6", chat.url)]
        )
        events = [lifecycle_event("firing", f"inc-6-{n}") for n in range(5)]
        xadd_events(redis_client, redis_prefix, events)
        with running(settings):
            wait_for(lambda: len(chat.delivered()) == 5, what="slack while the webhook is down")
            # nothing is acknowledged: the down destination is not done
            assert pending_count(redis_client, redis_prefix) == 5
    assert redis_client.xlen(f"{redis_prefix}notify:dlq") == 0


def test_order_per_incident_while_one_event_retries(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    """Incident A's trigger fails twice: A's ack and resolve wait for it, B is not held up."""
    failures = {"left": 2}

    def reply_for(request):
        body = orjson.loads(request.body)
        if body["dedup_key"] == "A" and body["event_action"] == "trigger" and failures["left"]:
            failures["left"] -= 1
            return Reply(500)
        return None

    with Receiver(default=Reply(202), reply_for=reply_for) as pd:
        settings = notify_settings(
            redis_url,
            redis_prefix,
            [pagerduty("pd7", pd.url)],
            retry_initial_seconds=0.3,
            retry_max_seconds=1.0,
        )
        xadd_events(
            redis_client,
            redis_prefix,
            [
                lifecycle_event("firing", "A"),
                lifecycle_event("acknowledged", "A"),
                lifecycle_event("firing", "B"),
                lifecycle_event("resolved", "A"),
                lifecycle_event("resolved", "B"),
            ],
        )
        with running(settings):
            wait_for(lambda: len(pd.delivered()) == 5, what="all five")
    got = [(b["dedup_key"], b["event_action"]) for b in (r.json() for r in pd.delivered())]
    assert [a for k, a in got if k == "A"] == ["trigger", "acknowledge", "resolve"]
    assert [a for k, a in got if k == "B"] == ["trigger", "resolve"]
    # B went while A's trigger was in backoff
    assert got.index(("B", "trigger")) < got.index(("A", "trigger"))


def test_silenced_teams_and_severity_filters(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    with Receiver() as billing, Receiver() as critical:
        settings = notify_settings(
            redis_url,
            redis_prefix,
            [
                slack("billing8", billing.url, teams=["billing"]),
                webhook("crit8", critical.url, min_severity="critical"),
            ],
        )
        xadd_events(
            redis_client,
            redis_prefix,
            [
                lifecycle_event("firing", "s", team="billing", silenced_by="silence-1"),
                lifecycle_event("firing", "b", team="billing", severity="warning"),
                lifecycle_event("firing", "c", team="service", severity="critical"),
                lifecycle_event("firing", "w", team="service", severity="warning"),
            ],
        )
        with running(settings):
            wait_for(lambda: drained(redis_client, redis_prefix), what="all acked")
    assert [orjson.loads(r.body)["text"].split("incident ")[-1] for r in billing.delivered()] == [
        "b)"
    ]
    assert [orjson.loads(r.body)["data"]["incident_id"] for r in critical.delivered()] == ["c"]


@pytest.mark.parametrize("start_from", ["oldest", "new"])
def test_start_from(
    start_from: str, redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    with Receiver() as hook:
        settings = notify_settings(
            redis_url, redis_prefix, [webhook("crm9", hook.url)], start_from=start_from
        )
        xadd_events(redis_client, redis_prefix, [lifecycle_event("firing", "before")])
        with running(settings):
            wait_for(
                lambda: (
                    redis_client.exists(f"{redis_prefix}alerts")
                    and redis_client.xinfo_groups(f"{redis_prefix}alerts")
                ),
                what="group",
            )
            xadd_events(redis_client, redis_prefix, [lifecycle_event("firing", "after")])
            wait_for(lambda: drained(redis_client, redis_prefix), what="acks")
            expected = ["before", "after"] if start_from == "oldest" else ["after"]
            wait_for(lambda: len(hook.delivered()) == len(expected), what="deliveries")
    got = [orjson.loads(r.body)["data"]["incident_id"] for r in hook.delivered()]
    assert got == expected


def test_a_redelivered_entry_with_a_marker_is_not_sent_again(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    with Receiver() as hook:
        settings = notify_settings(redis_url, redis_prefix, [webhook("crm10", hook.url)])
        done, todo = lifecycle_event("firing", "m"), lifecycle_event("resolved", "m")
        redis_client.set(f"{redis_prefix}notify:delivered:crm10:{done['id']}", b"sent")
        xadd_events(redis_client, redis_prefix, [done, todo])
        with running(settings):
            wait_for(lambda: drained(redis_client, redis_prefix), what="acks")
    assert [r.headers["webhook-id"] for r in hook.delivered()] == [todo["id"]]


def test_unreadable_entries_are_dead_lettered_and_acked(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    with Receiver() as hook:
        settings = notify_settings(redis_url, redis_prefix, [webhook("crm11", hook.url)])
        redis_client.xadd(f"{redis_prefix}alerts", {"alert": b"{nope", "id": b"x"})
        xadd_events(redis_client, redis_prefix, [lifecycle_event("firing", "ok")])
        with running(settings):
            wait_for(lambda: drained(redis_client, redis_prefix), what="acks")
    (letter,) = dead_letters(redis_client, redis_prefix)
    assert letter["destination"] == b"*" and letter["status"] == b"invalid"
    assert letter["event"] == b"{nope" and letter["reason"].startswith(b"alert is not JSON")
    assert len(hook.delivered()) == 1


def test_a_dead_consumers_earlier_event_holds_back_the_later_one(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    """Another notifier read incident X's trigger and died. This one reads X's resolve: it must
    not send it before the trigger, which it takes over once the dead consumer is idle."""
    stream = f"{redis_prefix}alerts"
    redis_client.xgroup_create(stream, "notifier", id="0", mkstream=True)
    trigger, other, resolve = (
        lifecycle_event("firing", "X"),
        lifecycle_event("firing", "Y"),
        lifecycle_event("resolved", "X"),
    )
    xadd_events(redis_client, redis_prefix, [trigger])
    redis_client.xreadgroup("notifier", "dead-one", {stream: ">"}, count=1)  # then it "dies"
    xadd_events(redis_client, redis_prefix, [other, resolve])
    with Receiver() as pd:
        settings = notify_settings(
            redis_url, redis_prefix, [pagerduty("pd12", pd.url)], claim_idle_seconds=0.6
        )
        with running(settings):
            wait_for(lambda: len(pd.delivered()) == 3, what="all three")
            wait_for(lambda: drained(redis_client, redis_prefix), what="acks")
    got = [(b["dedup_key"], b["event_action"]) for b in (r.json() for r in pd.delivered())]
    assert sorted(got) == [("X", "resolve"), ("X", "trigger"), ("Y", "trigger")]
    assert got.index(("X", "trigger")) < got.index(("X", "resolve"))


def test_two_notifiers_share_the_group_exactly_once_in_order(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    """Two consumers of one group, small reads so they interleave within incidents; a receiver
    that answers with random delays. Every event once, every incident in order."""
    import random

    rng = random.Random(7)
    with Receiver(reply_for=lambda _r: Reply(202, delay=rng.random() * 0.03)) as pd:
        settings = notify_settings(
            redis_url, redis_prefix, [pagerduty("pd13", pd.url)], read_count=1
        )
        events = []
        for n in range(12):
            events += [
                lifecycle_event("firing", f"I{n}"),
                lifecycle_event("acknowledged", f"I{n}"),
                lifecycle_event("resolved", f"I{n}"),
            ]
        # interleave incidents in the stream: triggers, then acks, then resolves, in pairs
        ordered = sorted(
            events,
            key=lambda e: (
                int(e["data"]["incident_id"][1:]) // 2,
                ["firing", "acknowledged", "resolved"].index(e["data"]["status"]),
            ),
        )
        with running(settings), running(settings):
            xadd_events(redis_client, redis_prefix, ordered)
            wait_for(lambda: len(pd.delivered()) == len(events), timeout=60, what="all")
            wait_for(lambda: drained(redis_client, redis_prefix), what="acks")
    got = [(b["dedup_key"], b["event_action"]) for b in (r.json() for r in pd.delivered())]
    assert len(got) == len(set(got)) == 36
    for n in range(12):
        assert [a for k, a in got if k == f"I{n}"] == ["trigger", "acknowledge", "resolve"]
    consumers = redis_client.xinfo_consumers(f"{redis_prefix}alerts", "notifier")
    assert len(consumers) == 2


def test_slack_rate_limit_and_429_pause(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    """At most max_per_second: the k-th message cannot arrive before t0 + (k-1)/rate, where t0
    precedes the first send (a lower bound, so load cannot break it; without the limiter all
    six arrive at once). A 429's Retry-After pauses the whole destination."""
    rate = 5.0
    with Receiver() as chat:
        settings = notify_settings(
            redis_url, redis_prefix, [slack("chat14", chat.url, max_per_second=rate)]
        )
        t0 = time.monotonic()
        xadd_events(
            redis_client, redis_prefix, [lifecycle_event("firing", f"R{n}") for n in range(6)]
        )
        with running(settings):
            wait_for(lambda: len(chat.delivered()) == 6, what="six messages")
        arrivals = [r.at for r in chat.requests]
    assert len(chat.requests) == 6
    for k, at in enumerate(arrivals):
        assert at >= t0 + k / rate - 0.01, (k, at - t0)

    script = [Reply(), Reply(429, headers={"Retry-After": "1"}, body=b"rate_limited")]
    with Receiver(script) as chat:
        settings = notify_settings(
            redis_url, redis_prefix + "b:", [slack("chat15", chat.url, max_per_second=50.0)]
        )
        xadd_events(
            redis_client,
            redis_prefix + "b:",
            [lifecycle_event("firing", f"Q{n}") for n in range(3)],
        )
        with running(settings):
            wait_for(lambda: len(chat.delivered()) == 3, what="three after the 429")
    assert len(chat.requests) == 4
    limited = chat.requests[1]
    # nothing at all reaches the destination during the Retry-After pause
    assert all(r.at - limited.at >= 0.95 for r in chat.requests[2:])


def test_the_same_cloudevent_in_two_entries_is_delivered_once(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    with Receiver() as hook:
        settings = notify_settings(redis_url, redis_prefix, [webhook("crm16", hook.url)])
        event = lifecycle_event("firing", "dup")
        xadd_events(redis_client, redis_prefix, [event, event])
        with running(settings):
            wait_for(lambda: drained(redis_client, redis_prefix), what="acks")
    assert [r.headers["webhook-id"] for r in hook.requests] == [event["id"]]


def test_a_live_notifier_keeps_its_slow_entries_from_being_taken_over(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    """A request that takes longer than claim_idle_seconds: the owner renews its entry, so the
    second notifier does not take it over and send it again."""
    with Receiver([Reply(delay=2.0)]) as hook:
        settings = notify_settings(
            redis_url, redis_prefix, [webhook("crm17", hook.url)], claim_idle_seconds=0.6
        )
        event = lifecycle_event("firing", "slow")
        with running(settings):
            xadd_events(redis_client, redis_prefix, [event])
            wait_for(lambda: len(hook.requests) == 1, what="the slow request")
            with running(settings):
                wait_for(lambda: drained(redis_client, redis_prefix), what="ack")
                time.sleep(0.3)
    assert [r.headers["webhook-id"] for r in hook.requests] == [event["id"]]


def test_response_bodies_are_read_only_up_to_the_cap() -> None:
    """A receiver announcing a huge body and stalling after 8 KiB: the notifier reads 2 KiB, so
    it gets the status instead of hanging until the read timeout."""
    from config.notify import NotifySettings
    from connectors.notify.events import parse_entry
    from connectors.notify.sender import Sender

    with Receiver(default=Reply(400, body=b"e" * 8192, stall=True)) as hook:
        notify = NotifySettings(max_response_bytes=2048, timeout_seconds=20)
        sender = Sender(DestinationSettings(**webhook("crm18", hook.url)), notify)
        event = lifecycle_event("firing", "big")
        parsed = parse_entry({b"alert": orjson.dumps(event), b"id": event["id"].encode()}, "s")
        try:
            attempt = sender.send(parsed)
        finally:
            sender.close()
            hook.release()
    assert attempt.status == 400
    assert attempt.reason.startswith("HTTP 400: eee") and len(attempt.reason) <= 300


def test_a_fixed_consumer_name_picks_up_its_own_unfinished_entries_at_once(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    """`notify.consumer` set: the restart does not wait claim_idle_seconds for its own entries."""
    stream = f"{redis_prefix}alerts"
    redis_client.xgroup_create(stream, "notifier", id="0", mkstream=True)
    events = [lifecycle_event("firing", "F"), lifecycle_event("resolved", "F")]
    xadd_events(redis_client, redis_prefix, events)
    redis_client.xreadgroup("notifier", "notifier-1", {stream: ">"})  # read, then "crashed"
    with Receiver() as hook:
        settings = notify_settings(
            redis_url,
            redis_prefix,
            [webhook("crm19", hook.url)],
            consumer="notifier-1",
            claim_idle_seconds=3600,
        )
        with running(settings):
            wait_for(lambda: drained(redis_client, redis_prefix), what="acks")
    assert [r.headers["webhook-id"] for r in hook.delivered()] == [e["id"] for e in events]


def test_stops_cleanly_while_redis_was_never_reachable() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    settings = notify_settings(url, "sr:", [webhook("crm20", "http://127.0.0.1:9/x")])
    with running(settings):
        time.sleep(0.3)


def test_a_429_pauses_a_destination_without_a_rate_limit_too(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    script = [Reply(429, headers={"Retry-After": "1"}, body=b"Too many")]
    with Receiver(script, default=Reply(202)) as pd:
        settings = notify_settings(redis_url, redis_prefix, [pagerduty("pd21", pd.url)])
        xadd_events(
            redis_client, redis_prefix, [lifecycle_event("firing", f"P{n}") for n in range(3)]
        )
        with running(settings):
            wait_for(lambda: len(pd.delivered()) == 3, what="three after the 429")
    limited = pd.requests[0]
    assert len(pd.requests) == 4
    assert all(r.at - limited.at >= 0.95 for r in pd.requests[1:])


def test_alerts_trimmed_before_any_notifier_read_them_are_logged_and_counted(
    redis_url: str,
    redis_client: redis.Redis,
    redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The notifier is down while more alerts arrive than the stream keeps (the alert sink's
    `XADD MAXLEN ~`): the oldest are gone before anyone read them. Nothing can page for them;
    the notifier says how many, once."""
    _needs_redis_7(redis_client)
    stream = f"{redis_prefix}alerts"

    def append(event: dict) -> None:
        fields = {"alert": orjson.dumps(event), "id": event["id"]}
        redis_client.xadd(stream, fields, maxlen=100, approximate=True)

    def trimmed() -> float:
        return NOTIFY_REGISTRY.get_sample_value("sense_respond_notify_trimmed_unread_total") or 0

    with Receiver() as crm:
        settings = notify_settings(redis_url, redis_prefix, [webhook("crm", crm.url)])
        append(lifecycle_event("firing", "first"))
        with running(settings):
            wait_for(lambda: drained(redis_client, redis_prefix), what="the first alert")
        for i in range(600):  # the notifier is down; the flow goes on
            append(lifecycle_event("firing", f"inc-{i}"))
        kept = redis_client.xlen(stream)
        before = trimmed()
        quiet_log = caplog.at_level(logging.ERROR, logger="connectors.notify.service")
        with quiet_log, running(settings):
            wait_for(lambda: len(crm.delivered()) == 1 + kept, what="what the stream kept")
            wait_for(lambda: drained(redis_client, redis_prefix), what="acks")
    lost = 600 - kept
    assert 0 < lost < 600
    lines = [r.getMessage() for r in caplog.records if "trimmed" in r.getMessage()]
    assert len(lines) == 1
    assert f"{lost} lost" in lines[0] and "nobody was paged" in lines[0]
    assert trimmed() - before == lost


def _needs_redis_7(client: redis.Redis) -> None:
    if int(str(client.info("server")["redis_version"]).split(".")[0]) < 7:
        pytest.skip("streams count entries added and read from Redis 7 on")


@pytest.mark.parametrize(("start_from", "before"), [("oldest", 0), ("new", 0), ("new", 5)])
def test_each_trim_gap_is_counted_once_and_alone(
    redis_client: redis.Redis, redis_prefix: str, start_from: str, before: int
) -> None:
    """Redis does not move a group's read counter over entries trimmed before it read them:
    the check moves it, so a second gap is not counted with the first, nor a gap twice. A
    group created at the end of a stream that already holds entries counts from there."""
    _needs_redis_7(redis_client)
    stream = f"{redis_prefix}alerts"
    for i in range(before):  # written before any notifier started
        redis_client.xadd(stream, {"id": f"old{i}"})
    store = NotifyStore(redis_client, redis_prefix, "notifier", "n1", 60, 100)
    assert store.ensure_group(start_from) is True
    assert store.ensure_group(start_from) is False  # exists already

    def append(n: int, keep: int) -> None:
        for i in range(n):
            redis_client.xadd(stream, {"id": str(i)}, maxlen=keep, approximate=False)

    append(10, keep=4)
    entries, lost = store.read_new(100, 1)
    assert (len(entries), lost) == (4, 6)
    store.ack([entry_id for entry_id, _ in entries])
    assert store.read_new(100, 1) == ([], 0)
    append(12, keep=5)
    entries, lost = store.read_new(100, 1)
    assert (len(entries), lost) == (5, 7)  # this gap only
    assert store.read_new(100, 1) == ([], 0)
    [info] = redis_client.xinfo_groups(stream)
    assert info["lag"] == 0  # known again: the group read (or lost) everything
