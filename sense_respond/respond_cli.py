"""The people's commands: `incidents`, `silence` and `customer show`.

sense-respond incidents list [--open] [--team T] [--limit N] [--json]
sense-respond incidents show ID [--json]
sense-respond incidents ack ID --by NAME [--note TEXT]
sense-respond incidents resolve ID --by NAME [--note TEXT]
sense-respond silence add --customer ID --duration 24h --by NAME --comment TEXT
sense-respond silence list [--json]
sense-respond silence expire ID
sense-respond customer show ID [--json]

They talk to the Redis the pipeline writes to (`--redis-url`, `SR_REDIS__URL` or the config);
IDs of incidents may be given by a unique prefix (at least 6 characters). Exit status: 0 done,
1 the action does not apply (unknown id, already resolved, ...), 2 usage or configuration error.
Everything printed that came from outside (posts, names, notes) is stripped of control and
escape sequences first.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI sequences (colours, cursor moves)
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC sequences (titles, hyperlinks)
    r"|\x1b[@-_]?"  # other escapes
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"  # C0 and C1 controls (tab and newline handled below)
    r"|[\u200e\u200f\u202a-\u202e\u2066-\u2069]"  # bidirectional overrides
)


def printable(value: object, limit: int = 500) -> str:
    """`value` as one line of text that is safe to print on a terminal."""
    text = "" if value is None else str(value)
    text = _CONTROL.sub("", text.replace("\r\n", " ").replace("\n", " ").replace("\t", " "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Fail(Exception):
    """A command that cannot do what was asked (exit 1, message to stderr)."""


def _with_client(func: Callable[[argparse.Namespace, Any, Any], int]) -> Callable[..., int]:
    """Settings and a client at the edge, errors as exit codes."""

    def run(args: argparse.Namespace) -> int:
        from redis.exceptions import RedisError

        from connectors.incident_store import UnknownIncident
        from connectors.redis_client import make_client, redacted_url
        from operators.incident_events import NotActionable
        from sense_respond.command_redis import settings_from_args

        settings = settings_from_args(args)
        if settings.redis.url is None:
            _say(
                f"{args.command} needs --redis-url (or SR_REDIS__URL): the Redis the pipeline"
                " writes to"
            )
            return 2
        url = settings.redis.url.get_secret_value()
        client = make_client(url, settings.redis)
        try:
            return func(args, settings, client)
        except (_Fail, UnknownIncident, NotActionable, LookupError) as exc:
            _say(f"sense-respond: {printable(exc.args[0] if exc.args else exc)}")
            return 1
        except RedisError as exc:
            _say(f"sense-respond: Redis at {redacted_url(url)}: {printable(exc)}")
            return 1
        finally:
            client.close()

    return run


def _dump(obj: Any) -> None:
    print(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


def _listing(
    found: list[dict[str, Any]], as_json: bool, none_found: str, line: Callable[[Any], str]
) -> int:
    """Print what a `list` command found: JSON, one `line` each, or `none_found` to stderr."""
    if as_json:
        _dump(found)
    elif not found:
        _say(none_found)
    else:
        for rec in found:
            print(line(rec))
    return 0


def _teams(rec: dict[str, Any]) -> str:
    teams = rec.get("teams") or [rec.get("team")]
    return ",".join(printable(t, 40) for t in teams if t)


def _who_acted(rec: dict[str, Any]) -> str:
    parts = []
    if rec.get("acknowledged_by"):
        parts.append(
            f"acked by {printable(rec['acknowledged_by'], 60)} {rec.get('acknowledged_at')}"
        )
    if rec.get("status") == "resolved":
        parts.append(
            f"resolved {printable(rec.get('resolved_reason'), 30)}"
            f" by {printable(rec.get('resolved_by'), 60)} {rec.get('resolved_at')}"
        )
    return "; ".join(parts)


def incident_line(rec: dict[str, Any]) -> str:
    """One incident as a line of `incidents list`."""
    handle = rec.get("handle")
    who = printable(rec.get("customer_id"), 80) + (f" @{printable(handle, 40)}" if handle else "")
    silenced = "  [silenced]" if rec.get("silenced_by") else ""
    return (
        f"{printable(rec.get('id'), 40)}  {printable(rec.get('status'), 12):12}"
        f"  {printable(rec.get('severity'), 8):8}  {_teams(rec):16}  {who}"
        f"  opened {printable(rec.get('opened_at'), 30)}  {_who_acted(rec)}{silenced}"
    ).rstrip()


def _timeline(rec: dict[str, Any], indent: str = "    ") -> list[str]:
    lines = []
    for item in rec.get("activity") or []:
        extra = item.get("reason") or item.get("severity") or ""
        note = f"  note: {printable(item['note'])}" if item.get("note") else ""
        lines.append(
            f"{indent}{printable(item.get('at'), 30)}  {printable(item.get('by'), 60)}"
            f"  {printable(item.get('action'), 20)} {printable(extra, 30)}{note}".rstrip()
        )
    return lines


def describe_incident(rec: dict[str, Any]) -> list[str]:
    """An incident as the lines of `incidents show`."""
    routing = rec.get("routing") if isinstance(rec.get("routing"), dict) else {}
    lines = [
        f"incident {printable(rec.get('id'))}  ({printable(rec.get('status'))},"
        f" {printable(rec.get('severity'))})",
        f"  customer   {printable(rec.get('customer_id'))}"
        + (f" @{printable(rec['handle'])}" if rec.get("handle") else ""),
        f"  team       {printable(rec.get('team'))}  (teams {_teams(rec)};"
        f" route {printable(routing.get('route') or 'default')}"
        + (
            f": {printable('; '.join(routing.get('matched') or []))}"
            if routing.get("matched")
            else ""
        )
        + ")",
        f"  opened     {printable(rec.get('opened_at'))}"
        f"   updated {printable(rec.get('updated_at'))}",
        f"  events     {rec.get('firings', '0')} firing(s), {rec.get('events', '0')} in all"
        + (f", {rec['suppressed']} suppressed after resolution" if rec.get("suppressed") else "")
        + (f", reopened {rec['reopened']}x" if rec.get("reopened") else ""),
    ]
    if rec.get("acknowledged_by"):
        lines.append(
            f"  acked      by {printable(rec['acknowledged_by'])} at {rec.get('acknowledged_at')}"
        )
    if rec.get("status") == "resolved":
        lines.append(
            f"  resolved   {printable(rec.get('resolved_reason'))} by"
            f" {printable(rec.get('resolved_by'))} at {rec.get('resolved_at')}"
        )
    if rec.get("silenced_by"):
        lines.append(f"  silenced   by silence {printable(rec['silenced_by'])}")
    sentiment = rec.get("sentiment") if isinstance(rec.get("sentiment"), dict) else None
    if sentiment:
        lines.append(
            f"  sentiment  mean {sentiment.get('mean', 0):+.2f} over {sentiment.get('posts')}"
            " posts at the last firing"
        )
    notes = rec.get("notes") or []
    if notes:
        lines.append("  notes")
        for n in notes:
            when, who = printable(n.get("at"), 30), printable(n.get("by"), 60)
            lines.append(f"    {when}  {who}: {printable(n.get('text'))}")
    timeline = _timeline(rec)
    if timeline:
        lines.append("  who acted when")
        lines += timeline
    return lines


# ---------------------------------------------------------------------------------------------
# incidents


@_with_client
def cmd_incidents_list(args: argparse.Namespace, settings: Any, client: Any) -> int:
    from connectors.incident_store import list_incidents

    found = list_incidents(
        client, settings.redis.prefix, open_only=args.open, team=args.team, limit=args.limit
    )
    none_found = (
        "no incidents"
        + (" open" if args.open else "")
        + (f" for team {args.team}" if args.team else "")
    )
    return _listing(found, args.json, none_found, incident_line)


@_with_client
def cmd_incidents_show(args: argparse.Namespace, settings: Any, client: Any) -> int:
    from connectors.incident_store import get_incident, resolve_id

    prefix = settings.redis.prefix
    rec = get_incident(client, prefix, resolve_id(client, prefix, args.id))
    if args.json:
        _dump(rec)
    else:
        print("\n".join(describe_incident(rec)))
    return 0


def _act(action: str) -> Callable[..., int]:
    @_with_client
    def command(args: argparse.Namespace, settings: Any, client: Any) -> int:
        from connectors.incident_store import act, resolve_id

        iid = resolve_id(client, settings.redis.prefix, args.id)
        done = act(client, settings, iid, action, args.by, args.note, datetime.now(UTC))  # type: ignore[arg-type]
        rec = done.record
        what = "acknowledged" if action == "acknowledged" else "resolved"
        if done.outcome == "suppressed":
            raise _Fail(f"incident {iid} was resolved meanwhile: nothing written")
        same = ""
        if done.outcome == "duplicate":
            # The same event was written already: by this command repeated, or by someone else
            # acting on the same state at the same moment (the id is the incident's, the action's
            # and its reopen count's). Only the first person owns it; the others must know.
            actor = rec.get(f"{action}_by")
            if actor != args.by:
                raise _Fail(
                    f"incident {iid} is already {what} by {printable(actor)} at"
                    f" {printable(rec.get(f'{action}_at'))}: nothing written"
                )
            same = " (already written: same event)"
        print(
            f"{what} incident {iid} ({printable(rec.get('customer_id'))}) by"
            f" {printable(args.by)}; event {done.event['id']}{same}"
        )
        return 0

    return command


# ---------------------------------------------------------------------------------------------
# silences


@_with_client
def cmd_silence_add(args: argparse.Namespace, settings: Any, client: Any) -> int:
    from connectors.incident_store import add_silence, parse_duration

    try:
        duration = parse_duration(args.duration)
        silence = add_silence(
            client,
            settings.redis.prefix,
            args.customer,
            duration,
            args.by,
            args.comment,
            datetime.now(UTC),
        )
    except ValueError as exc:
        _say(f"sense-respond: {printable(exc)}")
        return 2
    print(
        f"silence {silence['id']}: {printable(silence['customer_id'])} until {silence['ends_at']}"
        f" (by {printable(silence['by'])}: {printable(silence['comment'])})"
    )
    return 0


@_with_client
def cmd_silence_list(args: argparse.Namespace, settings: Any, client: Any) -> int:
    from connectors.incident_store import list_silences

    found = list_silences(client, settings.redis.prefix, datetime.now(UTC))
    return _listing(found, args.json, "no active silences", silence_line)


def silence_line(s: dict[str, Any]) -> str:
    """One silence as `silence list` prints it."""
    return (
        f"{s['id']}  {printable(s.get('customer_id'), 80)}  until {s.get('ends_at')}"
        f"  by {printable(s.get('by'), 60)}: {printable(s.get('comment'))}"
    )


@_with_client
def cmd_silence_expire(args: argparse.Namespace, settings: Any, client: Any) -> int:
    from connectors.incident_store import expire_silence, resolve_silence_id

    prefix = settings.redis.prefix
    silence_id = resolve_silence_id(client, prefix, args.id, datetime.now(UTC))
    silence = expire_silence(client, prefix, silence_id)
    print(f"expired silence {silence['id']} of {printable(silence.get('customer_id'))}")
    return 0


# ---------------------------------------------------------------------------------------------
# the customer's view


def describe_customer(shown: dict[str, Any]) -> list[str]:
    """The whole shared view of a customer, as `customer show` prints it."""
    view = shown["view"]
    handle = view.get("handle")
    lines = [
        f"customer {printable(shown['customer_id'])}"
        + (f" @{printable(handle)}" if handle else "")
        + (f"  ({printable(view.get('platform'))})" if view.get("platform") else "")
    ]
    sent = view.get("sentiment") if isinstance(view.get("sentiment"), dict) else None
    if sent:
        hours = (sent.get("window_seconds") or 0) / 3600
        lines.append(
            f"  sentiment  mean {sent.get('mean', 0):+.2f} over {sent.get('posts')} posts"
            f" (min {sent.get('min', 0):+.2f}, latest {sent.get('latest', 0):+.2f},"
            f" window {hours:g} h)"
        )
    inf = view.get("influence") if isinstance(view.get("influence"), dict) else None
    if inf:
        pct = inf.get("percentile")
        lines.append(
            f"  influence  followers {inf.get('followers', 0):,}, percentile"
            f" {'n/a' if pct is None else f'{pct:.2f}'}, inbound accounts"
            f" {inf.get('inbound_accounts', 0)}"
        )
    last = view.get("last_alert") if isinstance(view.get("last_alert"), dict) else None
    if last:
        data = last.get("data") or {}
        lines.append(
            f"  last alert {printable(data.get('event_time'), 40)}"
            f" {printable(data.get('severity'), 10)}  (event {printable(last.get('id'), 40)})"
        )
        for ev in (data.get("evidence") or [])[:3]:
            url = f"  {printable(ev['url'], 200)}" if ev.get("url") else ""
            lines.append(f"    {ev.get('compound', 0):+.2f}  {printable(ev.get('text'), 300)}{url}")
    for s in shown.get("silences") or []:
        lines.append(
            f"  silenced   until {s.get('ends_at')} by {printable(s.get('by'))}:"
            f" {printable(s.get('comment'))} (silence {s.get('id')})"
        )
    incidents = shown.get("incidents") or []
    current = next((i for i in incidents if i.get("status") != "resolved"), None)
    if current is not None:
        lines.append("  open incident")
        lines += ["  " + line for line in describe_incident(current)]
    else:
        lines.append("  open incident: none")
    past = [i for i in incidents if i is not current]
    if past:
        lines.append("  past incidents")
        for rec in past:
            lines.append("    " + incident_line(rec))
            lines += _timeline(rec, indent="        ")
    return lines


@_with_client
def cmd_customer_show(args: argparse.Namespace, settings: Any, client: Any) -> int:
    from connectors.incident_store import customer_view

    shown = customer_view(client, settings.redis.prefix, args.id)
    if shown is None:
        raise _Fail(f"no customer {args.id!r} (views expire after redis.view_ttl_seconds idle)")
    if args.json:
        _dump(shown)
    else:
        print("\n".join(describe_customer(shown)))
    return 0


# ---------------------------------------------------------------------------------------------
# argument parsing


def add_commands(sub: Any, redis_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register `incidents`, `silence` and `customer` on the top-level subparsers."""
    inc = sub.add_parser("incidents", help="list, show, acknowledge and resolve incidents")
    inc_sub = inc.add_subparsers(dest="incidents_command", required=True)
    lst = inc_sub.add_parser("list", help="incidents, newest first")
    redis_flags(lst)
    lst.add_argument("--open", action="store_true", help="only incidents not resolved")
    lst.add_argument("--team", help="only incidents routed to this team")
    lst.add_argument("--limit", type=int, default=50)
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_incidents_list)
    show = inc_sub.add_parser("show", help="one incident: routing, who acted when, notes")
    redis_flags(show)
    show.add_argument("id", help="incident id (or a unique prefix)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_incidents_show)
    for verb, action, text in (
        ("ack", "acknowledged", "take the incident: the notifier pushes the acknowledgement"),
        ("resolve", "resolved", "close the incident by hand (resolved_reason manual)"),
    ):
        p = inc_sub.add_parser(verb, help=text)
        redis_flags(p)
        p.add_argument("id", help="incident id (or a unique prefix)")
        p.add_argument("--by", required=True, help="who acts (shown to everyone)")
        p.add_argument("--note", help="a note kept with the incident")
        p.set_defaults(func=_act(action))

    sil = sub.add_parser("silence", help="silence a customer's incidents for a while")
    sil_sub = sil.add_subparsers(dest="silence_command", required=True)
    add = sil_sub.add_parser("add", help="events still recorded, not pushed to teams")
    redis_flags(add)
    add.add_argument("--customer", required=True, help="customer id, e.g. twitter:123")
    add.add_argument("--duration", required=True, help="e.g. 30m, 24h, 2d, 1h30m")
    add.add_argument("--by", required=True)
    add.add_argument("--comment", required=True)
    add.set_defaults(func=cmd_silence_add)
    sl = sil_sub.add_parser("list", help="active silences")
    redis_flags(sl)
    sl.add_argument("--json", action="store_true")
    sl.set_defaults(func=cmd_silence_list)
    exp = sil_sub.add_parser("expire", help="end a silence now")
    redis_flags(exp)
    exp.add_argument("id")
    exp.set_defaults(func=cmd_silence_expire)

    cust = sub.add_parser("customer", help="the shared view of one customer")
    cust_sub = cust.add_subparsers(dest="customer_command", required=True)
    cs = cust_sub.add_parser("show", help="sentiment, influence, incidents, who acted when")
    redis_flags(cs)
    cs.add_argument("id", help="customer id, e.g. twitter:123")
    cs.add_argument("--json", action="store_true")
    cs.set_defaults(func=cmd_customer_show)
