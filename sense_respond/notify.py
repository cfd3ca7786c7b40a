"""`sense-respond notify`: the long-running notifier process (see `connectors/notify`).

sense-respond notify [--config FILE] [--redis-url URL] [--prefix P]
                     [--metrics-port PORT [--metrics-host HOST]]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("sense_respond.notify")


def add_parser(sub: Any) -> None:
    """Register the `notify` verb on the CLI's subparsers."""
    p = sub.add_parser(
        "notify", help="push incident lifecycle events to PagerDuty, Slack and webhooks"
    )
    p.add_argument("--config", type=Path, help="TOML settings file (default: $SR_CONFIG)")
    p.add_argument("--redis-url", help="Redis URL the pipeline writes to ($SR_REDIS__URL)")
    p.add_argument("--prefix", help="key and channel prefix (default sr:)")
    p.add_argument(
        "--metrics-port",
        type=int,
        help="serve the notifier's /metrics on this port (default: none)",
    )
    p.add_argument(
        "--metrics-host", default="127.0.0.1", help="address of the metrics port (127.0.0.1)"
    )
    p.set_defaults(func=cmd_notify)


def cmd_notify(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server

    from config.settings import load_settings
    from connectors.notify.metrics import NOTIFY_REGISTRY
    from connectors.notify.service import Notifier, make_notifier_client

    redis: dict[str, Any] = {}
    if args.redis_url:
        redis["url"] = args.redis_url
    if args.prefix:
        redis["prefix"] = args.prefix
    settings = load_settings(args.config, {"redis": redis} if redis else None)
    if settings.redis.url is None:
        print(
            "sense-respond: error: notify needs --redis-url (or SR_REDIS__URL): the Redis the"
            " pipeline writes its alerts to",
            file=sys.stderr,
        )
        return 2
    client = make_notifier_client(settings)
    notifier = Notifier(settings, client)
    server = None
    if args.metrics_port is not None:
        server, _thread = start_http_server(
            args.metrics_port, addr=args.metrics_host, registry=NOTIFY_REGISTRY
        )
        log.info("notifier metrics on http://%s:%d/metrics", args.metrics_host, server.server_port)
    try:
        return notifier.run()
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        client.close()
