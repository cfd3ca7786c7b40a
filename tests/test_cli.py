"""The command line: scoring, readable alerts, and errors a user can act on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from sense_respond.alert_printing import format_alert
from sense_respond.cli import main
from tests.notify_fixtures import wait_for


def sr(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None):
    base = {k: v for k, v in os.environ.items() if not k.startswith("SR_")}
    return subprocess.run(
        [sys.executable, "-m", "sense_respond", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env={**base, **(env or {})},
        check=False,
    )


def test_score_arguments_match_vader(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", "I love this!", "worst flight ever"]) == 0
    rows = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    ref = SentimentIntensityAnalyzer()
    assert [r["text"] for r in rows] == ["I love this!", "worst flight ever"]
    for row in rows:
        expected = ref.polarity_scores(row["text"])
        assert {k: row[k] for k in ("compound", "pos", "neu", "neg")} == expected


def test_score_reads_stdin_lines() -> None:
    done = sr("score", stdin=b"great service\n\nterrible service\n")
    assert done.returncode == 0, done.stderr
    rows = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["great service", "terrible service"]
    assert rows[0]["compound"] > 0 > rows[1]["compound"]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["run", "--input", "jsonl:/nonexistent/feed.jsonl"], {}, b"not found"),
        (["run", "--config", "/nonexistent.toml"], {}, b"config file not found"),
        (["run", "--input", "jsonl:-"], {"SR_RULES__COOLDOWN": "5"}, b"unknown setting"),
        (["run", "--input", "jsonl:-"], {"SR_RULES__MIN_POSTS": "zero"}, b"min_posts"),
        (["replay", "x.jsonl", "--to", "kafka:topic"], {}, b"redis:STREAM_KEY"),
        (["run", "--redis-url", "redis://127.0.0.1:1/0"], {}, b"cannot use Redis"),
        (["run", "--redis-url", "redis://:pw@127.0.0.1:1/0"], {}, b"redis://:***@127.0.0.1:1"),
        # a name below a plain value would be dropped by pydantic-settings: refused
        (["run", "--input", "jsonl:-"], {"SR_REDIS__URL__FILE": "/x"}, b"SR_REDIS__URL__FILE"),
        (["run", "--input", "jsonl:-"], {"SR_REDIS__PREFIX__X": "zz"}, b"SR_REDIS__PREFIX__X"),
        (
            ["run", "--input", "jsonl:-"],
            {"SR_RULES__COOLDOWN_SECONDS": "abc"},
            b"error: invalid settings: rules.cooldown_seconds: Input should be a valid integer",
        ),
    ],
)
def test_errors_exit_2_with_a_message(args: list[str], env: dict[str, str], message: bytes) -> None:
    done = sr(*args, env=env, stdin=b"")
    assert done.returncode == 2
    assert message in done.stderr
    assert b"Traceback" not in done.stderr
    assert message in done.stderr.strip().splitlines()[-1]  # the error is one line, the last


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[rules]\ncooldown = 5\n", b"error: invalid settings: rules.cooldown: unknown setting\n"),
        ("[rules\ncooldown = 5\n", b"sr.toml: not valid TOML: Expected ']'"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_the_problem(
    tmp_path: Path, toml: str, message: bytes
) -> None:
    cfg = tmp_path / "sr.toml"
    cfg.write_text(toml)
    done = sr("run", "--config", str(cfg), "--input", "jsonl:-", stdin=b"")
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_secrets_never_reach_the_output(redis_url: str, redis_prefix: str) -> None:
    # a password-bearing URL (this Redis has no password; it only must not be echoed)
    url = redis_url.replace("redis://", "redis://:s3cr3t-pw@", 1)
    done = sr("run", "--input", "jsonl:-", "--redis-url", url, "--prefix", redis_prefix, stdin=b"")
    assert b"s3cr3t-pw" not in done.stderr + done.stdout


def test_format_alert_is_readable() -> None:
    alert = {
        "id": "a1",
        "data": {
            "customer_id": "twitter:1",
            "handle": "ann",
            "severity": "critical",
            "event_time": "2026-03-02T10:00:00Z",
            "sentiment": {"mean": -0.71, "posts": 3},
            "influence": {"followers": 25000, "percentile": 0.97, "inbound_accounts": 12},
            "evidence": [{"compound": -0.8, "text": "never again"}],
        },
    }
    text = format_alert(alert)
    assert "[CRITICAL" in text
    assert "twitter:1 @ann" in text
    assert "-0.71 over 3 posts" in text
    assert "25,000" in text
    assert "never again" in text


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"status": "resolved", "resolved_reason": "quiet", "incident_id": "i1"},
            "[RESOLVED] twitter:1 @ann  incident i1  quiet  event 2026-03-02T10:00:00Z",
        ),
        (
            {"status": "resolved", "resolved_reason": "manual", "resolved_by": "zoe"},
            "manual by zoe",
        ),
        ({"status": "acknowledged", "acknowledged_by": "zoe"}, "[ACKNOWLEDGED] twitter:1 @ann"),
    ],
)
def test_format_alert_follow_ups_are_one_line(data: dict, expected: str) -> None:
    base = {"customer_id": "twitter:1", "handle": "ann", "event_time": "2026-03-02T10:00:00Z"}
    text = format_alert({"id": "e1", "data": base | data})
    assert "\n" not in text
    assert expected in text


def test_format_alert_marks_silenced_events() -> None:
    alert = {"id": "a", "data": {"customer_id": "x:1", "silenced_by": "s1", "sentiment": {}}}
    assert "(silenced)" in format_alert(alert).splitlines()[0]


def test_a_piped_feed_alerts_while_the_pipe_stays_open_and_stops_on_sigterm(
    tmp_path: Path, redis_url: str, redis_prefix: str, redis_client: Any
) -> None:
    """`tail -f feed | sense-respond run --input jsonl:-`: the alert comes while the pipe is
    still open (not after 500 lines or its end), and SIGTERM stops a run whose pipe is quiet."""
    cfg = tmp_path / "sr.toml"
    cfg.write_text('brand_accounts = ["acme"]\n')
    base = {k: v for k, v in os.environ.items() if not k.startswith("SR_")}
    run = subprocess.Popen(
        [sys.executable, "-m", "sense_respond", "run", "--config", str(cfg), "--input", "jsonl:-",
         "--redis-url", redis_url, "--prefix", redis_prefix],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base,
    )  # fmt: skip
    try:
        assert run.stdin is not None
        for i, text in enumerate(["@acme awful, useless service", "@acme horrible, I hate it"]):
            line = {
                "id": f"p{i}",
                "kind": "post",
                "created_at": f"2026-03-02T08:0{i}:00Z",
                "author": {"id": "loud", "followers": 50_000},
                "text": text,
            }
            run.stdin.write(orjson.dumps(line) + b"\n")
        run.stdin.flush()
        wait_for(lambda: redis_client.xlen(f"{redis_prefix}alerts") == 1, timeout=60, what="alert")
        assert run.poll() is None  # still reading its open pipe
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, err
    assert b'"stopped_by":"SIGTERM"' in out + err, (out, err)


def test_alerts_tail_without_redis_is_one_line_without_the_password() -> None:
    done = sr("alerts", "tail", "--redis-url", "redis://:pw@127.0.0.1:1/0", "--timeout", "2")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(b"sense-respond: Redis at redis://:***@127.0.0.1:1/0: ")
    assert b"Traceback" not in done.stderr and b":pw@" not in done.stderr


def test_notify_warns_about_a_password_on_its_command_line() -> None:
    done = sr("notify", "--redis-url", "redis://:pw@127.0.0.1:1/0")
    assert b"can read in `ps`" in done.stderr
    assert b":pw@" not in done.stderr
