"""How the synthetic feed arrives: event-time order, a few events late, a few twice.

~1.5 % of events arrive up to 60 s after newer ones. The events delivered twice (same id) are
the dedupe traps the planted customers call for, one negative post of two planted alerts, and a
few plain background events.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sense_respond.scenario_draft import FeedDraft
from sense_respond.scenario_model import ALERT_CATEGORIES, CAT_BRAND, Scenario
from sense_respond.scenario_planted import PlantedTruth


def deliver(draft: FeedDraft, truth: PlantedTruth) -> Scenario:
    """The finished scenario: the draft's events in delivery order, and the ground truth."""
    events, dup_ids, out_of_order = _delivery_order(draft, truth)
    planted = dict(truth.categories)
    handles = {cid: a.handle for cid, a in truth.accounts.items()}
    followers = {cid: a.followers for cid, a in truth.accounts.items()}
    basis = dict(truth.basis)
    for brand in draft.brands.values():
        planted[brand.cid] = CAT_BRAND
        handles[brand.cid] = brand.handle
        followers[brand.cid] = brand.followers
        basis[brand.cid] = "followers"
    kept = {e["id"] for e in events}
    return Scenario(
        events=events,
        expected_alerts={cid for cid, cat in planted.items() if cat in ALERT_CATEGORIES},
        planted=planted,
        brand_accounts=list(draft.brands),
        negatives={cid: ids for cid, ids in truth.negatives.items()},
        influence_basis=basis,
        handles=handles,
        followers=followers,
        text_classes={i: c for i, c in draft.text_classes.items() if i in kept},
        duplicate_ids=dup_ids,
        out_of_order=out_of_order,
        background_accounts=draft.background_count,
        seed=draft.seed,
        start=draft.start,
        hours=draft.hours,
    )


def _delivery_order(
    draft: FeedDraft, truth: PlantedTruth
) -> tuple[list[dict[str, Any]], list[str], int]:
    """The events as delivered, the ids delivered twice, and how many arrived out of order."""
    rng = draft.rng
    entries = [(ts, seq, e) for ts, seq, e in draft.entries if ts < draft.end]
    entries.sort(key=lambda x: (x[0], x[1]))
    by_id = {e["id"]: (ts, e) for ts, _, e in entries}
    dup_ids = [i for i in truth.delivered_twice if i in by_id]
    alert_negs = [ids[1] for cid, ids in sorted(truth.negatives.items())
                  if truth.categories[cid] in ALERT_CATEGORIES]  # fmt: skip
    dup_ids += rng.sample(alert_negs, 2)
    special = {a.cid for a in truth.accounts.values()}
    special |= {b.cid for b in draft.brands.values()}
    plain = [
        e["id"] for _, _, e in entries if f"{e['platform']}:{e['author']['id']}" not in special
    ]
    dup_ids += rng.sample(plain, 5)
    keyed: list[tuple[datetime, int, dict[str, Any]]] = []
    for ts, seq, e in entries:
        late = timedelta(seconds=rng.uniform(1, 60)) if rng.random() < 0.015 else timedelta()
        keyed.append((ts + late, seq, e))
    for n, event_id in enumerate(dup_ids):
        ts, e = by_id[event_id]
        keyed.append((ts + timedelta(seconds=rng.uniform(1, 60)), len(entries) + n, e))
    keyed.sort(key=lambda x: (x[0], x[1]))
    events = [e for _, _, e in keyed]
    out_of_order, newest = 0, ""
    for e in events:
        if e["created_at"] < newest:
            out_of_order += 1
        newest = max(newest, e["created_at"])
    return events, dup_ids, out_of_order
