"""The stateless steps of the dataflow, one input batch at a time: parse, then listen and score.

Their output is keyed for the two stateful stages (`flows/stateful_stages.py`): scored posts by
customer id, every event's compact graph record under `GRAPH_KEY`.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from typing import Any

from flows.worker_tags import worker_tag
from operators.enrich import NO_INFLUENCE, ControlRecord, GraphBatch, touch_of
from operators.events import TEXT_KINDS, DeadLetter, SocialEvent, check_event_time, parse_event
from operators.influence import Touch
from operators.listen import Listener
from operators.records import AccountPurge, Assessment, ScoredPost, Sentiment, Withdrawal
from operators.scoring import Scorer
from sense_respond.metrics import POSTS, count_read

GRAPH_KEY = "graph"
"""The key of the graph stage's input (customer ids always hold a `:`, so none is this)."""

Valid = SocialEvent | Withdrawal | AccountPurge


@dataclasses.dataclass(frozen=True, slots=True)
class ParsedBatch:
    """What the parse step makes of one input batch: one item, not one per event.

    A Bytewax step costs about 3 µs per item it passes on; the events of a batch travel as one
    item as far as the scoring step, and their compact graph records as one item into the graph
    stage (its order is the order of the input batch).
    """

    valid: list[Valid]
    dead: list[DeadLetter]


def parse_batch(items: list[Any], source: str = "") -> list[ParsedBatch]:
    """Raw lines become events or dead letters; records validated at the edge pass through.

    `source` names the input in dead letters (e.g. `jsonl:/data/feed.jsonl`).
    """
    now = datetime.now(UTC)
    read_ns = time.time_ns()  # measures event-to-alert latency only; never decides anything
    valid: list[Valid] = []
    dead: list[DeadLetter] = []
    for item in items:
        if isinstance(item, bytes | str):
            parsed = parse_event(item, now, source)
            if parsed is None:
                continue
        elif isinstance(item, SocialEvent):
            # Validated at the edge (a live feed); its clock is still checked here.
            parsed = check_event_time(item, now, source=source)
        elif isinstance(item, DeadLetter):  # a live feed's frame that was not an event
            dead.append(item)
            continue
        else:  # withdrawals and purges, validated at the edge
            valid.append(item)
            continue
        if type(parsed) is SocialEvent:
            valid.append(parsed.stamp_read(read_ns))
        else:
            dead.append(parsed)  # type: ignore[arg-type]
    count_read(len(valid), dead, source)
    return [ParsedBatch(valid, dead)] if valid or dead else []


def score_batch(items: list[Valid], listener: Listener, scorer: Scorer) -> list[tuple[str, Any]]:
    """Listen, then score; each event splits in two.

    Only posts about the business are scored (VADER over those texts, batched) and go to their
    author's customer stage (key = customer id), where each waits for its influence; only the
    kinds that are the author's own words (`TEXT_KINDS`) are listened to. Every event
    goes to the graph stage as a compact `Touch`, relevant or not (reach is reach): all of the
    batch's graph records as one list, the last pair (key `GRAPH_KEY`). A post about the
    business that cannot be scored (not English) goes on with unknown sentiment. An edit that
    makes a post no longer about the business withdraws it.
    """
    relevant: list[tuple[int, SocialEvent, bool, tuple[str, ...]]] = []
    assessments: list[Assessment | None] = []
    withdrawn: dict[int, Withdrawal] = {}
    with_text = 0
    for it in items:
        # Only posts, replies and quotes are the author's own words: a repost or a like may carry
        # the text it shares (e.g. "RT @..."), which says nothing of what its author thinks.
        if isinstance(it, SocialEvent) and it.text is not None and it.kind in TEXT_KINDS:
            with_text += 1
            found = listener.relevance(it)
            if found.relevant:
                relevant.append((len(assessments), it, found.scorable, found.matched))
            elif it.edited_at is not None:
                withdrawn[len(assessments)] = Withdrawal(it.id, it.customer_id, it.created_at)
        assessments.append(None)
    _count_posts(with_text, len(relevant), sum(1 for r in relevant if r[2]))
    if relevant:
        text_to_score = listener.text_to_score
        texts = [
            text_to_score(ev.text or "", ev.platform) for _, ev, scorable, _ in relevant if scorable
        ]
        scores = iter(scorer.score_many(texts))
        for index, _, scorable, matched in relevant:
            assessments[index] = Assessment(next(scores) if scorable else None, matched)
    out: list[tuple[str, Any]] = []
    graph: list[Touch | ControlRecord] = []
    for index, (it, assessment) in enumerate(zip(items, assessments, strict=True)):
        if assessment is None and type(it) is SocialEvent:
            graph.append(touch_of(it, None, False))  # the common case: not about the business
        else:
            for key, value in split_event(it, assessment):
                if key == GRAPH_KEY:
                    graph.append(value)  # type: ignore[arg-type]
                else:
                    out.append((key, value))
        if index in withdrawn:
            graph.append(withdrawn[index])
    if graph:
        out.append((GRAPH_KEY, GraphBatch(worker_tag(), graph)))
    return out


def _count_posts(texts: int, relevant: int, scored: int) -> None:
    """The `sense_respond_posts` metric, once per batch."""
    for label, n in (
        ("scored", scored),
        ("unscored", relevant - scored),
        ("ignored", texts - relevant),
    ):
        if n:
            POSTS.labels(label).inc(n)


def split_event(
    item: Valid, assessment: Assessment | Sentiment | None
) -> list[tuple[str, Touch | ControlRecord | ScoredPost]]:
    """One event as what leaves the scoring step: (customer id, its post) when it is about the
    business, and (GRAPH_KEY, its compact Touch); control records go to the graph stage as they
    are (it forwards them in order). A bare `Sentiment` is a post scored without listening."""
    if not isinstance(item, SocialEvent):
        return [(GRAPH_KEY, item)]
    if isinstance(assessment, Sentiment):
        assessment = Assessment(assessment)
    if assessment is None or item.text is None or item.kind not in TEXT_KINDS:
        return [(GRAPH_KEY, touch_of(item, None, False))]
    touch = touch_of(item, assessment.sentiment, True)
    customer_id = item.customer_id
    post = ScoredPost(
        event_id=item.id,
        customer_id=customer_id,
        platform=item.platform,
        handle=item.author.handle,
        created_at=item.created_at,
        text=item.text,
        sentiment=assessment.sentiment,
        influence=NO_INFLUENCE,
        matched=assessment.matched,
        url=item.url,
        read_ns=item.read_ns,
    )
    return [(customer_id, post), (GRAPH_KEY, touch)]
