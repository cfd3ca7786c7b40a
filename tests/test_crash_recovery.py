"""kill -9, then a restart with `--recovery-dir`, for the inputs `test_recovery_kill_9*.py` do
not cover: a live Jetstream feed (a local WebSocket server) and a 2-process cluster (`-i/-a`)
over partitioned JSONL input. The resumed run must leave the same alert ids in the stream as an
uninterrupted run, none twice, and publish each once.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import redis
from bluesky_conversation import GRUMPY, VIP, conversation, fan
from jetstream_server import JetstreamServer
from profiles_server import ProfilesServer
from recovery_helpers import clean_env, published_ids, settled_length, stream_ids
from redis_helpers import delete_prefix

from sense_respond import recovery
from sense_respond.scenario import DEFAULT_START, generate

TIMEOUT = 90.0
SNAPSHOT_INTERVAL = "0.2"
CLUSTER_SNAPSHOT_INTERVAL = "0.05"


def kill_after(
    procs: list[subprocess.Popen[bytes]],
    client: redis.Redis,
    stream: str,
    min_alerts: int,
    db_dir: Path,
) -> int:
    """SIGKILL every process once `min_alerts` are out and an epoch is committed."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        for proc in procs:
            if proc.poll() is not None:
                pytest.fail(f"a run ended (rc {proc.returncode}) before it could be killed")
        assert time.monotonic() < deadline, "the run never reached the point to kill it"
        if client.xlen(stream) >= min_alerts:
            resume = recovery.inspect(db_dir).resume_epoch
            if resume is not None and resume >= 2:
                break
        time.sleep(0.005)
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
    for proc in procs:
        proc.wait(10)
    return settled_length(client, stream)


