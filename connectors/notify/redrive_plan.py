"""What `sense-respond notify redrive` does with each of the notifier's dead letters: pure.

A dead letter is an event one destination never received: the receiver rejected it, or stayed
down past the retry budget. Once the cause is fixed, sending it again must not make things
worse for the people on call, so each (destination, incident) is planned as a whole, its
letters in the order they were dead-lettered (a destination's worker finishes an incident's
events in stream order, so that is stream order):

* a letter whose event the destination has received since (its marker says "sent") is done:
  it leaves the dead letters;
* a letter older than an event of its incident the destination did receive is superseded:
  sending it now would deliver it after a later one (a trigger after its acknowledgement), so
  it leaves the dead letters, unsent. A "sent" marker is proof enough, whatever the
  destination's filters say now (an operator may have narrowed them since);
* a letter whose event the destination no longer takes (its teams or severity were narrowed
  since) stays where it is, unsent (filtered);
* when the incident is resolved, nobody is paged for it now: its firing and acknowledged
  letters leave unsent. Its newest resolved letter is sent: it closes the page if the
  destination has one open. Whether it has cannot be known for sure (a timeout or a 5xx may
  have opened it, a notifier restart forgets what it tried), and a page left open is worse
  than a lone "resolved" for an incident a channel never heard of (PagerDuty ignores a resolve
  for an alert it does not have);
* a letter is stale when the facts it would be judged on are gone: its own "dead" marker
  expired (markers of that age, "sent" ones included, are gone too, so nothing can show it is
  superseded), or nothing is known of its incident (no event in the stream, no record). Stale
  letters stay where they are unless the operator asks for them (`include_stale`), and so do
  the later letters of their incident (they must not overtake it);
* every other letter is sent, in order.

A copy of an event appended to the stream again later (a replay) counts as the event, not as a
newer one.

Letters of a destination that is not configured, and rows that hold no lifecycle event (the
`*` rows of unreadable stream entries), are left where they are.

The caller gathers the facts (the letters, each involved incident's events still in the
alerts stream, its record's status, the markers) and plans again before every request with
fresh ones; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from connectors.notify.events import LifecycleEvent

Verdict = Literal[
    "send",
    "delivered",
    "superseded",
    "resolved",
    "stale",
    "filtered",
    "unconfigured",
    "unreadable",
]

LEAVES: frozenset[str] = frozenset({"delivered", "superseded", "resolved"})
"""Verdicts whose letter leaves the dead letters unsent."""

STAYS: frozenset[str] = frozenset({"stale", "filtered", "unconfigured", "unreadable"})
"""Verdicts whose letter stays where it is, unsent."""

Marker = Callable[[str, str], bytes | None]
"""marker(destination, event_id): that destination's delivered marker for the event ("sent",
"dead", or None once expired or never written)."""

Takes = Callable[[str, LifecycleEvent], bool]
"""takes(destination, event): whether the destination receives the event under its filters now
(teams, severity)."""


@dataclass(frozen=True, slots=True)
class Letter:
    """One row of `{prefix}notify:dlq`."""

    dlq_id: str
    destination: str
    event_id: str
    status: str
    """What the notifier got: an HTTP status, `network`, `error` or `invalid`."""
    reason: str
    event: LifecycleEvent | None
    """None: the row holds no readable lifecycle event."""


@dataclass(frozen=True, slots=True)
class Incident:
    """What is known of one incident: its events still in the alerts stream, in stream order,
    and its record's status (None: the record expired)."""

    events: Sequence[LifecycleEvent]
    record_status: str | None = None

    @property
    def distinct(self) -> list[LifecycleEvent]:
        """Its events in stream order, each once: a copy of an event appended again later (a
        replay) is not a newer event."""
        seen: set[str] = set()
        out = []
        for ev in self.events:
            if ev.event_id not in seen:
                seen.add(ev.event_id)
                out.append(ev)
        return out

    @property
    def status(self) -> str | None:
        """The incident's status now: its newest event's, else its record's."""
        distinct = self.distinct
        return distinct[-1].status if distinct else self.record_status


