"""`sense-respond notify`: the long-running notifier process (see `connectors/notify`), and
`sense-respond notify redrive`, which sends its dead letters again (`connectors.notify.redrive`).

sense-respond notify [--config FILE] [--redis-url URL] [--prefix P]
                     [--metrics-port PORT [--metrics-host HOST]]
sense-respond notify redrive [--destination NAME]... [--incident ID] [--dry-run]
                             [--config FILE] [--redis-url URL] [--prefix P]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config.settings import Settings

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
    actions = p.add_subparsers(dest="notify_action", metavar="{redrive}")
    r = actions.add_parser(
        "redrive",
        help="send the notifier's dead letters again, per incident in order (see README)",
        description="Send the dead letters of {prefix}notify:dlq again, once their cause is"
        " fixed: per destination and incident in order; letters superseded by a later event"
        " the destination received, and the firings of resolved incidents, leave unsent.",
    )
    # SUPPRESS: given before `redrive` (`notify --config F redrive`) they are not reset here.
    r.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="TOML settings file")
    r.add_argument("--redis-url", default=argparse.SUPPRESS, help="Redis URL ($SR_REDIS__URL)")
    r.add_argument("--prefix", default=argparse.SUPPRESS, help="key and channel prefix")
    r.add_argument(
        "--destination",
        action="append",
        help="only this destination's letters (repeatable; default: every destination)",
    )
    r.add_argument(
        "--incident", help="only this incident's letters (its id, or a unique prefix of 6+)"
    )
    r.add_argument(
        "--dry-run", action="store_true", help="print what would happen; send and delete nothing"
    )
    r.add_argument(
        "--include-stale",
        action="store_true",
        help="also send stale letters (their markers expired, or nothing is known of their"
        " incident any more): look at them with --dry-run first",
    )
    r.set_defaults(func=cmd_redrive)


def _settings(args: argparse.Namespace) -> Settings | None:
    """The notifier's settings from the flags over the environment over `--config`; None (and
    the error printed) without a Redis URL."""
    from config.settings import load_settings
    from sense_respond.command_redis import warn_if_password

    redis: dict[str, Any] = {}
    if args.redis_url:
        warn_if_password(args.redis_url)
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
        return None
    return settings


def cmd_notify(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server

    from connectors.notify.metrics import NOTIFY_REGISTRY
    from connectors.notify.service import Notifier, make_notifier_client

    settings = _settings(args)
    if settings is None:
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


def cmd_redrive(args: argparse.Namespace) -> int:
    """Plan, print and (unless --dry-run) carry out the redrive; 1 when a letter that should
    have gone did not (failed again, held behind one that did, or another redrive was busy)."""
    from redis.exceptions import RedisError

    from connectors.incident_store import AmbiguousIncident
    from connectors.notify.redrive import Redrive
    from connectors.notify.service import make_notifier_client
    from connectors.redis_client import redacted_url

    settings = _settings(args)
    if settings is None:
        return 2
    names = {d.name for d in settings.notify.destinations}
    unknown = sorted(set(args.destination or ()) - names)
    if unknown:
        print(
            f"sense-respond: error: no destination named {', '.join(unknown)} in [notify]"
            f" (configured: {', '.join(sorted(names)) or 'none'})",
            file=sys.stderr,
        )
        return 2
    client = make_notifier_client(settings)
    try:
        incident = args.incident and _incident_id(client, settings.redis.prefix, args.incident)
        redrive = Redrive(settings, client)
        wanted = set(args.destination) if args.destination else None
        report = redrive.run(
            wanted, incident, args.dry_run, on_step=_print_step, include_stale=args.include_stale
        )
    except AmbiguousIncident as exc:
        print(f"sense-respond: error: {exc.args[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sense-respond: redrive interrupted: the letters not marked sent stay in the dead"
              " letters (a request in flight may go again next time)", file=sys.stderr)  # fmt: skip
        return 130
    except RedisError as exc:
        # Letters not marked sent stay for the next run (a delivered one whose mark failed goes
        # again then: at least once).
        url = redacted_url(settings.redis.url.get_secret_value())  # type: ignore[union-attr]
        print(f"sense-respond: error: Redis at {url}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    counts = report.counts()
    done = ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) or "no dead letters"
    print(f"redrive{' (dry run)' if args.dry_run else ''}: {done}")
    return 1 if report.unsent else 0


def _incident_id(client: Any, prefix: str, given: str) -> str:
    """The full id of `given` (a unique prefix of 6 or more characters, as `incidents` takes);
    `given` itself when no record has it (a record expires while its letters may remain)."""
    from connectors.incident_store import AmbiguousIncident, UnknownIncident, resolve_id

    try:
        return resolve_id(client, prefix, given)
    except AmbiguousIncident:
        raise
    except UnknownIncident:
        return given.strip()


def _print_step(step: Any, outcome: str) -> None:
    letter = step.letter
    event = letter.event
    what = f"{event.status} of incident {event.incident_id}" if event else "unreadable entry"
    detail = outcome.split(": ", 1)[1] if ": " in outcome else step.why
    name = outcome.split(":", 1)[0]
    print(f"{name:<12} {letter.destination:<16} {what} (event {letter.event_id}): {detail}")
