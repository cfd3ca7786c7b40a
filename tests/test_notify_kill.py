"""`sense-respond notify` as a subprocess: kill -9 at chosen moments and restarts lose nothing
and repeat at most the one request in flight; SIGTERM exits 0; the metrics port."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from collections import Counter
from pathlib import Path

import orjson
import pytest
import redis

from tests.notify_fixtures import Receiver, Reply, free_port, lifecycle_event, wait_for, xadd_events
from tests.notify_harness import drained, spawn_notifier, webhook, write_config

pytestmark = pytest.mark.slow


def incident_events(n_incidents: int) -> list[dict]:
    """Trigger, ack, resolve of each incident, incidents interleaved in the stream."""
    out = []
    for status in ("firing", "acknowledged", "resolved"):
        out += [lifecycle_event(status, f"K{n}") for n in range(n_incidents)]
    return out


def stop(proc: subprocess.Popen, timeout: float = 30) -> int:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


def listening_ports(pid: int) -> set[int]:
    """TCP ports the process listens on (from /proc: its socket inodes in LISTEN state)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as fh:
            for line in fh.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def ids_of(receiver: Receiver) -> list[str]:
    return [
        r.headers.get("webhook-id") or r.json()["dedup_key"] + "/" + r.json()["event_action"]
        for r in receiver.delivered()
    ]


def check_order(receiver: Receiver, kind: str) -> None:
    """Per incident, the lifecycle events arrive in order (repeats of one request aside)."""
    per_incident: dict[str, list[str]] = {}
    for r in receiver.delivered():
        if kind == "pagerduty":
            body = r.json()
            incident, step = body["dedup_key"], body["event_action"]
        else:
            data = orjson.loads(r.body)["data"]
            incident, step = data["incident_id"], data["status"]
        steps = per_incident.setdefault(incident, [])
        if not steps or steps[-1] != step:
            steps.append(step)
    expected = (
        ["trigger", "acknowledge", "resolve"]
        if kind == "pagerduty"
        else ["firing", "acknowledged", "resolved"]
    )
    assert per_incident and all(s == expected for s in per_incident.values()), per_incident


def test_kill_9_at_each_point_then_restart_loses_nothing_and_repeats_at_most_one(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    """Four kills in a row on one stream: before a send, between a send and its marker, between
    the marker and the ack (test hook: SIGKILL at that point), then an outside kill -9 while the
    receiver holds a request open. Each restart takes over the dead consumer's entries."""
    hold_at = 9  # the receiver holds its 9th request open
    with Receiver(
        reply_for=lambda _r: Reply(hold=True) if len(crm.requests) == hold_at else None
    ) as crm:
        config = write_config(
            tmp_path / "notify.toml",
            redis_url,
            redis_prefix,
            [webhook("crm", crm.url)],
            read_count=2,
        )
        events = incident_events(4)
        xadd_events(redis_client, redis_prefix, events)
        in_flight: dict[str, str] = {}
        for point in ("before_send", "after_send", "after_marker"):
            before = len(crm.requests)
            proc = spawn_notifier(config, f"{point}:3")
            assert proc.wait(60) == -signal.SIGKILL, f"{point}: not killed"
            assert len(crm.requests) > before, f"{point}: no progress before the kill"
            in_flight[point] = crm.requests[-1].headers["webhook-id"]
        proc = spawn_notifier(config)
        wait_for(crm.held.is_set, timeout=60, what="the held request")
        proc.kill()  # kill -9 from outside, the request still open
        assert proc.wait(30) == -signal.SIGKILL
        in_flight["outside"] = crm.requests[hold_at - 1].headers["webhook-id"]
        crm.release()
        proc = spawn_notifier(config)
        try:
            wait_for(lambda: drained(redis_client, redis_prefix), timeout=60, what="all acked")
            assert listening_ports(proc.pid) == set()  # no --metrics-port: no port at all
        finally:
            assert stop(proc) == 0

    seen = Counter(r.headers["webhook-id"] for r in crm.delivered())
    assert set(seen) == {e["id"] for e in events}  # nothing lost
    doubled = {k for k, c in seen.items() if c > 1}
    # The kill between a send and its marker repeats exactly that request, once (same
    # webhook-id); the outside kill may repeat the held one; nothing else is ever repeated.
    assert in_flight["after_send"] in doubled
    assert doubled <= {in_flight["after_send"], in_flight["outside"]}
    assert max(seen.values()) == 2
    check_order(crm, "webhook")
    assert redis_client.xlen(f"{redis_prefix}notify:dlq") == 0


def test_sigterm_finishes_the_request_in_flight_and_exits_0_metrics_served(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    port = free_port()
    with Receiver([Reply(), Reply(hold=True)]) as crm:
        config = write_config(
            tmp_path / "n.toml", redis_url, redis_prefix, [webhook("crm", crm.url)]
        )
        first, second = lifecycle_event("firing", "T"), lifecycle_event("resolved", "T")
        xadd_events(redis_client, redis_prefix, [first, second])
        proc = spawn_notifier(config, None, "--metrics-port", str(port))
        try:
            wait_for(crm.held.is_set, timeout=60, what="the held request")
            assert port in listening_ports(proc.pid)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                text = r.read().decode()
            assert 'sense_respond_notify_sent_total{destination="crm"} 1.0' in text
            assert 'sense_respond_notify_delivery_seconds_count{destination="crm"} 1.0' in text
            assert "# TYPE sense_respond_notify_retries_total counter" in text
            assert "# TYPE sense_respond_notify_dead_letters_total counter" in text
            assert "sense_respond_events" not in text  # the notifier's registry, not the run's
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            assert proc.poll() is None  # still finishing the request in flight
            crm.release()
            assert proc.wait(30) == 0
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    assert redis_client.get(f"{redis_prefix}notify:delivered:crm:{second['id']}") == b"sent"
    assert drained(redis_client, redis_prefix)
    assert len(crm.requests) == 2
