"""The redrive plan (`connectors.notify.redrive_plan`): a table of dead letters, incidents and
markers, and what happens to each letter."""

from __future__ import annotations

import orjson
import pytest

from connectors.notify.events import LifecycleEvent, parse_entry
from connectors.notify.redrive_plan import Incident, Letter, Marker, plan
from tests.notify_fixtures import lifecycle_event


def event(status: str, incident: str = "inc-a", seq: int = 0) -> LifecycleEvent:
    raw = orjson.dumps(lifecycle_event(status, incident, seq=seq))
    return parse_entry({b"alert": raw}, "service")


FIRING, ACK, RESOLVED = event("firing"), event("acknowledged"), event("resolved")
REFIRING = event("firing", seq=1)
RESOLVED_AGAIN = event("resolved", seq=1)
OTHER = event("firing", "inc-b")


def letter(ev: LifecycleEvent | None, n: int, destination: str = "hook") -> Letter:
    event_id = ev.event_id if ev is not None else f"broken-{n}"
    return Letter(f"{n}-0", destination, event_id, "400", "rejected", ev)


def takes_all(destination: str, ev: LifecycleEvent) -> bool:
    return True


def markers(rows: list[Letter], got: list[LifecycleEvent], expired: bool = False) -> Marker:
    """The markers the notifier left: "dead" for each letter (None once `expired`), "sent" for
    each event the destination received."""
    marks = {(row.destination, row.event_id): None if expired else b"dead" for row in rows}
    marks |= {("hook", ev.event_id): b"sent" for ev in got}
    return lambda destination, event_id: marks.get((destination, event_id))


CASES = [
    pytest.param(
        # letters (event, destination), incident events in the stream, record status,
        # events the destination received (marker "sent"), expected verdicts in letter order
        [(FIRING, "hook"), (ACK, "hook")],
        [FIRING, ACK],
        None,
        [],
        ["send", "send"],
        id="an open incident the destination never heard of: every letter, in order",
    ),
    pytest.param(
        [(FIRING, "hook")],
        [FIRING, ACK],
        None,
        [ACK],
        ["superseded"],
        id="its acknowledgement got there: the firing would arrive after it",
    ),
    pytest.param(
        [(ACK, "hook")],
        [FIRING, ACK],
        None,
        [FIRING],
        ["send"],
        id="only the acknowledgement is missing: it is sent",
    ),
    pytest.param(
        [(FIRING, "hook"), (RESOLVED, "hook")],
        [FIRING, RESOLVED],
        None,
        [],
        ["resolved", "send"],
        id="resolved, and nothing of it got there: the resolve still goes (a page may be open)",
    ),
    pytest.param(
        [(ACK, "hook"), (RESOLVED, "hook")],
        [FIRING, ACK, RESOLVED],
        None,
        [FIRING],
        ["resolved", "send"],
        id="resolved: nobody is paged for the acknowledgement, the open page is closed",
    ),
    pytest.param(
        [(RESOLVED, "hook")],
        [RESOLVED],
        None,
        [],
        ["send"],
        id="resolved, its firing trimmed from the stream: the page may be open, it is closed",
    ),
    pytest.param(
        [(FIRING, "hook")],
        [FIRING, ACK, FIRING],
        None,
        [ACK],
        ["superseded"],
        id="a replayed copy of the firing in the stream is not a newer event",
    ),
    pytest.param(
        [(ACK, "hook")],
        [FIRING, ACK, FIRING],
        None,
        [FIRING],
        ["send"],
        id="nor does a received event's replayed copy supersede a later letter",
    ),
    pytest.param(
        [(FIRING, "hook"), (ACK, "hook"), (RESOLVED, "hook")],
        [FIRING, ACK, RESOLVED, FIRING],
        None,
        [],
        ["resolved", "resolved", "send"],
        id="a replayed firing after the resolve does not reopen the incident",
    ),
    pytest.param(
        [(RESOLVED, "hook")],
        [FIRING, RESOLVED],
        None,
        [FIRING],
        ["send"],
        id="the page is open at the destination and only its resolve was lost",
    ),
    pytest.param(
        [(FIRING, "hook"), (ACK, "hook")],
        [FIRING, ACK, RESOLVED],
        None,
        [RESOLVED],
        ["superseded", "superseded"],
        id="the resolve got there: nothing older goes",
    ),
    pytest.param(
        [(FIRING, "hook")],
        [FIRING, ACK],
        None,
        [FIRING],
        ["delivered"],
        id="the letter's own event was received since: done",
    ),
    pytest.param(
        [(RESOLVED, "hook"), (REFIRING, "hook")],
        [FIRING, RESOLVED, REFIRING],
        None,
        [FIRING],
        ["send", "send"],
        id="reopened: the lost resolve, then the new firing, in order",
    ),
    pytest.param(
        [(RESOLVED, "hook"), (RESOLVED_AGAIN, "hook")],
        [FIRING, RESOLVED, REFIRING, RESOLVED_AGAIN],
        None,
        [FIRING],
        ["resolved", "send"],
        id="resolved twice: only the newest resolve closes it",
    ),
    pytest.param(
        [(FIRING, "hook")],
        [],
        "resolved",
        [],
        ["resolved"],
        id="trimmed from the stream: the record says resolved",
    ),
    pytest.param(
        [(FIRING, "hook")],
        [],
        "firing",
        [],
        ["send"],
        id="trimmed from the stream: the record says still open",
    ),
    pytest.param(
        [(FIRING, "hook")],
        [ACK],
        None,
        [ACK],
        ["superseded"],
        id="a letter trimmed from the stream is older than what is still there",
    ),
    pytest.param(
        [(FIRING, "gone")],
        [FIRING],
        None,
        [],
        ["unconfigured"],
        id="its destination is no longer configured: left",
    ),
    pytest.param(
        [(None, "*")],
        [],
        None,
        [],
        ["unreadable"],
        id="an unreadable stream entry: left",
    ),
]


