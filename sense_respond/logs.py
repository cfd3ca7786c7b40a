"""Logging set-up of the command line: readable text (default) or one JSON object per line.

`--log-format json` is for log shippers (Loki, Elasticsearch, CloudWatch): every line on stderr
is one JSON object with `time` (RFC 3339, UTC, milliseconds), `level`, `logger`, `message`, and
`exc_info` (the formatted traceback) when there is one. Uncaught exceptions, in the main thread
or any other, and Python warnings are logged the same way, so no multi-line traceback breaks
the stream. The CLI's own status lines (input, recovery, summary) are log records too.
"""

from __future__ import annotations

import logging
import sys
import threading
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

import orjson

LogFormat = Literal["text", "json"]
FORMATS: tuple[LogFormat, ...] = ("text", "json")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

STATUS_LOGGER = "sense_respond.status"
"""The logger of the CLI's status lines in JSON mode (in text mode they are bare lines)."""

_format: LogFormat = "text"


class JsonFormatter(logging.Formatter):
    """One JSON object per record (orjson), newline-free whatever the message holds."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        # default=str: a message argument that orjson cannot encode still logs.
        return orjson.dumps(entry, default=str).decode()


def configure(level: int = logging.INFO, fmt: LogFormat = "text") -> None:
    """Install the root handler on stderr in `fmt`; replaces any earlier configuration."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; use one of {', '.join(FORMATS)}")
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)

    global _format
    _format = fmt
    if fmt == "json":
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_thread_exception


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    logging.getLogger("sense_respond").critical("uncaught exception", exc_info=(exc_type, exc, tb))


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("sense_respond").error(
        "uncaught exception in thread %s",
        name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def status(message: str, level: int = logging.INFO) -> None:
    """A status line of the CLI: the bare line on stderr, or a JSON log record in JSON mode."""
    if _format == "json":
        logging.getLogger(STATUS_LOGGER).log(level, message)
    else:
        print(message, file=sys.stderr, flush=True)
