"""Routing tables: order, first match, `continue`, the default team, and config errors."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from config.notify import RouteSettings
from config.settings import Settings
from operators.routing import Router, RoutingFacts


def facts(
    *texts: str, severity: str = "warning", platform: str = "twitter", followers: int = 100
) -> RoutingFacts:
    return RoutingFacts(tuple(texts), severity, platform, followers)


def router(*routes: dict[str, Any], default: str = "service") -> Router:
    return Router.from_settings([RouteSettings.model_validate(r) for r in routes], default)


BILLING = {"name": "billing", "team": "billing", "any_words": ["refund", "charged", "lost bag"]}
VIP = {"name": "vip", "team": "vip", "min_followers": 10_000, "continue": True}
CRITICAL = {"name": "exec", "team": "exec", "severity": ["critical"], "continue": True}
OUTAGE = {"name": "noc", "team": "noc", "regex": r"(?i)\b(outage|down) (again|for \d+ hours)"}
MASTODON = {"team": "fediverse", "platforms": ["mastodon"]}

CASES = {
    "no route matches: default team": (
        [BILLING],
        facts("the food was cold"),
        ("service", ("service",), None, ()),
    ),
    "no routes at all": ([], facts("refund"), ("service", ("service",), None, ())),
    "first match wins": (
        [BILLING, {"team": "other", "any_words": ["refund"]}],
        facts("I want a Refund now"),
        ("billing", ("billing",), "billing", ("words refund",)),
    ),
    "whole words only": ([BILLING], facts("refunded already"), ("service", ("service",), None, ())),
    "phrases and several words": (
        [BILLING],
        facts("they charged me", "and a LOST BAG too"),
        ("billing", ("billing",), "billing", ("words charged, lost bag",)),
    ),
    "continue adds teams until a stopping match": (
        [VIP, CRITICAL, BILLING, MASTODON],
        facts("refund!", severity="critical", followers=50_000),
        ("vip", ("vip", "exec", "billing"), "vip", ("followers 50000 >= 10000",)),
    ),
    "continue route that matches alone keeps its team, no default": (
        [VIP, BILLING],
        facts("nice", followers=50_000),
        ("vip", ("vip",), "vip", ("followers 50000 >= 10000",)),
    ),
    "continue route that does not match is skipped": (
        [VIP, BILLING],
        facts("refund", followers=5),
        ("billing", ("billing",), "billing", ("words refund",)),
    ),
    "regex over the evidence": (
        [BILLING, OUTAGE],
        facts("Internet DOWN again, third time"),
        (
            "noc",
            ("noc",),
            "noc",
            ("regex '(?i)\\\\b(outage|down) (again|for \\\\d+ hours)' matched 'DOWN again'",),
        ),
    ),
    "all conditions of a route must hold": (
        [{"team": "t", "any_words": ["refund"], "severity": ["critical"]}],
        facts("refund", severity="warning"),
        ("service", ("service",), None, ()),
    ),
    "platform, unnamed route": (
        [MASTODON],
        facts("hello", platform="Mastodon"),
        ("fediverse", ("fediverse",), "routes[0]", ("platform Mastodon",)),
    ),
    "a route without conditions catches everything": (
        [{"team": "catchall"}],
        facts("anything"),
        ("catchall", ("catchall",), "routes[0]", ()),
    ),
}


@pytest.mark.parametrize(("routes", "given", "expected"), CASES.values(), ids=CASES.keys())
def test_routing_table(routes: list[dict[str, Any]], given: RoutingFacts, expected: tuple) -> None:
    got = router(*routes).route(given)
    assert (got.team, got.teams, got.route, got.matched) == expected
    data = got.as_data()
    assert set(data) >= {"team", "route", "matched", "teams"}
    assert [r["team"] for r in data["routes"]] == [t for t in got.teams if got.route]


def test_default_team_is_configurable() -> None:
    got = router(BILLING, default="care").route(facts("hello"))
    assert (got.team, got.teams, got.route, got.matched) == ("care", ("care",), None, ())


def test_merge_keeps_the_primary_team_and_adds_later_teams() -> None:
    table = router(CRITICAL | {"continue": False}, BILLING)
    opened = table.route(facts("refund", severity="warning"))
    escalated = table.route(facts("refund", severity="critical"))
    merged = opened.merge(escalated)
    assert (merged.team, merged.teams) == ("billing", ("billing", "exec"))
    assert merged.merge(escalated) == merged


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"team": "t", "regex": "(unclosed"}, "not a valid regular expression"),
        ({"team": "t", "regex": "a{2,1}"}, "escape special characters"),
        ({"team": "has space"}, "team"),
        ({"team": "t", "any_words": [" "]}, "empty words"),
        ({"team": "t", "severity": ["urgent"]}, "severity"),
        ({"team": "t", "unknown": 1}, "unknown"),
    ],
)
def test_bad_routes_are_config_errors(route: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(routes=[route])


def test_routes_from_toml(tmp_path: Any) -> None:
    from config.settings import load_settings

    cfg = tmp_path / "sr.toml"
    cfg.write_text(
        '[[routes]]\nteam = "vip"\nmin_followers = 10000\ncontinue = true\n\n'
        '[[routes]]\nname = "money"\nteam = "billing"\nany_words = ["refund"]\n\n'
        '[notify]\ndefault_team = "care"\n'
    )
    s = load_settings(cfg, environ={})
    table = Router.from_settings(s.routes, s.notify.default_team)
    assert table.route(facts("refund", followers=20_000)).teams == ("vip", "billing")
    assert table.route(facts("hi")).team == "care"


def test_the_readme_routing_example_is_valid_and_routes_as_it_says(tmp_path: Any) -> None:
    from pathlib import Path

    from config.settings import load_settings

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme[readme.index("### Routing to teams") :]
    block = section[section.index("```toml") + len("```toml") : section.index("```\n", 10)]
    cfg = tmp_path / "routes.toml"
    cfg.write_text(block)
    s = load_settings(cfg, environ={})
    table = Router.from_settings(s.routes, s.notify.default_team)
    vip_refund = table.route(facts("charged twice!", followers=80_000))
    assert vip_refund.teams == ("social-media", "billing")
    outage = table.route(facts("internet down again", severity="critical"))
    assert outage.team == "noc"
    assert table.route(facts("internet down again")).team == "service"  # not critical