@pytest.mark.parametrize(("letters", "stream", "record", "got", "expected"), CASES)
def test_what_happens_to_each_letter(
    letters: list[tuple[LifecycleEvent | None, str]],
    stream: list[LifecycleEvent],
    record: str | None,
    got: list[LifecycleEvent],
    expected: list[str],
) -> None:
    rows = [letter(ev, n, dest) for n, (ev, dest) in enumerate(letters)]
    groups = plan(
        rows, ["hook"], {"inc-a": Incident(stream, record)}, markers(rows, got), takes_all
    )
    verdicts = {step.letter.dlq_id: step.verdict for group in groups for step in group}
    assert [verdicts[row.dlq_id] for row in rows] == expected


def test_a_received_event_supersedes_whatever_the_filters_say_now() -> None:
    # The destination got the acknowledgement; since then its filters were narrowed so that it
    # takes nothing of this incident. The marker is the proof: the firing would still land
    # after the acknowledgement, so it is superseded (not merely filtered, which would keep it).
    rows = [letter(FIRING, 0)]
    groups = plan(rows, ["hook"], {"inc-a": Incident([FIRING, ACK])}, markers(rows, [ACK]),
                  lambda destination, ev: False)  # fmt: skip
    assert [s.verdict for g in groups for s in g] == ["superseded"]


def test_a_letter_the_destination_no_longer_takes_stays_unsent() -> None:
    rows = [letter(FIRING, 0), letter(ACK, 1)]
    groups = plan(rows, ["hook"], {"inc-a": Incident([FIRING, ACK])}, markers(rows, []),
                  lambda destination, ev: ev.status != "firing")  # fmt: skip
    assert [s.verdict for g in groups for s in g] == ["filtered", "send"]


@pytest.mark.parametrize(
    ("incident", "expired", "expected"),
    [
        pytest.param(Incident([FIRING, ACK]), True, "stale", id="its own marker expired"),
        pytest.param(Incident([]), False, "stale", id="no event in the stream, no record"),
        pytest.param(Incident([], "firing"), False, "send", id="the record is still there"),
    ],
)
def test_letters_judged_on_facts_that_are_gone_are_stale_unless_asked_for(
    incident: Incident, expired: bool, expected: str
) -> None:
    rows = [letter(FIRING, 0)]
    marker = markers(rows, [], expired=expired)
    default = plan(rows, ["hook"], {"inc-a": incident}, marker, takes_all)
    asked = plan(rows, ["hook"], {"inc-a": incident}, marker, takes_all, include_stale=True)
    assert [s.verdict for g in default for s in g] == [expected]
    assert [s.verdict for g in asked for s in g] == ["send"]


def test_letters_are_grouped_per_destination_and_incident_in_order() -> None:
    rows = [
        letter(FIRING, 0, "hook"),
        letter(OTHER, 1, "hook"),
        letter(FIRING, 2, "pager"),
        letter(ACK, 3, "hook"),
    ]
    groups = plan(
        rows,
        ["hook", "pager"],
        {"inc-a": Incident([FIRING, ACK]), "inc-b": Incident([OTHER])},
        markers(rows, []),
        takes_all,
    )
    assert [[s.letter.dlq_id for s in g] for g in groups] == [["0-0", "3-0"], ["1-0"], ["2-0"]]


def test_an_expired_marker_of_an_earlier_event_never_drops_the_closing_resolve() -> None:
    # The firing was delivered 8 days ago (its "sent" marker expired), the resolve dead-lettered
    # 2 days ago: the page may well be open, so the resolve goes.
    rows = [letter(RESOLVED, 0)]
    marks = {("hook", RESOLVED.event_id): b"dead"}  # nothing for the firing any more
    groups = plan(rows, ["hook"], {"inc-a": Incident([FIRING, RESOLVED])},
                  lambda d, e: marks.get((d, e)), takes_all)  # fmt: skip
    assert [s.verdict for g in groups for s in g] == ["send"]


def test_a_stale_letter_holds_the_later_letters_of_its_incident() -> None:
    # The firing's marker expired; its acknowledgement, dead-lettered later, must not go alone.
    rows = [letter(FIRING, 0), letter(ACK, 1)]
    marks = {("hook", ACK.event_id): b"dead"}
    incident = {"inc-a": Incident([FIRING, ACK])}
    default = plan(rows, ["hook"], incident, lambda d, e: marks.get((d, e)), takes_all)
    asked = plan(rows, ["hook"], incident, lambda d, e: marks.get((d, e)), takes_all, True)
    assert [s.verdict for g in default for s in g] == ["stale", "stale"]
    assert [s.verdict for g in asked for s in g] == ["send", "send"]
