"""Terminal-safe text: escape sequences, control characters and bidi controls are stripped."""

from __future__ import annotations

import orjson
import pytest

from sense_respond.terminal import safe_text, terminal_json


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text, émojis 😤 and 漢字", "plain text, émojis 😤 and 漢字"),
        ("\x1b[31mred\x1b[0m", "red"),  # SGR colours
        ("\x1b[2J\x1b[Hcleared", "cleared"),  # clear screen, cursor home
        ("a\x1b[1Ab", "ab"),  # cursor up: would overwrite the line above
        ("\x1b[38;5;196mfg\x1b[m", "fg"),
        ("\x1b[?1049h alt screen", " alt screen"),
        ("\x9b31mC1 CSI", "C1 CSI"),
        ("\x1b]0;pwned title\x07after", "after"),  # OSC window title, BEL-terminated
        ("\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\", "click"),  # OSC 8 hyperlink
        ("\x9d0;title\x9cafter", "after"),  # C1 OSC ... ST
        ("\x1bP+q544e\x1b\\x", "x"),  # DCS (terminal queries that answer into the input)
        ("\x1b]52;c;ZXZpbA==", ""),  # unterminated OSC 52 (clipboard write): dropped to the end
        ("\x1bcreset", "reset"),  # RIS
        ("\x1b(Bcharset", "charset"),
        ("lone \x1b", "lone "),
        ("bell\x07 back\x08space nul\x00 del\x7f", "bell backspace nul del"),
        ("\x85next line \x9f c1", "next line "),  # C1 APC: a string up to ST, or the end
        ("tab\there\rcarriage", "tab here carriage"),
        ("line\nbreak", "line break"),
        ("ls\u2028ps\u2029", "ls ps "),
        ("\u202eevil\u202c \u2066iso\u2069 \u200fmark\u200e \u061calm", "evil iso mark alm"),
        ("zero\u200bwidth is fine", "zero\u200bwidth is fine"),
        (None, "None"),
        (42, "42"),
    ],
)
def test_safe_text(raw: object, shown: str) -> None:
    assert safe_text(raw) == shown


def test_safe_text_can_keep_newlines() -> None:
    assert safe_text("one\ntwo\x1b[31m\r\n", keep_newlines=True) == "one\ntwo \n"


@pytest.mark.parametrize(
    "value",
    [
        {"text": "\x1b[31mred\x85 \u202eevil \u2028 \x7f \x9b31m", "n": 1},
        ["plain", "émojis 😤"],
    ],
)
def test_terminal_json_is_lossless_and_safe(value: object) -> None:
    line = terminal_json(value)
    assert orjson.loads(line) == value
    assert safe_text(line) == line  # nothing a terminal would act on
    assert "\n" not in line


def test_alerts_print_no_escape_sequences() -> None:
    from sense_respond.alert_printing import format_alert

    evil = "\x1b]0;owned\x07\x1b[2J\u202e"
    alert = {
        "id": f"id{evil}",
        "data": {
            "customer_id": f"mastodon:1{evil}",
            "handle": f"h{evil}",
            "severity": f"critical{evil}",
            "event_time": f"2026{evil}",
            "sentiment": {"mean": -0.8, "posts": 2},
            "influence": {"followers": 10, "percentile": 0.99, "inbound_accounts": 3},
            "evidence": [{"compound": -0.8, "text": f"angry\x9b2J {evil}\x85 words"}],
        },
    }
    text = format_alert(alert)
    assert safe_text(text, keep_newlines=True) == text
    assert "@h " in text and "angry" in text and "words" in text


def test_score_prints_terminal_safe_json(capsys: pytest.CaptureFixture[str]) -> None:
    from sense_respond.cli import main

    hostile = "great \x1b[31mservice\x85 \u202eevil"
    assert main(["score", hostile]) == 0
    out = capsys.readouterr().out
    assert safe_text(out.strip()) == out.strip()
    assert orjson.loads(out)["text"] == hostile
