"""--log-format json: one JSON object per log line, tracebacks included; text stays the default."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import orjson

from sense_respond.logs import JsonFormatter

KEYS = {"time", "level", "logger", "message"}
SR = (sys.executable, "-m", "sense_respond")


def _env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SR_")}, **extra}


def _json_lines(stderr: bytes) -> list[dict]:
    lines = [line for line in stderr.decode().splitlines() if line.strip()]
    assert lines, "nothing was logged"
    records = [orjson.loads(line) for line in lines]  # every line is one JSON document
    for record in records:
        assert isinstance(record, dict)
        assert record.keys() >= KEYS, record
        assert record["time"].endswith("Z")
    return records


def test_formatter_keeps_one_line_and_the_traceback() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed: %s", ("multi\nline",), sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = orjson.loads(line)
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "x"
    assert entry["message"] == "failed: multi\nline"
    assert "ValueError: bad" in entry["exc_info"]


def test_a_run_logs_json_only(redis_url: str, redis_prefix: str) -> None:
    lines = b'{not json\n{"id": "1", "kind": "post"}\n'
    done = subprocess.run(
        [*SR, "-v", "run", "--log-format", "json", "--input", "jsonl:-", "--prefix", redis_prefix],
        input=lines,
        capture_output=True,
        timeout=120,
        env=_env(SR_REDIS__URL=redis_url),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    records = _json_lines(done.stderr)
    messages = " ".join(r["message"] for r in records)
    assert "input: jsonl:-" in messages
    assert "summary:" in messages
    assert any(r["level"] == "DEBUG" for r in records)  # -v reaches the JSON handler


def test_errors_and_uncaught_exceptions_are_json_too() -> None:
    done = subprocess.run(
        [
            *SR,
            "--log-format",
            "json",
            "run",
            "--input",
            "jsonl:-",
            "--redis-url",
            "redis://127.0.0.1:1/0",
        ],
        input=b"",
        capture_output=True,
        timeout=120,
        env=_env(),
        check=False,
    )
    assert done.returncode == 2
    records = _json_lines(done.stderr)
    assert records[-1]["level"] == "ERROR"
    assert "cannot use Redis" in records[-1]["message"]

    crash = subprocess.run(
        [
            sys.executable,
            "-c",
            "from sense_respond import logs; logs.configure(fmt='json');"
            "import threading; t = threading.Thread(target=lambda: 1 / 0); t.start(); t.join();"
            "raise RuntimeError('boom')",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert crash.returncode == 1
    records = _json_lines(crash.stderr)
    assert "ZeroDivisionError" in records[0]["exc_info"]
    assert records[-1]["level"] == "CRITICAL"
    assert "RuntimeError: boom" in records[-1]["exc_info"]
