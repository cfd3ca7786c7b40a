"""Which team an incident goes to: `[[routes]]` checked in order, then `[notify] default_team`.

A route matches when every condition it names holds (a route naming none matches everything):

* `any_words`: one of the words or phrases occurs in the evidence, case-insensitively, as a
  whole word (`refund` matches "Refund please" but not "refunded"; `#acmeair` and `lost bag`
  work as written);
* `regex`: a Python regular expression found in one of the evidence texts (`(?i)` for
  case-insensitive);
* `severity`, `platforms`: the alert's severity / platform is one of these;
* `min_followers`: the customer has at least this many followers.

Routes are checked in order. The first matching route names the **primary team** and ends the
walk, unless it has `continue = true`: then the walk goes on and every further matching route
adds its team, until a matching route without `continue`. So an incident can go to several
teams; `data.routing.team` is the primary one (PagerDuty's `group`, the team that owns it) and
`data.routing.teams` all of them, each of which also gets the event on
`{prefix}alerts:team:{team}`. Only when no route matches does `default_team` take it.

Pure: compiled once from the settings (`Router.from_settings`), then applied to values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from config.notify import RouteSettings


@dataclass(frozen=True, slots=True)
class RoutingFacts:
    """What routing looks at: the evidence texts and a few facts about the alert."""

    texts: tuple[str, ...]
    severity: str
    platform: str
    followers: int


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """One route that matched, and why (its conditions as they held)."""

    route: str
    team: str
    matched: tuple[str, ...]

    def as_data(self) -> dict[str, Any]:
        return {"route": self.route, "team": self.team, "matched": list(self.matched)}


@dataclass(frozen=True, slots=True)
class Routing:
    """Where an incident goes: the primary team, every team, and why.

    `route` is None (and `matched` empty) when the default team took it.
    """

    team: str
    teams: tuple[str, ...]
    route: str | None
    matched: tuple[str, ...]
    routes: tuple[RouteMatch, ...] = ()

    def as_data(self) -> dict[str, Any]:
        """`data.routing` of a lifecycle event."""
        return {
            "team": self.team,
            "teams": list(self.teams),
            "route": self.route,
            "matched": list(self.matched),
            "routes": [r.as_data() for r in self.routes],
        }

    def merge(self, later: Routing) -> Routing:
        """An incident's routing after another firing: the primary team stays the one that
        opened it; teams the later firing reached (e.g. a route on `severity = critical` after
        an escalation) are added, so every team that saw a firing also sees the resolution."""
        teams = self.teams + tuple(t for t in later.teams if t not in self.teams)
        seen = {r.route for r in self.routes}
        routes = self.routes + tuple(r for r in later.routes if r.route not in seen)
        if teams == self.teams and routes == self.routes:
            return self
        return Routing(self.team, teams, self.route, self.matched, routes)


def _words_pattern(words: Iterable[str]) -> re.Pattern[str] | None:
    folded = sorted({w.casefold().strip() for w in words if w.strip()}, key=len, reverse=True)
    if not folded:
        return None
    # Longest first, so "lost bag" wins over "lost"; lookarounds instead of \b so that words
    # starting or ending with a symbol (#acmeair, c++) still match as whole words.
    alternation = "|".join(re.escape(w) for w in folded)
    return re.compile(rf"(?<!\w)(?:{alternation})(?!\w)")


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    """A `[[routes]]` entry ready to match."""

    name: str
    team: str
    words: re.Pattern[str] | None
    regex: re.Pattern[str] | None
    severities: frozenset[str]
    platforms: frozenset[str]
    min_followers: int | None
    continue_: bool

    @classmethod
    def compile(cls, index: int, settings: RouteSettings) -> CompiledRoute:
        """Compile one route (its regex was validated with the settings)."""
        return cls(
            name=settings.name or f"routes[{index}]",
            team=settings.team,
            words=_words_pattern(settings.any_words),
            regex=re.compile(settings.regex) if settings.regex else None,
            severities=frozenset(settings.severity),
            platforms=frozenset(p.casefold() for p in settings.platforms),
            min_followers=settings.min_followers,
            continue_=settings.continue_,
        )

    def match(self, facts: RoutingFacts, folded: tuple[str, ...]) -> RouteMatch | None:
        """The match with its reasons, or None. `folded` are the texts casefolded."""
        why: list[str] = []
        if self.severities:
            if facts.severity not in self.severities:
                return None
            why.append(f"severity {facts.severity}")
        if self.platforms:
            if facts.platform.casefold() not in self.platforms:
                return None
            why.append(f"platform {facts.platform}")
        if self.min_followers is not None:
            if facts.followers < self.min_followers:
                return None
            why.append(f"followers {facts.followers} >= {self.min_followers}")
        if self.words is not None:
            found: list[str] = []
            for text in folded:
                for m in self.words.finditer(text):
                    if m.group(0) not in found:
                        found.append(m.group(0))
            if not found:
                return None
            why.append("words " + ", ".join(found))
        if self.regex is not None:
            hit = next((m for t in facts.texts if (m := self.regex.search(t))), None)
            if hit is None:
                return None
            why.append(f"regex {self.regex.pattern!r} matched {hit.group(0)[:80]!r}")
        return RouteMatch(self.name, self.team, tuple(why))


@dataclass(frozen=True, slots=True)
class Router:
    """The routing table of a run."""

    routes: tuple[CompiledRoute, ...]
    default_team: str

    @classmethod
    def from_settings(cls, routes: Sequence[RouteSettings], default_team: str) -> Router:
        """Compile `[[routes]]` in order."""
        return cls(tuple(CompiledRoute.compile(i, r) for i, r in enumerate(routes)), default_team)

    def route(self, facts: RoutingFacts) -> Routing:
        """Walk the routes in order (see the module docstring)."""
        folded = tuple(t.casefold() for t in facts.texts)
        hits: list[RouteMatch] = []
        for route in self.routes:
            hit = route.match(facts, folded)
            if hit is None:
                continue
            hits.append(hit)
            if not route.continue_:
                break
        if not hits:
            return Routing(self.default_team, (self.default_team,), None, ())
        teams: list[str] = []
        for hit in hits:
            if hit.team not in teams:
                teams.append(hit.team)
        first = hits[0]
        return Routing(first.team, tuple(teams), first.route, first.matched, tuple(hits))


DEFAULT_ROUTER = Router((), "service")
"""No routes: everything to the `service` team (the `[notify] default_team` default)."""
