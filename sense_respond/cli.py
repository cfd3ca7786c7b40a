"""`sense-respond`: run the pipeline, the demo, and the on-call tools.

sense-respond run [--config FILE] [--input SPEC] [--redis-url URL] [--prefix P]
                  [--recovery-dir DIR [--snapshot-interval S] [--backup-interval S]]
                  [--metrics-port PORT [--metrics-host HOST]] [--log-format text|json]
sense-respond demo
sense-respond alerts tail [--group G] [--consumer C]
sense-respond score [--config FILE] [--explain] [TEXT ...]
sense-respond replay FILE --to redis:STREAM_KEY [--rate N]
sense-respond notify [--config FILE] [--redis-url URL] [--prefix P] [--metrics-port PORT]
sense-respond incidents list|show|ack|resolve ...   (see sense_respond/respond_cli.py)
sense-respond silence add|list|expire ...
sense-respond customer show ID
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from config.settings import Settings, load_settings
from sense_respond import logs

if TYPE_CHECKING:
    from sense_respond.recovery import RecoveryOptions

log = logging.getLogger("sense_respond")

DEMO_FEED = Path(__file__).with_name("data") / "demo_feed.jsonl"
DEMO_TRUTH = Path(__file__).with_name("data") / "demo_truth.json"
DEMO_CONFIG = Path(__file__).with_name("data") / "demo_config.toml"
"""The demo's brand accounts and listening rules (written by `sense_respond.scenario`)."""


# ---------------------------------------------------------------------------------------------
# settings and Redis at the edge


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    redis: dict[str, Any] = {}
    if getattr(args, "redis_url", None):
        _warn_if_password(args.redis_url)
        redis["url"] = args.redis_url
    if getattr(args, "prefix", None):
        redis["prefix"] = args.prefix
    overrides: dict[str, Any] = {"input": getattr(args, "input", None), **extra}
    if redis:
        overrides["redis"] = redis
    return load_settings(getattr(args, "config", None), overrides)


