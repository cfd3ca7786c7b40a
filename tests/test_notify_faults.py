"""The notifier through a Redis outage: its own redis-server, killed and restarted mid-delivery."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.runtime import RedisSettings
from connectors.redis_client import make_client, ping_url
from tests.notify_fixtures import Receiver, Reply, free_port, lifecycle_event, wait_for, xadd_events
from tests.notify_harness import drained, notify_settings, running, webhook

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class OwnRedis:
    """A redis-server on a free port with an fsync-always AOF: a kill -9 keeps every write."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.dir = directory
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: ping_url(self.url, 0.5), timeout=30, what="redis-server up")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip("no redis-server binary")
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    with contextlib.suppress(Exception):
        server.kill()


def test_redis_outage_mid_delivery_loses_nothing_and_repeats_nothing(own_redis: OwnRedis) -> None:
    prefix = "sr:"
    client = make_client(own_redis.url, RedisSettings(retries=0))
    with Receiver([Reply(), Reply(hold=True)]) as hook:
        settings = notify_settings(own_redis.url, prefix, [webhook("crm", hook.url)])
        events = [lifecycle_event(s, "O") for s in ("firing", "acknowledged", "resolved")]
        xadd_events(client, prefix, events)
        with running(settings):
            wait_for(hook.held.is_set, what="the held request")
            own_redis.kill()  # the marker of the held request cannot be written now
            hook.release()
            time.sleep(1.0)  # the notifier retries against a Redis that is not there
            own_redis.start()
            client = make_client(own_redis.url, RedisSettings(retries=0))
            wait_for(lambda: drained(client, prefix), timeout=60, what="all acked after restart")
            xadd_events(client, prefix, [lifecycle_event("firing", "after")])
            wait_for(lambda: len(hook.delivered()) == 4, timeout=60, what="a new alert")
    ids = [r.headers["webhook-id"] for r in hook.delivered()]
    assert ids[:3] == [e["id"] for e in events]  # each once, in order
    assert len(ids) == len(set(ids)) == 4
    assert client.get(f"{prefix}notify:delivered:crm:{events[1]['id']}") == b"sent"
    client.close()


def test_starts_while_redis_is_down_and_serves_once_it_is_up(own_redis: OwnRedis) -> None:
    own_redis.kill()
    with Receiver() as hook:
        settings = notify_settings(own_redis.url, "sr:", [webhook("crm", hook.url)])
        with running(settings):
            time.sleep(0.5)
            own_redis.start()
            client = make_client(own_redis.url, RedisSettings())
            wait_for(lambda: bool(client.exists("sr:alerts")), timeout=60, what="group created")
            xadd_events(client, "sr:", [lifecycle_event("firing", "late")])
            wait_for(lambda: len(hook.delivered()) == 1, timeout=60, what="delivery")
            client.close()


def test_a_redrive_whose_redis_goes_away_after_a_delivery_marks_it_once_redis_is_back(
    own_redis: OwnRedis,
) -> None:
    from connectors.notify.redrive import Redrive
    from connectors.notify.service import make_notifier_client
    from tests.notify_harness import dead_letters

    prefix = "sr:"
    client = make_client(own_redis.url, RedisSettings(retries=0))
    refuse = [True]

    def answer(_request: object) -> Reply | None:
        if refuse[0]:
            return Reply(400)
        # The request got here; Redis goes away before the redrive can mark it delivered.
        own_redis.kill()
        threading.Timer(4.0, own_redis.start).start()  # longer than redis-py's own retries
        return None

    with Receiver(default=Reply(200), reply_for=answer) as hook:
        settings = notify_settings(own_redis.url, prefix, [webhook("crm", hook.url)])
        xadd_events(client, prefix, [lifecycle_event("firing", "R")])
        with running(settings):
            wait_for(lambda: len(dead_letters(client, prefix)) == 1, what="the dead letter")
            wait_for(lambda: drained(client, prefix), what="acked")
        client.close()
        refuse[0] = False
        redrive_client = make_notifier_client(settings)
        try:
            report = Redrive(settings, redrive_client).run()
        finally:
            redrive_client.close()
        client = make_client(own_redis.url, RedisSettings(retries=0))
        again = Redrive(settings, client).run()

    assert [outcome for _, outcome in report.done] == ["sent"]
    assert dead_letters(client, prefix) == []
    assert again.done == []
    assert len(hook.delivered()) == 1  # marked, so never sent again
    client.close()


def test_a_redis_error_while_taking_entries_lets_them_go_to_be_claimed_again(
    own_redis: OwnRedis,
) -> None:
    """A Redis error after the read, before the workers have the entries (here XPENDING refused
    for a while: the ordering view cannot be taken), must not leave them held by a notifier that
    never sends them: they are claimed again and delivered once Redis answers."""
    admin = make_client(own_redis.url, RedisSettings(retries=0))
    admin.acl_setuser(
        "notifier",
        enabled=True,
        passwords=["+notifier-pw"],
        keys=["*"],
        channels=["*"],
        commands=["+@all", "-xpending"],
    )
    url = f"redis://notifier:notifier-pw@127.0.0.1:{own_redis.port}/0"
    with Receiver() as hook:
        settings = notify_settings(url, "sr:", [webhook("crm", hook.url)])
        with running(settings) as notifier:
            wait_for(lambda: admin.exists("sr:alerts") == 1, what="the group")
            event = lifecycle_event("firing", "T")
            xadd_events(admin, "sr:", [event])
            wait_for(
                lambda: admin.xinfo_groups("sr:alerts")[0]["pending"] == 1,
                what="the entry read by the notifier",
            )
            time.sleep(1.5)  # three times claim_idle_seconds: it would be claimed if let go
            assert hook.delivered() == []
            admin.acl_setuser("notifier", enabled=True, commands=["+xpending"])
            wait_for(lambda: len(hook.delivered()) == 1, timeout=30, what="the delivery")
            wait_for(lambda: drained(admin, "sr:"), timeout=30, what="the entry acked")
            assert not notifier._held
    assert [r.headers["webhook-id"] for r in hook.delivered()] == [event["id"]]
    admin.close()
