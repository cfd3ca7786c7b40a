"""Notifier throughput and latency: lifecycle events from `{prefix}alerts` to local receivers.

    .venv/bin/python benchmarks/notify_throughput.py [--incidents 300] [--redis-url URL]

Writes `--incidents` incidents (trigger, ack, resolve each: 3 events) to a fresh prefix, then runs
`sense-respond notify` as separate processes against a local threaded HTTP receiver per
destination (202 at once), in these setups, one after the other:

- 1 process, 1 webhook destination
- 2 processes sharing the group, 1 webhook destination
- 1 process, 3 destinations (pagerduty, slack without rate limit, webhook)

Throughput is delivered requests per second between the first and the last arrival (process
start-up excluded). Then live latency: 1 process, events XADDed at 50/s, time from XADD to the
request's arrival at the receiver (both on this machine's monotonic clock), p50/p90/p99.
Ratios in one run are what to compare; the absolute numbers depend on the machine's load.
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.embedded_redis import resolve_redis_url  # noqa: E402

SECRET = "whsec_" + base64.b64encode(b"b" * 32).decode()
TYPES = {
    "firing": "sense_respond.unhappy_influential_customer",
    "acknowledged": "sense_respond.unhappy_influential_customer.acknowledged",
    "resolved": "sense_respond.unhappy_influential_customer.resolved",
}


class Receiver:
    """Answers 202 to every POST and records arrival times (and the event id when known)."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str | None]] = []
        lock = threading.Lock()
        arrivals = self.arrivals

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with lock:
                    arrivals.append((time.monotonic(), self.headers.get("webhook-id")))
                self.send_response(202)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def event(status: str, incident: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "status": status,
        "incident_id": incident,
        "customer_id": f"bluesky:{incident}",
        "platform": "bluesky",
        "handle": incident,
        "severity": "critical",
        "event_time": "2026-11-30T12:00:00Z",
        "routing": {"team": "service", "route": "default", "matched": []},
    }
    if status == "firing":
        data |= {
            "sentiment": {"mean": -0.7, "posts": 3},
            "influence": {"followers": 50_000, "percentile": 0.98, "inbound_accounts": 12},
            "evidence": [{"id": "p1", "text": "awful service", "compound": -0.8}],
            "reasons": ["mean sentiment -0.70 over 3 posts <= -0.35"],
        }
    elif status == "acknowledged":
        data["acknowledged_by"] = "bench"
    else:
        data["resolved_reason"] = "manual"
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "urn:bench",
        "type": TYPES[status],
        "time": "2026-11-30T12:00:00Z",
        "data": data,
    }


def config(path: Path, url: str, prefix: str, destinations: list[dict[str, str]]) -> Path:
    lines = ["[redis]", f'url = "{url}"', f'prefix = "{prefix}"', "", "[notify]"]
    lines += ["claim_idle_seconds = 5", "read_count = 100"]
    for d in destinations:
        lines += ["", "[[notify.destinations]]"] + [f'{k} = "{v}"' for k, v in d.items()]
        if d["type"] == "slack":
            lines.append("max_per_second = 100000.0")
    path.write_text("\n".join(lines) + "\n")
    return path


def spawn(cfg: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SR_")}
    return subprocess.Popen(
        [sys.executable, "-m", "sense_respond", "notify", "--config", str(cfg)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )


def drained(client: redis.Redis, prefix: str) -> bool:
    try:
        (info,) = client.xinfo_groups(f"{prefix}alerts")
    except (redis.ResponseError, ValueError):
        return False
    return info["pending"] == 0 and info.get("lag") == 0


def run_setup(
    client: redis.Redis, url: str, tmp: Path, incidents: int, processes: int, kinds: list[str]
) -> float:
    prefix = f"bench-notify:{uuid.uuid4().hex[:8]}:"
    receivers = [Receiver() for _ in kinds]
    destinations = []
    for n, (kind, receiver) in enumerate(zip(kinds, receivers, strict=True)):
        d = {"name": f"d{n}", "type": kind, "url": receiver.url}
        if kind == "pagerduty":
            d["routing_key"] = "bench"
        if kind == "webhook":
            d["secret"] = SECRET
        destinations.append(d)
    pipe = client.pipeline(transaction=False)
    for status in ("firing", "acknowledged", "resolved"):
        for i in range(incidents):
            e = event(status, f"i{i}")
            pipe.xadd(f"{prefix}alerts", {"alert": orjson.dumps(e), "id": e["id"]})
    pipe.execute()
    cfg = config(tmp / f"{prefix.replace(':', '_')}.toml", url, prefix, destinations)
    procs = [spawn(cfg) for _ in range(processes)]
    try:
        deadline = time.monotonic() + 600
        while not drained(client, prefix) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)
    times = sorted(t for r in receivers for t, _ in r.arrivals)
    total = len(times)
    expected = 3 * incidents * len(kinds)
    for r in receivers:
        r.close()
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for i in range(0, len(keys), 500):
        client.unlink(*keys[i : i + 500])
    if total < expected:
        raise SystemExit(f"only {total} of {expected} requests arrived")
    return (total - 1) / max(times[-1] - times[0], 1e-9)


def live_latency(client: redis.Redis, url: str, tmp: Path, count: int) -> list[float]:
    prefix = f"bench-notify:{uuid.uuid4().hex[:8]}:"
    receiver = Receiver()
    cfg = config(
        tmp / "live.toml",
        url,
        prefix,
        [{"name": "crm", "type": "webhook", "url": receiver.url, "secret": SECRET}],
    )
    proc = spawn(cfg)
    sent: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 60
        while not client.exists(f"{prefix}alerts") and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        for i in range(count):
            e = event("firing", f"live{i}")
            sent[e["id"]] = time.monotonic()
            client.xadd(f"{prefix}alerts", {"alert": orjson.dumps(e), "id": e["id"]})
            time.sleep(0.02)
        deadline = time.monotonic() + 120
        while len(receiver.arrivals) < count and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(60)
        receiver.close()
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.unlink(*keys)
    return sorted(at - sent[eid] for at, eid in receiver.arrivals if eid in sent)


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--incidents", type=int, default=300)
    ap.add_argument("--live", type=int, default=200, help="events for the latency run")
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    args = ap.parse_args()
    url, embedded = resolve_redis_url(args.redis_url)
    client = redis.Redis.from_url(url, protocol=2, socket_timeout=10)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            one = run_setup(client, url, t, args.incidents, 1, ["webhook"])
            two = run_setup(client, url, t, args.incidents, 2, ["webhook"])
            three = run_setup(client, url, t, args.incidents, 1, ["pagerduty", "slack", "webhook"])
            lat = live_latency(client, url, t, args.live)
    finally:
        client.close()
        if embedded is not None:
            embedded.stop()
    events = 3 * args.incidents
    print(f"events: {events} ({args.incidents} incidents x trigger/ack/resolve)")
    print(f"1 process,  1 webhook:        {one:8.0f} requests/s")
    print(f"2 processes, 1 webhook:       {two:8.0f} requests/s  ({two / one:.2f}x of 1 process)")
    print(
        f"1 process,  3 destinations:   {three:8.0f} requests/s"
        f"  ({three / one:.2f}x of 1 destination)"
    )
    print(
        f"live latency XADD -> receiver ({len(lat)} events at 50/s):"
        f" p50 {pct(lat, 0.5) * 1000:.1f} ms"
        f"  p90 {pct(lat, 0.9) * 1000:.1f} ms  p99 {pct(lat, 0.99) * 1000:.1f} ms"
        f"  max {lat[-1] * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
