"""The commands that run the pipeline: `run` (alone or as a cluster member) and `demo`.

`run_flow` builds the dataflow and runs it in this process, with Bytewax recovery when
`--recovery-dir` is given (`sense_respond.recovery`) and, with `--metrics-port`, the operator
endpoint (`/metrics`, `/healthz`, `/readyz`; `sense_respond.health`) while it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from config.settings import Settings
from sense_respond.alert_printing import LivePrinter
from sense_respond.command_redis import (
    open_client,
    say,
    say_error,
    settings_from_args,
    usable_redis,
)

if TYPE_CHECKING:
    from sense_respond.recovery import RecoveryOptions

DEMO_FEED = Path(__file__).with_name("data") / "demo_feed.jsonl"
DEMO_TRUTH = Path(__file__).with_name("data") / "demo_truth.json"
DEMO_CONFIG = Path(__file__).with_name("data") / "demo_config.toml"
"""The demo's brand accounts and listening rules (written by `sense_respond.scenario`)."""


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
    say(f"recovery: {options.db_dir}: {what}")


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
        exit_process_on_failure(report=say_error),
        exit_process_on_restore_failure(report=say_error),
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
    say(f"metrics: http://{bound_host}:{bound_port}/metrics  (health: /healthz, /readyz)")
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

    client = open_client(settings)
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


def cmd_run(args: argparse.Namespace) -> int:
    from connectors import shutdown
    from connectors.inputs import input_name  # the spec as it may be printed (no credentials)

    _recovery_options(args)  # bad recovery flags fail before any Redis is started
    settings = settings_from_args(args)
    with usable_redis(settings) as resolved:
        started = time.perf_counter()
        say(f"input: {input_name(resolved.input)}")
        # SIGTERM/SIGINT end the sources; the flow drains, snapshots and returns normally.
        with shutdown.handle_signals():
            if args.print_alerts:
                with LivePrinter(resolved) as printer:
                    run_flow(resolved, args)
                summary = _summary(resolved, started, printer.count)
            else:
                run_flow(resolved, args)
                summary = _summary(resolved, started)
        if shutdown.reason() is not None:
            summary["stopped_by"] = shutdown.reason()
        say("summary: " + orjson.dumps(summary).decode())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    truth = orjson.loads(DEMO_TRUTH.read_bytes())
    if not args.prefix:
        # A fresh prefix per run: on a shared Redis, a second demo would otherwise find every
        # alert id already delivered (idempotent sink) and print nothing.
        args.prefix = f"sr-demo:{time.strftime('%Y%m%d-%H%M%S')}:{os.getpid()}:"
    if args.config is None:
        args.config = DEMO_CONFIG  # the brands and listening rules the demo's truth holds under
    settings = settings_from_args(args, input=f"jsonl:{DEMO_FEED}")
    with usable_redis(settings) as resolved:
        lines = sum(1 for _ in DEMO_FEED.open("rb"))
        say(f"demo: replaying {lines:,} events from {DEMO_FEED.name} ...")
        started = time.perf_counter()
        with LivePrinter(resolved) as printer:
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