def run_all(cmds: list[list[str]], env: dict[str, str]) -> list[str]:
    """Run the commands together to their end; their stderr."""
    procs = [
        subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        for c in cmds
    ]
    errs = [p.communicate(timeout=TIMEOUT)[1].decode() for p in procs]
    for proc, err in zip(procs, errs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    return errs


# ---------------------------------------------------------------------------------------------
# Jetstream


COPIES = 4


@pytest.fixture(scope="module")
def jetstream_feed() -> tuple[list[bytes], dict[str, tuple[str, int]]]:
    """`COPIES` conversations (each alerting once), with distinct accounts, one after another."""
    t0 = int((datetime.now(UTC) - timedelta(hours=3)).timestamp() * 1_000_000)
    frames: list[bytes] = []
    profiles: dict[str, tuple[str, int]] = {}
    for k in range(COPIES):
        part, _ = conversation(t0 + k * 300_000_000)
        vip, grumpy, fans = f"did:plc:vip{k}", f"did:plc:grumpy{k}", f"did:plc:f{k}n"
        for frame in part:
            frames.append(
                frame.replace(VIP.encode(), vip.encode())
                .replace(GRUMPY.encode(), grumpy.encode())
                .replace(b"did:plc:fan", fans.encode())
            )
        profiles[vip] = (f"vip{k}.example.com", 48_000)
        profiles[grumpy] = (f"grumpy{k}.example.com", 3)
        for i in range(40):
            profiles[fan(i).replace("did:plc:fan", fans)] = (f"fan{i}.{k}.example.com", 10 + i)
    return frames, profiles


def jetstream_command(
    tmp: Path, server: JetstreamServer, appview: ProfilesServer, url: str, prefix: str,
    *extra: str,
) -> list[str]:  # fmt: skip
    config = tmp / "jetstream.toml"
    config.write_text(
        "[jetstream]\n"
        "idle_timeout_seconds = 1.0\n"
        "profiles_enabled = true\n"
        f'profiles_url = "{appview.url}"\n'
        "profiles_hold_ms = 1000\n"
        "poll_interval_ms = 1\n"
        "reconnect_initial_seconds = 0.01\n"
        "reconnect_max_seconds = 0.05\n"
    )
    return [
        sys.executable, "-m", "sense_respond", "run", "--config", str(config),
        "--input", f"jetstream:{server.url}", "--redis-url", url, "--prefix", prefix, *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_kill_9_and_resume_from_jetstream_delivers_every_alert_once(
    jetstream_feed: tuple[list[bytes], dict[str, tuple[str, int]]],
    redis_url: str,
    redis_prefix: str,
    redis_client: redis.Redis,
    alerts_subscriber: redis.client.PubSub,
    tmp_path: Path,
) -> None:
    frames, profiles = jetstream_feed
    clean_prefix = f"{redis_prefix}clean:"
    with ProfilesServer(profiles) as appview, JetstreamServer(frames, frame_delay=0.008) as server:
        clean = jetstream_command(tmp_path, server, appview, redis_url, clean_prefix)
        run_all([clean], clean_env())
        expected = set(stream_ids(redis_client, clean_prefix))
        expected_alerts = alerted(redis_client, clean_prefix)
        assert len(expected) == COPIES
        delete_prefix(redis_url, clean_prefix)

        db_dir = tmp_path / "recovery"
        cmd = jetstream_command(
            tmp_path, server, appview, redis_url, redis_prefix,
            "--recovery-dir", str(db_dir), "--snapshot-interval", SNAPSHOT_INTERVAL,
        )  # fmt: skip
        alerts = f"{redis_prefix}alerts"
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=clean_env())  # fmt: skip
        delivered = kill_after([proc], redis_client, alerts, 2, db_dir)
        assert delivered < COPIES, "killed too late to prove anything"
        resumed = run_all([cmd], clean_env())[0]
        assert "resuming from epoch" in resumed, resumed[-2000:]
        # The restart connected with a cursor: it did not replay the feed from its start.
        assert server.connections[-1]["cursor"] is not None
    ids = stream_ids(redis_client, redis_prefix)
    assert not [i for i, n in Counter(ids).items() if n > 1]  # none twice
    assert sorted(published_ids(alerts_subscriber, redis_client, alerts)) == sorted(ids)
    # Every account alerted once, as in the clean run. (The ids match too unless an author's
    # followers came after `profiles_hold_ms`, 1 s at most: then the alert fires on a later post
    # of the same account; seen once in a full-suite run on a machine with load 10. The profile
    # cache is not part of the snapshot, so the resumed run fetches profiles again.)
    assert alerted(redis_client, redis_prefix) == expected_alerts


# ---------------------------------------------------------------------------------------------
# a 2-process cluster on partitioned input


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def partitioned_feed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two JSONL files (one scenario each, distinct seeds and days) and their config.

    Long enough (6,000 background events each) that, with `CLUSTER_SNAPSHOT_INTERVAL`, the
    alerts are spread over many epochs even on a fast machine: with 1,500 each, a run on a
    quiet machine processed all of it within one 0.2 s epoch, so every alert was out before
    the second epoch committed and the kill came too late (measured: all 14 alerts within
    0.2 s; with 6,000 and 0.05 s epochs, over ~0.8 s and ~15 epochs)."""
    tmp = tmp_path_factory.mktemp("cluster")
    feed_dir = tmp / "feed"
    feed_dir.mkdir()
    brands: set[str] = set()
    for k in range(2):
        sc = generate(seed=300 + k, background=6000, start=DEFAULT_START + timedelta(days=3 * k))
        brands.update(sc.brand_accounts)
        (feed_dir / f"part-{k}.jsonl").write_bytes(sc.jsonl_bytes())
    config = tmp / "cluster.toml"
    config.write_bytes(b"brand_accounts = " + orjson.dumps(sorted(brands)) + b"\n")
    return feed_dir, config


def cluster_commands(
    feed: tuple[Path, Path], url: str, prefix: str, *extra: str
) -> list[list[str]]:
    feed_dir, config = feed
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(2))
    return [
        [sys.executable, "-m", "sense_respond", "run", "--config", str(config),
         "--input", f"jsonl:{feed_dir}", "--redis-url", url, "--prefix", prefix,
         "-i", str(i), "-a", addresses, *extra]
        for i in range(2)
    ]  # fmt: skip


@pytest.fixture
def cluster_env() -> Iterator[dict[str, str]]:
    yield {**clean_env(), "PYTHONHASHSEED": "0"}


@pytest.mark.slow
def test_kill_9_a_two_process_cluster_and_resume_delivers_every_alert_once(
    partitioned_feed: tuple[Path, Path],
    redis_url: str,
    redis_prefix: str,
    redis_client: redis.Redis,
    alerts_subscriber: redis.client.PubSub,
    tmp_path: Path,
    cluster_env: dict[str, str],
) -> None:
    clean_prefix = f"{redis_prefix}clean:"
    run_all(cluster_commands(partitioned_feed, redis_url, clean_prefix), cluster_env)
    expected = set(stream_ids(redis_client, clean_prefix))
    expected_alerts = alerted(redis_client, clean_prefix)
    assert len(expected) >= 8
    delete_prefix(redis_url, clean_prefix)

    db_dir = tmp_path / "recovery"
    recovery.prepare(db_dir, 2)  # a cluster's partitions are created once, before it starts
    extra = ("--recovery-dir", str(db_dir), "--snapshot-interval", CLUSTER_SNAPSHOT_INTERVAL)
    alerts = f"{redis_prefix}alerts"
    procs = [
        subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cluster_env)
        for c in cluster_commands(partitioned_feed, redis_url, redis_prefix, *extra)
    ]
    delivered = kill_after(procs, redis_client, alerts, len(expected) // 3, db_dir)
    assert delivered < len(expected), "killed too late to prove anything"
    errs = run_all(cluster_commands(partitioned_feed, redis_url, redis_prefix, *extra), cluster_env)
    assert all("resuming from epoch" in e for e in errs), errs[0][-2000:]
    ids = stream_ids(redis_client, redis_prefix)
    assert not [i for i, n in Counter(ids).items() if n > 1]  # none twice
    assert sorted(published_ids(alerts_subscriber, redis_client, alerts)) == sorted(ids)
    # The same customers alerted, as often. (Not always the same ids: the two processes'
    # events reach the global influence step interleaved in arrival order, so which event
    # trips a customer's alert can differ between two uninterrupted cluster runs too;
    # measured: 1 of 3 clean runs of this feed differed in one trigger.)
    assert alerted(redis_client, redis_prefix) == expected_alerts


def alerted(client: redis.Redis, prefix: str) -> Counter[str]:
    """How many alerts each customer got."""
    return Counter(
        orjson.loads(f[b"alert"])["subject"] for _, f in client.xrange(f"{prefix}alerts")
    )
