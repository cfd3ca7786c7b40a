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
  it leaves the dead letters, unsent;
* when the incident is resolved, nobody is paged for it now: its firing and acknowledged
  letters leave unsent, and its newest resolved letter is sent (it closes whatever the
  destination still has open; a receiver that never opened it ignores it);
* every other letter is sent, in order; the first that fails holds the rest of its incident.

Letters of a destination that is not configured, and rows that hold no lifecycle event (the
`*` rows of unreadable stream entries), are left where they are.

The caller gathers the facts (the letters, each involved incident's events still in the
alerts stream, its record's status, the markers); nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from connectors.notify.events import LifecycleEvent

Verdict = Literal["send", "delivered", "superseded", "resolved", "unconfigured", "unreadable"]

LEAVES: frozenset[str] = frozenset({"delivered", "superseded", "resolved"})
"""Verdicts whose letter leaves the dead letters unsent."""


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
    def status(self) -> str | None:
        """The incident's status now: its newest event's, else its record's."""
        return self.events[-1].status if self.events else self.record_status


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
    received: Callable[[str, str], bool],
    takes: Callable[[str, LifecycleEvent], bool],
) -> list[Group]:
    """The groups of steps for these letters (in the order of each group's first letter).

    `configured`: the destinations' names; `incidents`: by incident id; `received(destination,
    event_id)`: whether that destination's marker for the event says "sent"; `takes(destination,
    event)`: whether the destination receives that event at all (teams, severity, silences).
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
        out.append(_plan_group(destination, group, known, received, takes))
    return out


def _plan_group(
    destination: str,
    letters: list[Letter],
    incident: Incident,
    received: Callable[[str, str], bool],
    takes: Callable[[str, LifecycleEvent], bool],
) -> Group:
    position = {ev.event_id: i for i, ev in enumerate(incident.events)}
    newest_received = -1
    newest_name = ""
    for i, ev in enumerate(incident.events):
        if takes(destination, ev) and received(destination, ev.event_id):
            newest_received, newest_name = i, ev.status
    steps: list[Step] = []
    open_letters: list[Letter] = []
    for letter in letters:
        if received(destination, letter.event_id):
            steps.append(Step(letter, "delivered", "received since"))
            continue
        # A letter no longer in the stream is older than everything still there.
        at = position.get(letter.event_id, -1)
        if newest_received >= 0 and at < newest_received:
            why = f"the destination has received a later event of the incident ({newest_name})"
            steps.append(Step(letter, "superseded", why))
            continue
        open_letters.append(letter)
    if incident.status == "resolved":
        closing = next(
            (x for x in reversed(open_letters) if x.event and x.event.status == "resolved"), None
        )
        for letter in open_letters:
            if letter is closing:
                steps.append(Step(letter, "send", "closes the incident at the destination"))
            else:
                steps.append(Step(letter, "resolved", "the incident is resolved: nobody is paged"))
    else:
        steps += [Step(letter, "send", "never received") for letter in open_letters]
    order = {letter.dlq_id: i for i, letter in enumerate(letters)}
    steps.sort(key=lambda step: order[step.letter.dlq_id])
    return steps
