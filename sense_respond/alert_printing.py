"""Alerts printed for people: `format_alert` and the live printer of `run --print-alerts`/`demo`."""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson

from config.settings import Settings
from sense_respond.command_redis import open_client


def format_alert(alert: dict[str, Any]) -> str:
    """One alert as a few readable lines for on-call staff.

    Every value from the feed (handles, ids, texts) is printed through `safe_text`: a post may
    carry terminal escape sequences and bidi overrides.
    """
    from sense_respond.terminal import safe_text

    data = alert.get("data", {})
    status = data.get("status")
    if status in ("acknowledged", "resolved"):
        # Lifecycle follow-ups: one line, who and why.
        why = (
            f"by {data.get('acknowledged_by')}"
            if status == "acknowledged"
            else f"{data.get('resolved_reason')}"
            + (f" by {data['resolved_by']}" if data.get("resolved_by") else "")
        )
        who = data.get("handle") or ""
        return (
            f"[{status.upper():8}] {data.get('customer_id')}{' @' + who if who else ''}"
            f"  incident {data.get('incident_id')}  {why}  event {data.get('event_time')}"
        )
    sent = data.get("sentiment", {})
    inf = data.get("influence", {})
    pct = inf.get("percentile")
    who = safe_text(data.get("handle") or "")
    head = (
        f"[{safe_text(str(data.get('severity', '?')).upper()):8}] "
        f"{safe_text(data.get('customer_id'))}"
        f"{' @' + who if who else ''}"
        f"  mean {sent.get('mean', 0):+.2f} over {sent.get('posts')} posts"
        f"  followers {inf.get('followers', 0):,}"
        f"  influence pct {'n/a' if pct is None else f'{pct:.2f}'}"
        f"  inbound {inf.get('inbound_accounts', 0)}"
    )
    if data.get("silenced_by"):
        head += "  (silenced)"
    lines = [
        head,
        f"           event {safe_text(data.get('event_time'))}  id {safe_text(alert.get('id'))}",
    ]
    for ev in data.get("evidence", [])[:3]:
        matched = ev.get("matched")
        why = f"  [{safe_text(', '.join(map(str, matched)))}]" if matched else ""
        lines.append(
            f"           {ev.get('compound', 0):+.2f}  {safe_text(ev.get('text', ''))!r}{why}"
        )
    return "\n".join(lines)


class LivePrinter:
    """Subscribes to the alerts channel and prints each alert as it fires."""

    def __init__(self, settings: Settings) -> None:
        self.count = 0
        self.customers: set[str] = set()
        self._client = open_client(settings)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._channel = f"{settings.redis.prefix}alerts"
        self._pubsub.subscribe(self._channel)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-printer", daemon=True)

    def __enter__(self) -> LivePrinter:
        self._thread.start()
        return self

    def _run(self) -> None:
        from redis.exceptions import RedisError

        failures = 0
        while not self._stop.is_set():
            try:
                msg = self._pubsub.get_message(timeout=0.2)
                failures = 0
            except (RedisError, OSError):
                # Redis went away: the sinks log the outage and wait; so does the printer, quietly,
                # then subscribes again (alerts are published only once Redis is back).
                failures += 1
                self._stop.wait(min(2.0, 0.05 * 2**failures))
                self._resubscribe()
                continue
            if msg is None:
                continue
            alert = orjson.loads(msg["data"])
            self.count += 1
            self.customers.add(alert["subject"])
            print(format_alert(alert), flush=True)

    def _resubscribe(self) -> None:
        from redis.exceptions import RedisError

        try:
            self._pubsub.close()
            self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            self._pubsub.subscribe(self._channel)
        except (RedisError, OSError):
            pass  # still away: the next read fails and comes back here

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)  # let the last published alerts arrive
        self._stop.set()
        self._thread.join(timeout=5)
        self._pubsub.close()
        self._client.close()