@dataclass(frozen=True, slots=True)
class Step:
    """What to do with one letter, and why (shown to the operator)."""

    letter: Letter
    verdict: Verdict
    why: str


Group = list[Step]
"""The steps of one (destination, incident), in order: its sends go one after another."""


def plan(
    letters: Iterable[Letter],
    configured: Iterable[str],
    incidents: Mapping[str, Incident],
    marker: Marker,
    takes: Takes,
    include_stale: bool = False,
) -> list[Group]:
    """The groups of steps for these letters (in the order of each group's first letter).

    `configured`: the destinations' names; `incidents`: by incident id; `include_stale`: plan
    stale letters like the others (the operator asked for them).
    """
    names = set(configured)
    groups: dict[tuple[str, str], list[Letter]] = {}
    loose: list[Group] = []
    for letter in letters:
        if letter.event is None or letter.destination == "*":
            loose.append([Step(letter, "unreadable", "holds no lifecycle event")])
        elif letter.destination not in names:
            why = f"destination {letter.destination!r} is not configured"
            loose.append([Step(letter, "unconfigured", why)])
        else:
            key = (letter.destination, letter.event.incident_id)
            groups.setdefault(key, []).append(letter)
    out = loose
    for (destination, incident_id), group in groups.items():
        known = incidents.get(incident_id, Incident(()))
        out.append(plan_group(destination, group, known, marker, takes, include_stale))
    return out


def plan_group(
    destination: str,
    letters: Sequence[Letter],
    incident: Incident,
    marker: Marker,
    takes: Takes,
    include_stale: bool = False,
) -> Group:
    """The steps of one destination's letters of one incident (in their order)."""
    events = incident.distinct
    position = {ev.event_id: i for i, ev in enumerate(events)}
    newest_received = -1
    newest_name = ""
    for i, ev in enumerate(events):
        if marker(destination, ev.event_id) == b"sent":
            newest_received, newest_name = i, ev.status
    unknown = not events and incident.record_status is None
    steps: list[Step] = []
    open_letters: list[Letter] = []
    behind_stale = False
    for letter in letters:
        assert letter.event is not None
        mark = marker(destination, letter.event_id)
        if mark == b"sent":
            steps.append(Step(letter, "delivered", "received since"))
            continue
        # A letter no longer in the stream is older than everything still there.
        at = position.get(letter.event_id, -1)
        if newest_received >= 0 and at < newest_received:
            why = f"the destination has received a later event of the incident ({newest_name})"
            steps.append(Step(letter, "superseded", why))
            continue
        if not takes(destination, letter.event):
            why = "the destination no longer takes it (its teams or severity changed)"
            steps.append(Step(letter, "filtered", why))
            continue
        if not include_stale and (behind_stale or mark is None or unknown):
            if behind_stale:
                why = "waits behind a stale letter of its incident"
            elif unknown:
                why = "nothing is known of its incident any more"
            else:
                why = "its marker expired: a later delivery may no longer show"
            behind_stale = True  # the later letters of the incident must not overtake it
            steps.append(Step(letter, "stale", why + " (--include-stale sends it)"))
            continue
        open_letters.append(letter)
    if incident.status == "resolved":
        closing = next(
            (x for x in reversed(open_letters) if x.event and x.event.status == "resolved"), None
        )
        for letter in open_letters:
            if letter is closing:
                steps.append(Step(letter, "send", "closes the incident if it is open there"))
            else:
                steps.append(Step(letter, "resolved", "the incident is resolved: nobody is paged"))
    else:
        steps += [Step(letter, "send", "never received") for letter in open_letters]
    order = {letter.dlq_id: i for i, letter in enumerate(letters)}
    steps.sort(key=lambda step: order[step.letter.dlq_id])
    return steps
