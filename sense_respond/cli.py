"""`sense-respond`: run the pipeline, the demo, and the on-call tools.

sense-respond run [--config FILE] [--input SPEC] [--redis-url URL] [--prefix P]
                  [--recovery-dir DIR [--snapshot-interval S] [--backup-interval S]]
                  [--metrics-port PORT [--metrics-host HOST]] [--log-format text|json]
sense-respond demo
sense-respond alerts tail [--group G] [--consumer C]
sense-respond score [--config FILE] [--explain] [TEXT ...]
sense-respond replay FILE --to redis:STREAM_KEY [--rate N]
sense-respond notify [--config FILE] [--redis-url URL] [--prefix P] [--metrics-port PORT]
sense-respond notify redrive [--destination NAME]... [--incident ID] [--dry-run]
sense-respond incidents list|show|ack|resolve ...   (see sense_respond/respond_cli.py)
sense-respond silence add|list|expire ...
sense-respond customer show ID

This module parses the command line and dispatches: `run` and `demo` are in
`sense_respond.run_cli`, `alerts tail`, `score` and `replay` in `sense_respond.tools_cli`,
`notify` in `sense_respond.notify`, and the people's commands in `sense_respond.respond_cli`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sense_respond import logs
from sense_respond.command_redis import RedisUnavailable, say_error
from sense_respond.run_cli import cmd_demo, cmd_run
from sense_respond.tools_cli import cmd_alerts_tail, cmd_replay, cmd_score


def _redis_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML settings file (default: $SR_CONFIG)")
    p.add_argument("--redis-url", help="Redis URL (default: $SR_REDIS__URL, else embedded)")
    p.add_argument("--prefix", help="key and channel prefix (default sr:)")


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (0..65535)")
    return port


def _log_flags(p: argparse.ArgumentParser, *, top: bool) -> None:
    # On the top parser and on every command, so `sense-respond run --log-format json` works;
    # a command's flag only overrides the top one when given (SUPPRESS).
    default: Any = "text" if top else argparse.SUPPRESS
    p.add_argument(
        "--log-format",
        choices=logs.FORMATS,
        default=default,
        help="text (default) or json: one JSON object per log line",
    )


def _log_flags_everywhere(p: argparse.ArgumentParser) -> None:
    """`--log-format` on every command and sub-command too (commands added later included)."""
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _log_flags(child, top=False)
                _log_flags_everywhere(child)


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    top = argparse.ArgumentParser(prog="sense-respond", description=__doc__.splitlines()[0])
    top.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    _log_flags(top, top=True)
    sub = top.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the pipeline")
    _redis_flags(run)
    run.add_argument(
        "--input", help="jsonl:PATH | jsonl:- | redis:KEY | jetstream:URL | mastodon:URL"
    )
    run.add_argument("--print-alerts", action="store_true", help="print alerts as they fire")
    run.add_argument("-w", "--workers-per-process", type=int, default=1)
    run.add_argument("-i", "--process-id", type=int, help="this process's index in a cluster")
    run.add_argument(
        "-a",
        "--addresses",
        help="host:port of every process, ';'-separated (the process that hosts the graph stage"
        " reads no network input, and no JSONL files with flow.shared_files)",
    )
    ops = run.add_argument_group("operations", "metrics and health over HTTP")
    ops.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="serve /metrics (Prometheus), /healthz and /readyz on PORT (0: any free port;"
        " each process of a cluster needs its own); default: no port is opened",
    )
    ops.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address to serve metrics on (default 127.0.0.1; 0.0.0.0 for remote scrapers)",
    )
    rec = run.add_argument_group(
        "recovery", "resume after a crash or restart from Bytewax state snapshots in DIR"
    )
    rec.add_argument(
        "--recovery-dir",
        type=Path,
        metavar="DIR",
        help="recovery partitions (created on first use); a run on the same DIR resumes",
    )
    rec.add_argument(
        "--recovery-partitions",
        type=int,
        metavar="N",
        help="partitions to create in an empty DIR (default 1)",
    )
    rec.add_argument(
        "--snapshot-interval",
        type=float,
        metavar="S",
        help="seconds between snapshots: the epoch length (default flow.epoch_interval_seconds)",
    )
    rec.add_argument(
        "--backup-interval",
        type=float,
        metavar="S",
        help="seconds to keep superseded snapshots, for backing DIR up (default 0)",
    )
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="replay the bundled sample feed on an embedded Redis")
    _redis_flags(demo)
    demo.set_defaults(func=cmd_demo)

    alerts = sub.add_parser("alerts", help="on-call tools")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True)
    tail = alerts_sub.add_parser("tail", help="read alerts through a consumer group and ack them")
    _redis_flags(tail)
    tail.add_argument("--group", default="oncall")
    tail.add_argument("--consumer", default=None, help="consumer name (default host-pid)")
    tail.add_argument(
        "--from-start",
        action="store_true",
        help="a new group starts at the oldest alert kept (default: only new alerts)",
    )
    tail.add_argument("--count", type=int, default=0, help="stop after N alerts (0: never)")
    tail.add_argument("--timeout", type=float, default=None, help="stop after N seconds")
    tail.set_defaults(func=cmd_alerts_tail)

    score = sub.add_parser("score", help="VADER scores of texts (or stdin lines)")
    score.add_argument("texts", nargs="*")
    score.add_argument("--config", type=Path, help="TOML settings: [listen] and [sentiment]")
    score.add_argument(
        "--explain",
        action="store_true",
        help="also print whether each text is about the business, the matched terms and the "
        "sentences scored",
    )
    score.add_argument("--lang", help="the posts' language tag for --explain (e.g. es)")
    score.set_defaults(func=cmd_score)

    replay = sub.add_parser("replay", help="push a JSONL file into a Redis stream")
    _redis_flags(replay)
    replay.add_argument("file", type=Path)
    replay.add_argument("--to", required=True, help="redis:STREAM_KEY")
    replay.add_argument("--rate", type=float, default=None, help="events per second (default: max)")
    replay.set_defaults(func=cmd_replay)

    from sense_respond.notify import add_parser as add_notify_parser

    add_notify_parser(sub)

    from sense_respond.respond_cli import add_commands

    add_commands(sub, _redis_flags)  # incidents, silence, customer show
    _log_flags_everywhere(top)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point."""
    args = parser().parse_args(argv)
    logs.configure(logging.DEBUG if args.verbose else logging.INFO, args.log_format)
    from connectors.redis_errors import RedisFailure

    try:
        return args.func(args)
    except ValidationError as exc:  # settings (TOML, SR_ variables, flags): one line
        from config.settings import describe_settings_error

        say_error(f"sense-respond: error: {describe_settings_error(exc)}")
        return 2
    except (ValueError, FileNotFoundError, RedisUnavailable) as exc:
        say_error(f"sense-respond: error: {exc}")
        return 2
    except RedisFailure as exc:  # outside the flow (e.g. the summary): one line, its exit code
        say_error(f"sense-respond: error: {exc}")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
