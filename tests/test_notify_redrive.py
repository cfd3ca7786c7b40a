"""`sense-respond notify redrive` against real Redis and real local HTTP receivers: the dead
letters are made by a real notifier whose receivers refused them, then sent again."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from config.settings import Settings
from connectors.notify.redrive import Redrive, Report, lease_key
from connectors.notify.service import make_notifier_client
from tests.notify_fixtures import (
    Received,
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
    running,
    webhook,
    write_config,
)

REFUSED = Reply(400, body=b'{"status":"invalid event"}')


class Switch:
    """A receiver's answers, changed as the test goes: refuse everything (`refuse`), or only
    what `refuse_if` picks, else accept."""

    def __init__(self) -> None:
        self.refuse = True
        self.refuse_if: Callable[[Received], bool] | None = None

    def __call__(self, request: Received) -> Reply | None:
        if self.refuse or (self.refuse_if is not None and self.refuse_if(request)):
            return REFUSED
        return None  # the default: 202


@contextlib.contextmanager
def paging(
    redis_url: str, prefix: str, answers: Callable[[Received], Reply | None], **notify: Any
) -> Iterator[tuple[Receiver, Settings]]:
    """A PagerDuty stand-in answering through `answers` (202 when it says nothing), and
    notifier settings with it as the one destination."""
    with Receiver(default=Reply(202), reply_for=answers) as pd:
        yield pd, notify_settings(redis_url, prefix, [pagerduty("pd", pd.url)], **notify)


def lost(
    settings: Settings, client: redis.Redis, prefix: str, events: list[dict[str, Any]], n: int
) -> None:
    """Run a real notifier over `events` until it has dead-lettered `n` of them. The events'
    incident records are kept as the pipeline's delivery script keeps them (status, count)."""
    xadd_events(client, prefix, events)
    for event in events:
        record = f"{prefix}incident:{event['data']['incident_id']}"
        client.hset(record, "status", event["data"]["status"])
        client.hincrby(record, "events", 1)
    with running(settings):
        wait_for(lambda: len(dead_letters(client, prefix)) == n, what=f"{n} dead letters")
        wait_for(lambda: drained(client, prefix), what="acks")


def delivered_live(client: redis.Redis, prefix: str, event: dict[str, Any]) -> None:
    """What a live notifier leaves when it delivers `event` to "pd" while a redrive runs: the
    entry in the alerts stream and its "sent" marker."""
    xadd_events(client, prefix, [event])
    client.set(f"{prefix}notify:delivered:pd:{event['id']}", b"sent")


def redrive_report(settings: Settings, **kw: Any) -> Report:
    """One redrive, on a client of its own."""
    client = make_notifier_client(settings)
    try:
        return Redrive(settings, client).run(**kw)
    finally:
        client.close()


def redrive(settings: Settings, **kw: Any) -> list[tuple[str, str, str, str]]:
    """One redrive; (outcome, destination, incident, status) per letter, in order."""
    report = redrive_report(settings, **kw)
    return [
        (
            outcome.split(":")[0],
            s.letter.destination,
            s.letter.event.incident_id,
            s.letter.event.status,
        )
        for s, outcome in report.done
        if s.letter.event is not None
    ]


