"""The flow's two stateful stages driven without Bytewax (graph stage, then one state per
customer), with the scored posts arriving a chosen number of records behind the graph stage's
output, or ahead of it: the pairing must not care."""

from __future__ import annotations

import pickle
from collections import deque
from datetime import UTC, datetime
from typing import Any

from config.settings import Settings
from flows.stateless_steps import GRAPH_KEY, split_event
from operators.customer import CustomerPolicy, CustomerState
from operators.enrich import Enricher, EnrichPolicy
from operators.records import AlertRecord, Sentiment

DETECTED = datetime(2030, 1, 1, tzinfo=UTC)


class Stages:
    """Graph stage + customer states; `posts_behind` delays scored posts by that many records
    (negative: the graph stage's records are the ones delayed). With `look_always`, every
    customer is looked at after every delivery, as `CustomerLogic.on_notify` does when the
    wall clock says so: caught up to the newest watermark delivered to any customer."""

    def __init__(
        self, settings: Settings, posts_behind: int = 0, look_always: bool = False
    ) -> None:
        self.settings = settings
        self.enrich_policy = EnrichPolicy.from_settings(settings)
        self.policy = CustomerPolicy(settings.window, settings.rules, settings.alert_source)
        self.enricher = Enricher()
        self.customers: dict[str, CustomerState] = {}
        self.posts_behind = posts_behind
        self.look_always = look_always
        self.seen = float("-inf")
        self._delayed: deque[tuple[str, Any]] = deque()

    def _deliver(self, customer_id: str, value: Any, out: list[Any]) -> None:
        state = self.customers.get(customer_id)
        if state is None:
            state = self.customers[customer_id] = CustomerState()
        if isinstance(value, tuple):
            self.seen = max(self.seen, value[0])
            results = state.receive(customer_id, value, self.policy, DETECTED)
        else:
            results = state.receive_post(customer_id, value, self.policy, DETECTED)
        if self.look_always:
            for state in self.customers.values():
                results += state.catch_up(self.seen, self.policy, DETECTED)
        out.extend(r.alert_id for r in results if isinstance(r, AlertRecord))

    def _route(self, customer_id: str, value: Any, delayed: bool, out: list[Any]) -> None:
        if not delayed:
            self._deliver(customer_id, value, out)
            return
        self._delayed.append((customer_id, value))
        while len(self._delayed) > abs(self.posts_behind):
            self._deliver(*self._delayed.popleft(), out)

    def feed(self, pairs: list[tuple[Any, Sentiment | None]]) -> list[Any]:
        """Process scored events; returns the graph stage's records and the alert ids, in order."""
        out: list[Any] = []
        for item, sentiment in pairs:
            for key, value in split_event(item, sentiment):
                if key != GRAPH_KEY:
                    self._route(key, value, self.posts_behind > 0, out)
                    continue
                for customer_id, stamped in self.enricher.process(value, self.enrich_policy):
                    out.append((customer_id, stamped))
                    self._route(customer_id, stamped, self.posts_behind < 0, out)
        return out

    def flush(self) -> list[Any]:
        out: list[Any] = []
        while self._delayed:
            self._deliver(*self._delayed.popleft(), out)
        return out

    def restored(self, settings: Settings) -> Stages:
        """A copy through pickle, as Bytewax stores and loads snapshots, under `settings`."""
        copy = Stages(settings, self.posts_behind)
        copy.enricher = pickle.loads(pickle.dumps(self.enricher))
        copy.customers = {k: pickle.loads(pickle.dumps(v)) for k, v in self.customers.items()}
        copy._delayed = pickle.loads(pickle.dumps(self._delayed))
        return copy
