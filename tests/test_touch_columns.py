"""Graph records as marshalled columns: every list comes back as it went, in a journal segment
and across processes (a `GraphBatch` pickled as Bytewax pickles what it exchanges)."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from operators.enrich import GraphBatch
from operators.influence import Touch
from operators.records import AccountPurge, Withdrawal
from operators.touch_columns import COLUMN_ROWS, dumps_records, loads_records

ids = st.text(min_size=1, max_size=12)
maybe_int = st.none() | st.integers(min_value=0, max_value=2**63 - 1)
touch = st.builds(
    Touch,
    key=ids,
    event_id=ids,
    ts=st.floats(allow_nan=False, allow_infinity=False, width=64),
    kind=st.sampled_from(["post", "reply", "quote", "repost", "like", "follow"]),
    author=ids,
    handle=st.none() | ids,
    followers=maybe_int,
    target=st.none() | ids,
    target_followers=maybe_int,
    mentions=st.lists(ids, max_size=3).map(tuple),
    compound=st.none() | st.floats(min_value=-1, max_value=1),
    post=st.booleans(),
    edit=st.booleans(),
    read_ns=st.integers(min_value=0, max_value=2**63 - 1),
)
when = st.integers(min_value=0, max_value=10**6).map(
    lambda s: datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=s)
)
control = st.builds(Withdrawal, ids, ids, when) | st.builds(AccountPurge, ids, when)
# Lists around a column block's boundary: a few drawn records repeated to the length (drawing
# 500 distinct records per example would exceed Hypothesis's data budget and time checks).
around_a_block = st.tuples(
    st.lists(touch | control, min_size=1, max_size=6),
    st.integers(min_value=COLUMN_ROWS - 2, max_value=2 * COLUMN_ROWS + 3),
).map(lambda drawn: (drawn[0] * (drawn[1] // len(drawn[0]) + 1))[: drawn[1]])
records = st.lists(touch | control, max_size=40) | around_a_block


@given(records)
def test_records_come_back_in_order_and_of_their_types(values: list[Any]) -> None:
    back = loads_records(*dumps_records(values))
    assert back == values
    assert [type(r) for r in back] == [type(r) for r in values]


@given(st.integers(min_value=0, max_value=8) | st.text(max_size=20), records)
def test_a_graph_batch_crosses_processes_whole(worker: Any, values: list[Any]) -> None:
    batch = GraphBatch(worker, values)
    back = pickle.loads(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
    assert type(back) is GraphBatch
    assert back == batch
    assert [type(r) for r in back.records] == [type(r) for r in values]