def redrive_verb(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`sense-respond notify redrive --config CONFIG ...` as a subprocess."""
    cmd = [sys.executable, "-m", "sense_respond", "notify", "redrive", "--config", str(config)]
    return subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=120)


def pd_actions(receiver: Receiver) -> list[tuple[str, str]]:
    return [(r.json()["dedup_key"], r.json()["event_action"]) for r in receiver.delivered()]


def test_after_an_outage_each_lost_event_is_delivered_once_in_order(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    pd_switch, crm_switch = Switch(), Switch()
    with (
        Receiver(default=Reply(202), reply_for=pd_switch) as pd,
        Receiver(default=Reply(200), reply_for=crm_switch) as crm,
    ):
        settings = notify_settings(
            redis_url, redis_prefix, [pagerduty("pd", pd.url), webhook("crm", crm.url)]
        )
        events = [
            lifecycle_event("firing", "inc-1"),
            lifecycle_event("firing", "inc-2"),
            lifecycle_event("acknowledged", "inc-1"),
            lifecycle_event("firing", "inc-3"),
            lifecycle_event("resolved", "inc-3"),
        ]
        lost(settings, redis_client, redis_prefix, events, 10)
        pd_switch.refuse = crm_switch.refuse = False  # the receivers are fixed

        done = redrive(settings)
        again = redrive(settings)

    assert sorted(done) == sorted(
        [("sent", dest, "inc-1", "firing") for dest in ("pd", "crm")]
        + [("sent", dest, "inc-1", "acknowledged") for dest in ("pd", "crm")]
        + [("sent", dest, "inc-2", "firing") for dest in ("pd", "crm")]
        # Resolved: nobody is paged for its firing; the resolve goes (PagerDuty ignores it).
        + [("resolved", dest, "inc-3", "firing") for dest in ("pd", "crm")]
        + [("sent", dest, "inc-3", "resolved") for dest in ("pd", "crm")]
    )
    actions = pd_actions(pd)
    assert sorted(actions) == sorted(
        [("inc-1", "trigger"), ("inc-1", "acknowledge"), ("inc-2", "trigger"), ("inc-3", "resolve")]
    )
    assert actions.index(("inc-1", "trigger")) < actions.index(("inc-1", "acknowledge"))
    hooks = [r.json()["data"] for r in crm.delivered()]
    assert [h["status"] for h in hooks if h["incident_id"] == "inc-1"] == [
        "firing",
        "acknowledged",
    ]
    assert len(hooks) == 4
    assert dead_letters(redis_client, redis_prefix) == []
    assert again == []  # nothing left: a second redrive sends nothing
    assert len(pd.delivered()) == 4 and len(crm.delivered()) == 4
    for event in events[:4]:
        if event["data"]["incident_id"] != "inc-3":
            key = f"{redis_prefix}notify:delivered:pd:{event['id']}"
            assert redis_client.get(key) == b"sent"


def test_a_letter_superseded_by_a_later_event_is_not_sent(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    # Only the trigger was refused; its acknowledgement got through. Sending the trigger now
    # would page someone after the acknowledgement: it leaves the dead letters unsent.
    switch = Switch()
    switch.refuse = False
    switch.refuse_if = lambda request: request.json()["event_action"] == "trigger"
    with paging(redis_url, redis_prefix, switch) as (pd, settings):
        events = [lifecycle_event("firing", "inc-1"), lifecycle_event("acknowledged", "inc-1")]
        lost(settings, redis_client, redis_prefix, events, 1)
        assert pd_actions(pd) == [("inc-1", "acknowledge")]
        switch.refuse_if = None

        done = redrive(settings)

    assert done == [("superseded", "pd", "inc-1", "firing")]
    assert pd_actions(pd) == [("inc-1", "acknowledge")]
    assert dead_letters(redis_client, redis_prefix) == []


def test_a_letter_that_fails_again_stays_and_holds_the_rest_of_its_incident(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    switch = Switch()
    with paging(redis_url, redis_prefix, switch) as (pd, settings):
        events = [
            lifecycle_event("firing", "inc-1"),
            lifecycle_event("acknowledged", "inc-1"),
            lifecycle_event("firing", "inc-2"),
        ]
        lost(settings, redis_client, redis_prefix, events, 3)
        # Still refusing inc-1's trigger: it fails, and its acknowledgement must not overtake it.
        switch.refuse = False
        switch.refuse_if = lambda request: request.json()["dedup_key"] == "inc-1"

        first = redrive(settings)
        left = [
            orjson.loads(x["event"])["data"]["status"]
            for x in dead_letters(redis_client, redis_prefix)
        ]
        assert pd_actions(pd) == [("inc-2", "trigger")]

        # Then a receiver that answers 503 once, then accepts: the redrive retries.
        switch.refuse_if = None
        pd.script = [Reply(503)]
        second = redrive(settings)

    assert first == [
        ("failed", "pd", "inc-1", "firing"),
        ("held", "pd", "inc-1", "acknowledged"),
        ("sent", "pd", "inc-2", "firing"),
    ]
    assert left == ["firing", "acknowledged"]
    assert second == [("sent", "pd", "inc-1", "firing"), ("sent", "pd", "inc-1", "acknowledged")]
    assert pd_actions(pd) == [("inc-2", "trigger"), ("inc-1", "trigger"), ("inc-1", "acknowledge")]
    assert pd.script == []  # the 503 went to the redrive's first attempt, which retried
    assert dead_letters(redis_client, redis_prefix) == []


def test_one_redrive_per_destination_at_a_time_and_a_dry_run_changes_nothing(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    switch = Switch()
    with paging(redis_url, redis_prefix, switch) as (pd, settings):
        lost(settings, redis_client, redis_prefix, [lifecycle_event("firing", "inc-1")], 1)
        switch.refuse = False

        dry = redrive(settings, dry_run=True)
        redis_client.set(lease_key(redis_prefix, "pd"), "someone-else", ex=60)
        busy = redrive(settings)
        assert pd.delivered() == [] and len(dead_letters(redis_client, redis_prefix)) == 1
        redis_client.delete(lease_key(redis_prefix, "pd"))
        done = redrive(settings)

    assert dry == [("send", "pd", "inc-1", "firing")]
    assert busy == [("busy", "pd", "inc-1", "firing")]
    assert done == [("sent", "pd", "inc-1", "firing")]
    assert pd_actions(pd) == [("inc-1", "trigger")]
    assert redis_client.exists(lease_key(redis_prefix, "pd")) == 0  # released


def test_the_redrive_verb_prints_each_letter_and_exits_1_when_one_fails(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str, tmp_path: Path
) -> None:
    switch = Switch()
    with Receiver(default=Reply(202), reply_for=switch) as pd:
        destinations = [pagerduty("pd", pd.url)]
        settings = notify_settings(redis_url, redis_prefix, destinations)
        events = [lifecycle_event("firing", "inc-1"), lifecycle_event("firing", "inc-2")]
        lost(settings, redis_client, redis_prefix, events, 2)
        config = write_config(tmp_path / "notify.toml", redis_url, redis_prefix, destinations)

        dry = redrive_verb(config, "--dry-run")
        unknown = redrive_verb(config, "--destination", "nope")
        switch.refuse = False
        switch.refuse_if = lambda request: request.json()["dedup_key"] == "inc-2"
        failing = redrive_verb(config)
        switch.refuse_if = None
        fixed = redrive_verb(config, "--incident", "inc-2")

    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[-1] == "redrive (dry run): 2 send"
    assert unknown.returncode == 2 and "no destination named nope" in unknown.stderr
    assert failing.returncode == 1, failing.stderr
    lines = failing.stdout.splitlines()
    assert lines[0].split()[:4] == ["sent", "pd", "firing", "of"]
    assert lines[1].startswith("failed") and "rejected: HTTP 400" in lines[1]
    assert lines[-1] == "redrive: 1 failed, 1 sent"
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.splitlines()[-1] == "redrive: 1 sent"
    assert pd_actions(pd) == [("inc-1", "trigger"), ("inc-2", "trigger")]
    assert "R0UTINGKEY" not in failing.stdout + failing.stderr


def test_without_redis_the_verb_says_so_in_one_line_without_the_password(tmp_path: Path) -> None:
    url = f"redis://:hunter2secret@127.0.0.1:{free_port()}/0"  # nothing listens there
    config = write_config(tmp_path / "notify.toml", url, "sr:", [pagerduty("pd", "http://x")])
    got = subprocess.run(
        [sys.executable, "-m", "sense_respond", "notify", "redrive", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert got.returncode == 1
    (line,) = got.stderr.strip().splitlines()
    assert line.startswith("sense-respond: error: Redis at redis://")
    assert "hunter2secret" not in got.stdout + got.stderr


def test_beside_a_live_notifier_every_event_is_delivered_exactly_once(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    switch = Switch()
    with Receiver(default=Reply(200), reply_for=switch) as crm:
        settings = notify_settings(redis_url, redis_prefix, [webhook("crm", crm.url)])
        old = [lifecycle_event("firing", f"inc-{n}") for n in range(5)]
        lost(settings, redis_client, redis_prefix, old, 5)
        switch.refuse = False
        new = [lifecycle_event("firing", f"new-{n}") for n in range(20)]
        with running(settings):
            # New events keep arriving while the redrive runs beside the live notifier.
            xadd_events(redis_client, redis_prefix, new[:10])
            done = redrive(settings)
            xadd_events(redis_client, redis_prefix, new[10:])
            wait_for(lambda: len(crm.delivered()) == 25, what="25 deliveries")
            wait_for(lambda: drained(redis_client, redis_prefix), what="acks")
        again = redrive(settings)

    assert [outcome for outcome, *_ in done] == ["sent"] * 5
    assert again == []
    ids = [r.headers["webhook-id"] for r in crm.delivered()]
    assert sorted(ids) == sorted(e["id"] for e in old + new)  # each once, none lost


def test_the_incident_may_be_named_by_a_unique_prefix_as_the_incidents_commands_take(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str, tmp_path: Path
) -> None:
    switch = Switch()
    with Receiver(default=Reply(202), reply_for=switch) as pd:
        destinations = [pagerduty("pd", pd.url)]
        settings = notify_settings(redis_url, redis_prefix, destinations)
        ids = ["incident-alpha-1", "incident-beta-2"]
        lost(settings, redis_client, redis_prefix, [lifecycle_event("firing", i) for i in ids], 2)
        for n, incident_id in enumerate(ids):  # what the pipeline's delivery script keeps
            redis_client.zadd(f"{redis_prefix}incidents", {incident_id: n})
            redis_client.hset(f"{redis_prefix}incident:{incident_id}", "status", "firing")
        config = write_config(tmp_path / "notify.toml", redis_url, redis_prefix, destinations)

        one = redrive_verb(config, "--dry-run", "--incident", "incident-a")
        both = redrive_verb(config, "--dry-run", "--incident", "incident-")

    assert one.returncode == 0, one.stderr
    assert "incident-alpha-1" in one.stdout and "incident-beta-2" not in one.stdout
    assert both.returncode == 2 and "ambiguous" in both.stderr


def test_an_event_delivered_live_during_the_redrive_still_supersedes_an_older_letter(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    # The plan is made again before every request: while the redrive sends inc-0's trigger,
    # the live notifier delivers inc-1's acknowledgement, so inc-1's lost trigger must not go.
    switch = Switch()
    ack = lifecycle_event("acknowledged", "inc-1")

    def live_notifier_meanwhile(request: Received) -> Reply | None:
        if not switch.refuse and request.json()["dedup_key"] == "inc-0":
            delivered_live(redis_client, redis_prefix, ack)
        return switch(request)

    with paging(redis_url, redis_prefix, live_notifier_meanwhile) as (pd, settings):
        events = [lifecycle_event("firing", "inc-0"), lifecycle_event("firing", "inc-1")]
        lost(settings, redis_client, redis_prefix, events, 2)
        switch.refuse = False

        done = redrive(settings)

    assert done == [("sent", "pd", "inc-0", "firing"), ("superseded", "pd", "inc-1", "firing")]
    assert pd_actions(pd)[-1] == ("inc-0", "trigger")
    assert dead_letters(redis_client, redis_prefix) == []


def test_a_destination_still_down_holds_its_letters_after_one_spent_budget(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    with Receiver(default=Reply(503)) as pd, Receiver(default=Reply(200)) as crm:
        destinations = [pagerduty("pd", pd.url), webhook("crm", crm.url)]
        settings = notify_settings(redis_url, redis_prefix, destinations, max_attempts=2)
        events = [lifecycle_event("firing", f"inc-{n}") for n in range(3)]
        lost(settings, redis_client, redis_prefix, events, 3)  # pd's three, after 2 tries each
        tried = len(pd.requests)

        done = redrive(settings)

    assert done == [
        ("failed", "pd", "inc-0", "firing"),
        ("held", "pd", "inc-1", "firing"),
        ("held", "pd", "inc-2", "firing"),
    ]
    assert len(pd.requests) - tried == 2  # one budget, not one per letter
    assert len(dead_letters(redis_client, redis_prefix)) == 3


def test_while_another_redrive_holds_one_destination_the_others_go_on(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    pd_switch, crm_switch = Switch(), Switch()
    with (
        Receiver(default=Reply(202), reply_for=pd_switch) as pd,
        Receiver(default=Reply(200), reply_for=crm_switch) as crm,
    ):
        destinations = [pagerduty("pd", pd.url), webhook("crm", crm.url)]
        settings = notify_settings(redis_url, redis_prefix, destinations)
        lost(settings, redis_client, redis_prefix, [lifecycle_event("firing", "inc-1")], 2)
        pd_switch.refuse = crm_switch.refuse = False
        redis_client.set(lease_key(redis_prefix, "pd"), "someone-else", ex=60)
        report = redrive_report(settings)

    outcomes = {s.letter.destination: outcome.split(":")[0] for s, outcome in report.done}
    assert outcomes == {"pd": "busy", "crm": "sent"}
    assert report.unsent == 1  # the verb exits 1: something is still to send
    assert pd.delivered() == [] and len(crm.delivered()) == 1
    assert redis_client.get(lease_key(redis_prefix, "pd")) == b"someone-else"  # not ours: kept


def test_a_notifier_that_starts_with_dead_letters_waiting_says_how_to_redrive_them(
    redis_url: str,
    redis_client: redis.Redis,
    redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with Receiver(default=REFUSED) as pd:
        settings = notify_settings(redis_url, redis_prefix, [pagerduty("pd", pd.url)])
        lost(settings, redis_client, redis_prefix, [lifecycle_event("firing", "inc-1")], 1)
        caplog.clear()
        with (
            caplog.at_level(logging.WARNING, logger="connectors.notify.service"),
            running(settings),
        ):
            wait_for(lambda: "dead letters wait" in caplog.text, what="the hint")
    assert "1 dead letters wait" in caplog.text
    assert "sense-respond notify redrive --dry-run" in caplog.text


def test_between_two_attempts_a_later_event_delivered_live_stops_the_retry(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    # The redrive's first try of inc-1's trigger gets a 503; while it waits to retry, the live
    # notifier delivers inc-1's acknowledgement. The retry must not page after it.
    switch = Switch()
    ack = lifecycle_event("acknowledged", "inc-1")

    def flaky(request: Received) -> Reply | None:
        if switch.refuse:
            return REFUSED
        delivered_live(redis_client, redis_prefix, ack)
        return Reply(503)

    with paging(redis_url, redis_prefix, flaky) as (pd, settings):
        lost(settings, redis_client, redis_prefix, [lifecycle_event("firing", "inc-1")], 1)
        switch.refuse = False
        tried = len(pd.requests)

        done = redrive(settings)

    assert done == [("superseded", "pd", "inc-1", "firing")]
    assert len(pd.requests) - tried == 1  # the one 503; no retry after the acknowledgement
    assert dead_letters(redis_client, redis_prefix) == []


def test_letters_a_destination_no_longer_takes_stay_unsent(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    with Receiver(default=REFUSED) as pd:
        settings = notify_settings(redis_url, redis_prefix, [pagerduty("pd", pd.url)])
        lost(settings, redis_client, redis_prefix, [lifecycle_event("firing", "inc-1")], 1)
        tried = len(pd.requests)
        # The operator fixed the misrouting: this destination now pages billing only.
        narrowed = notify_settings(
            redis_url, redis_prefix, [pagerduty("pd", pd.url, teams=["billing"])]
        )

        done = redrive(narrowed)

    assert done == [("filtered", "pd", "inc-1", "firing")]
    assert len(pd.requests) == tried
    assert len(dead_letters(redis_client, redis_prefix)) == 1


def test_a_page_left_open_by_an_outage_is_closed_by_the_redrive(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    # The trigger got through; PagerDuty then went down (503s past the budget) for the
    # acknowledgement and the resolve. Nobody needs paging, but the open page must close.
    down = [False]

    def answer(request: Received) -> Reply | None:
        return Reply(503) if down[0] else None

    with paging(redis_url, redis_prefix, answer, max_attempts=2) as (pd, settings):
        firing = lifecycle_event("firing", "inc-1")
        xadd_events(redis_client, redis_prefix, [firing])
        with running(settings):
            wait_for(lambda: len(pd.delivered()) == 1, what="the trigger")
        down[0] = True
        rest = [lifecycle_event("acknowledged", "inc-1"), lifecycle_event("resolved", "inc-1")]
        lost(settings, redis_client, redis_prefix, rest, 2)
        down[0] = False

        done = redrive(settings)

    assert done == [
        ("resolved", "pd", "inc-1", "acknowledged"),
        ("sent", "pd", "inc-1", "resolved"),
    ]
    assert pd_actions(pd) == [("inc-1", "trigger"), ("inc-1", "resolve")]


def test_a_stale_letter_keeps_the_later_letters_of_its_incident_back(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    with Receiver(default=REFUSED) as pd:
        settings = notify_settings(redis_url, redis_prefix, [pagerduty("pd", pd.url)])
        firing, ack = lifecycle_event("firing", "inc-1"), lifecycle_event("acknowledged", "inc-1")
        lost(settings, redis_client, redis_prefix, [firing, ack], 2)
        # Days later the firing's "dead" marker has expired; the acknowledgement's has not.
        redis_client.delete(f"{redis_prefix}notify:delivered:pd:{firing['id']}")
        pd.default = Reply(202)
        tried = len(pd.requests)
        report = redrive_report(settings)

    assert [(s.letter.event.status, outcome) for s, outcome in report.done] == [
        ("firing", "stale"),
        ("acknowledged", "stale"),  # it must not go alone, ahead of its firing
    ]
    assert report.unsent == 0  # stale letters wait for a decision: the verb exits 0
    assert len(pd.requests) == tried
    assert len(dead_letters(redis_client, redis_prefix)) == 2


def test_odd_values_in_records_and_letters_never_stop_the_plan(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    with Receiver(default=REFUSED) as pd:
        settings = notify_settings(redis_url, redis_prefix, [pagerduty("pd", pd.url)])
        events = [lifecycle_event("firing", "inc-1"), lifecycle_event("resolved", "inc-1")]
        lost(settings, redis_client, redis_prefix, events, 2)
        redis_client.hset(f"{redis_prefix}incident:inc-1", "status", b"\xff\xfe")  # not UTF-8
        redis_client.xadd(
            f"{redis_prefix}notify:dlq",
            {"destination": "pd", "event": b"{", "status": "\u00b3", "attempts": "x"},
        )

        dry = redrive(settings, dry_run=True)

    assert dry == [("resolved", "pd", "inc-1", "firing"), ("send", "pd", "inc-1", "resolved")]


def test_behind_a_stale_letter_a_resolved_incident_keeps_its_letters_too(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    with Receiver(default=REFUSED) as pd:
        settings = notify_settings(redis_url, redis_prefix, [pagerduty("pd", pd.url)])
        statuses = ("firing", "acknowledged", "resolved")
        events = [lifecycle_event(status, "inc-1") for status in statuses]
        lost(settings, redis_client, redis_prefix, events, 3)
        redis_client.delete(f"{redis_prefix}notify:delivered:pd:{events[0]['id']}")
        pd.default = Reply(202)

        dry = redrive(settings, dry_run=True)
        done = redrive(settings)

    # The dry run and the real run agree: all three stay for the operator's decision.
    assert [outcome for outcome, *_ in dry] == ["stale"] * 3
    assert [outcome for outcome, *_ in done] == ["stale"] * 3
    assert len(dead_letters(redis_client, redis_prefix)) == 3