def _warn_if_password(url: str) -> None:
    """A password on the command line is visible to every local user (`ps`, /proc/PID/cmdline)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        has_password = parts.password is not None or "password=" in parts.query.lower()
    except ValueError:
        has_password = "@" in url
    if has_password:
        log.warning(
            "--redis-url holds a password, which other local users can read in `ps`: put the URL"
            " in SR_REDIS__URL, or in a file named by SR_REDIS__URL_FILE, instead"
        )


@contextlib.contextmanager
def _redis(settings: Settings, quiet: bool = False) -> Iterator[Settings]:
    """Settings with a usable Redis URL: the configured one, else an embedded server."""
    from connectors.embedded_redis import resolve_redis_url
    from connectors.redis_client import redacted_url

    configured = settings.redis.url.get_secret_value() if settings.redis.url else None
    url, embedded = resolve_redis_url(configured)
    try:
        if embedded is None:
            _check_reachable(url, settings)
        if embedded is not None and not quiet:
            _say(
                "no Redis URL configured: started an embedded Redis at"
                f" {redacted_url(url)} for this run (password-protected, this run only)"
            )
        elif not quiet:
            _say(f"Redis: {redacted_url(url)}  prefix: {settings.redis.prefix}")
        yield settings.with_redis_url(url)
    finally:
        if embedded is not None:
            embedded.stop()


class RedisUnavailable(RuntimeError):
    """The configured Redis does not answer (reported without a traceback)."""


def _check_reachable(url: str, settings: Settings) -> None:
    """Fail fast, with the reason, before any flow starts against a Redis that is not there."""
    from redis.exceptions import RedisError

    from connectors.redis_client import make_client, redacted_url

    client = make_client(url, settings.redis.model_copy(update={"retries": 0}))
    try:
        client.ping()
    except RedisError as exc:
        raise RedisUnavailable(f"cannot use Redis at {redacted_url(url)}: {exc}") from None
    finally:
        client.close()


def _say(message: str) -> None:
    logs.status(message)


def _say_error(message: str) -> None:
    """The line a failed run ends with (level ERROR in JSON logs)."""
    logs.status(message, logging.ERROR)


def _client(settings: Settings) -> Any:
    from connectors.redis_client import make_client

    assert settings.redis.url is not None
    return make_client(settings.redis.url.get_secret_value(), settings.redis)


# ---------------------------------------------------------------------------------------------
# printing alerts for people


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


class _LivePrinter:
    """Subscribes to the alerts channel and prints each alert as it fires."""

    def __init__(self, settings: Settings) -> None:
        self.count = 0
        self.customers: set[str] = set()
        self._client = _client(settings)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._channel = f"{settings.redis.prefix}alerts"
        self._pubsub.subscribe(self._channel)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-printer", daemon=True)

    def __enter__(self) -> _LivePrinter:
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


# ---------------------------------------------------------------------------------------------
# commands


def _recovery_options(args: argparse.Namespace | None) -> RecoveryOptions | None:
    """The recovery flags of `run`, or None when recovery is off."""
    if args is None or getattr(args, "recovery_dir", None) is None:
        for flag in ("recovery_partitions", "snapshot_interval", "backup_interval"):
            if getattr(args, flag, None) is not None:
                raise ValueError(f"--{flag.replace('_', '-')} needs --recovery-dir")
        return None
    from sense_respond.recovery import RecoveryOptions

    return RecoveryOptions(
        db_dir=args.recovery_dir,
        partitions=1 if args.recovery_partitions is None else args.recovery_partitions,
        snapshot_interval_seconds=args.snapshot_interval,
        backup_interval_seconds=0.0 if args.backup_interval is None else args.backup_interval,
    )


def _prepare_recovery(options: RecoveryOptions, args: argparse.Namespace | None) -> None:
    """Create the partitions on first use and say whether the run starts fresh or resumes."""
    from sense_respond import recovery

    in_cluster = bool(getattr(args, "addresses", None))
    created = recovery.prepare(options.db_dir, options.partitions, may_create=not in_cluster)
    state = recovery.inspect(options.db_dir)
    if created:
        what = f"created {state.partitions} partition(s), starting fresh"
    elif state.fresh:
        what = f"{state.partitions} partition(s), nothing committed yet: starting fresh"
    else:
        what = (
            f"{state.partitions} partition(s), {state.executions} earlier run(s): resuming from"
            f" epoch {state.resume_epoch} (output since that snapshot is replayed; alerts are"
            " de-duplicated by id)"
        )
    _say(f"recovery: {options.db_dir}: {what}")


def run_flow(settings: Settings, args: argparse.Namespace | None = None) -> None:
    """Build and run the dataflow in this process (a cluster member when -i/-a are given).

    With `--recovery-dir`, state is snapshotted at the end of every epoch (the snapshot
    interval, by default `flow.epoch_interval_seconds`) and a run on the same directory resumes
    where the last one's last snapshot left off.
    """
    from bytewax._bytewax import cli_main

    from connectors.graph_store import exit_process_on_restore_failure
    from connectors.inputs import input_name as source_label
    from connectors.inputs import make_source
    from connectors.placement import ClusterPlace
    from connectors.redis_errors import exit_process_on_failure
    from connectors.redis_source import acknowledged_on_success
    from flows.pipeline import build_flow, reads_input_here, tune_garbage_collector
    from sense_respond.metrics import watch_source

    options = _recovery_options(args)
    epoch = timedelta(seconds=settings.flow.epoch_interval_seconds)
    if options is not None:
        _prepare_recovery(options, args)
        epoch = options.epoch_interval(settings.flow.epoch_interval_seconds)
    addresses = getattr(args, "addresses", None)
    workers_per_process = getattr(args, "workers_per_process", 1) or 1
    place = ClusterPlace.of(getattr(args, "process_id", None), addresses, workers_per_process)
    workers = place.workers
    assert settings.redis.url is not None
    resumable = options is not None
    source = make_source(
        settings.input,
        settings,
        settings.redis.url.get_secret_value(),
        resumable=resumable,
        workers=workers,
    )
    watch_source(source, source_label(settings.input))
    flow = build_flow(
        settings,
        source,
        resumable=resumable,
        recovery_dir=None if options is None else options.db_dir,
        journal_policy=None if options is None else options.journal_policy(epoch),
        place=place,
    )
    reads_input = reads_input_here(settings, place)
    tune_garbage_collector()
    # Redis gone for good, or a graph snapshot file missing or damaged: one line, no Rust
    # panic. A stream's last entries are acknowledged only once the whole run has succeeded.
    with (
        exit_process_on_failure(report=_say_error),
        exit_process_on_restore_failure(report=_say_error),
        acknowledged_on_success(),
        _operator_endpoint(settings, source, args, reads_input=reads_input),
    ):
        cli_main(
            flow,
            workers_per_process=workers_per_process,
            process_id=getattr(args, "process_id", None),
            addresses=addresses.split(";") if addresses else None,
            epoch_interval=epoch,
            recovery_config=None if options is None else options.config(),
        )


@contextlib.contextmanager
def _operator_endpoint(
    settings: Settings,
    source: object,
    args: argparse.Namespace | None,
    *,
    reads_input: bool = True,
) -> Iterator[None]:
    """`/metrics`, `/healthz`, `/readyz` on `--metrics-host:--metrics-port` while the flow runs.

    `reads_input`: this process reads input (in a cluster, the graph's process does not: its
    readiness is Redis's alone). Without `--metrics-port` no port is opened. The server binds
    before the flow starts, so a port in use fails the run at once (exit 2) instead of after
    the first batch.
    """
    port = getattr(args, "metrics_port", None)
    if port is None:
        yield
        return
    from connectors.redis_retry import OUTAGE
    from sense_respond.health import HealthServer, ReadinessChecker

    host = getattr(args, "metrics_host", None) or "127.0.0.1"
    client = _probe_client(settings)
    checker = ReadinessChecker(
        lambda: bool(client.ping()),
        lambda: _source_connected(source, reads_input),
        report_redis=OUTAGE.probed,
    )
    try:
        server = HealthServer(host, port, lambda: checker.current)
    except OSError as exc:
        client.close()
        raise ValueError(f"--metrics-port {port}: cannot listen on {host}: {exc}") from None
    bound_host, bound_port = server.address
    checker.start()
    server.start()
    _say(f"metrics: http://{bound_host}:{bound_port}/metrics  (health: /healthz, /readyz)")
    try:
        yield
    finally:
        server.stop()
        checker.stop()
        client.close()


def _probe_client(settings: Settings) -> Any:
    """A Redis client for readiness probes: no retries, short timeouts (a probe must not hang)."""
    from connectors.redis_client import make_client
    from sense_respond.health import PING_TIMEOUT_SECONDS

    assert settings.redis.url is not None
    probe = settings.redis.model_copy(
        update={
            "retries": 0,
            "socket_timeout_seconds": PING_TIMEOUT_SECONDS,
            "connect_timeout_seconds": PING_TIMEOUT_SECONDS,
        }
    )
    return make_client(
        settings.redis.url.get_secret_value(), probe, client_name="sense-respond:probe"
    )


def _source_connected(source: object, reads_input: bool = True) -> bool:
    """Whether the input is connected: a live feed's session is open; files always are, and a
    Redis stream is as connected as Redis itself (which readiness checks on its own). A process
    that reads no input (`connectors.placement`) has nothing to connect."""
    from connectors.feed_runtime import FeedSource

    if isinstance(source, FeedSource) and reads_input:
        parts = list(source.partitions)
        return bool(parts) and all(p.reader.connected for p in parts)
    return True


def _summary(settings: Settings, started: float, printed: int | None = None) -> dict[str, Any]:
    from connectors.redis_retry import RedisRetry

    client = _client(settings)
    prefix = settings.redis.prefix
    retry = RedisRetry.from_settings(settings.redis.outage_budget_seconds)
    try:
        summary = {
            "alerts_in_stream": retry.call(lambda: client.xlen(f"{prefix}alerts"), "summary"),
            "dead_letters": retry.call(lambda: client.xlen(f"{prefix}dlq"), "summary"),
            "elapsed_seconds": round(time.perf_counter() - started, 2),
        }
    finally:
        client.close()
    if printed is not None:
        summary["alerts_printed"] = printed
    return summary


def input_name(spec: str) -> str:
    """The input spec as it may be printed (no credentials or tokens)."""
    from connectors.inputs import input_name as name

    return name(spec)


def cmd_run(args: argparse.Namespace) -> int:
    from connectors import shutdown

    _recovery_options(args)  # bad recovery flags fail before any Redis is started
    settings = _settings(args)
    with _redis(settings) as resolved:
        started = time.perf_counter()
        _say(f"input: {input_name(resolved.input)}")
        # SIGTERM/SIGINT end the sources; the flow drains, snapshots and returns normally.
        with shutdown.handle_signals():
            if args.print_alerts:
                with _LivePrinter(resolved) as printer:
                    run_flow(resolved, args)
                summary = _summary(resolved, started, printer.count)
            else:
                run_flow(resolved, args)
                summary = _summary(resolved, started)
        if shutdown.reason() is not None:
            summary["stopped_by"] = shutdown.reason()
        _say("summary: " + orjson.dumps(summary).decode())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    truth = orjson.loads(DEMO_TRUTH.read_bytes())
    if not args.prefix:
        # A fresh prefix per run: on a shared Redis, a second demo would otherwise find every
        # alert id already delivered (idempotent sink) and print nothing.
        args.prefix = f"sr-demo:{time.strftime('%Y%m%d-%H%M%S')}:{os.getpid()}:"
    if args.config is None:
        args.config = DEMO_CONFIG  # the brands and listening rules the demo's truth holds under
    settings = _settings(args, input=f"jsonl:{DEMO_FEED}")
    with _redis(settings) as resolved:
        lines = sum(1 for _ in DEMO_FEED.open("rb"))
        _say(f"demo: replaying {lines:,} events from {DEMO_FEED.name} ...")
        started = time.perf_counter()
        with _LivePrinter(resolved) as printer:
            run_flow(resolved)
        summary = _summary(resolved, started, printer.count)
        expected = set(truth["expected_alerts"])
        alerted = printer.customers
        hits = len(alerted & expected)
        summary |= {
            "events": lines,
            "events_per_second": round(lines / max(summary["elapsed_seconds"], 1e-9)),
            "customers_alerted": len(alerted),
            "planted_unhappy_influential": len(expected),
            "precision": round(hits / len(alerted), 3) if alerted else None,
            "recall": round(hits / len(expected), 3) if expected else None,
        }
        print("\nsummary")
        for key, value in summary.items():
            print(f"  {key:30} {value}")
    return 0


def cmd_alerts_tail(args: argparse.Namespace) -> int:
    from connectors.redis_source import AlertReader

    settings = _settings(args)
    if settings.redis.url is None:
        _say("alerts tail needs --redis-url (or SR_REDIS__URL): the Redis the pipeline writes to")
        return 2
    client = _client(settings)
    reader = AlertReader(
        client,
        settings.redis.prefix,
        group=args.group,
        consumer=args.consumer,
        block_ms=1000,
        start_id="0" if args.from_start else "$",
    )
    seen = 0
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    try:
        while deadline is None or time.monotonic() < deadline:
            batch = reader.read(count=100)
            for entry_id, alert in batch:
                print(format_alert(alert), flush=True)
                reader.ack([entry_id])
                seen += 1
                if args.count and seen >= args.count:
                    return 0
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """VADER scores of texts; with `--explain`, also whether each is about the business, why,
    and what was scored, all under the settings of `--config` (listening rules, lexicon)."""
    from flows.pipeline import listening
    from sense_respond.terminal import terminal_json

    settings = load_settings(args.config)
    listener, scorer = listening(settings) if args.explain else (None, None)
    if scorer is None:
        from config.listen import load_lexicon
        from operators.scoring import Scorer

        scorer = Scorer(load_lexicon(settings.sentiment))
    texts: Sequence[str] = args.texts or [line.rstrip("\n") for line in sys.stdin]
    for text in texts:
        if not text.strip():
            continue
        if listener is None:
            s = scorer.score(text)
            row = {"compound": s.compound, "pos": s.pos, "neu": s.neu, "neg": s.neg, "text": text}
        else:
            row = explain(text, listener, scorer, args.lang)
        print(terminal_json(row))  # the same JSON, with what a terminal acts on escaped
    return 0


def explain(text: str, listener: Any, scorer: Any, lang: str | None = None) -> dict[str, Any]:
    """What the pipeline makes of one post with this text: relevance, matched terms, scores."""
    from datetime import UTC, datetime

    from operators.events import SocialEvent
    from operators.scoring import score_text

    event = SocialEvent(
        id="explain",
        kind="post",
        created_at=datetime.now(UTC),
        author={"id": "explain"},
        text=text,
        lang=lang,
    )
    found = listener.relevance(event)
    row: dict[str, Any] = {
        "text": text,
        "relevant": found.relevant,
        "matched": list(found.matched),
        "excluded": list(found.excluded),
        "reason": found.reason or ("about the business" if found.relevant else ""),
        "listening": listener.active,
        "scope": listener.scope,
    }
    if not found.relevant:
        row["scored"] = False  # the pipeline would not score it (no VADER call)
    elif not found.scorable:
        row["scored"] = False
        row["sentiment"] = None
    else:
        scored_text = listener.text_to_score(text)
        s = scorer.score(scored_text)
        row["scored"] = True
        row["scored_text"] = scored_text
        row["sentiment"] = {"compound": s.compound, "pos": s.pos, "neu": s.neu, "neg": s.neg}
    # For comparison: the reference VADER score of the whole text, as `score` without config.
    row["reference_compound"] = score_text(text).compound
    row["lexicon_entries"] = len(scorer.lexicon)
    return row


def cmd_replay(args: argparse.Namespace) -> int:
    from connectors.inputs import split_spec
    from connectors.redis_source import push_jsonl

    scheme, key = split_spec(args.to)
    if scheme != "redis":
        _say("replay --to must be redis:STREAM_KEY")
        return 2
    settings = _settings(args)
    if settings.redis.url is None:
        _say("replay needs --redis-url (or SR_REDIS__URL): the Redis the pipeline reads from")
        return 2
    client = _client(settings)
    try:
        with open(args.file, "rb") as fh:
            sent = push_jsonl(client, key, fh, rate=args.rate)
    finally:
        client.close()
    _say(f"replayed {sent} lines into {key}")
    return 0


# ---------------------------------------------------------------------------------------------
# argument parsing


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
    except (ValueError, FileNotFoundError, RedisUnavailable) as exc:
        _say_error(f"sense-respond: error: {exc}")
        return 2
    except RedisFailure as exc:  # outside the flow (e.g. the summary): one line, its exit code
        _say_error(f"sense-respond: error: {exc}")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
