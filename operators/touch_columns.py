"""A list of graph records as blocks of columns, for the two places it is serialised.

The graph stage's input is a list of `Touch` records per upstream batch, with now and then a
withdrawal or a purge among them. It is serialised on two paths: the graph journal (every
record of an epoch, at every snapshot) and Bytewax's exchange between processes (every record
that a process other than the graph's reads). Pickling named tuples costs about 1 µs a record
each way; the same values as `marshal`led columns cost 0.45 µs to write and 0.37 µs to read
(measured on Higgs records), and take 82 bytes a record instead of 93.

`marshal` only takes plain values (str, int, float, None, bool, tuples), which is all a `Touch`
holds; its format can change between Python versions, which is fine for what stays inside one
run (the exchange) and is checked for the journal (`Touch._fields` and the segment format).
"""

from __future__ import annotations

import marshal
from collections.abc import Iterable
from itertools import chain
from typing import Any

from operators.influence_policy import Touch

COLUMN_ROWS = 512
"""Records per block of columns. A flow's lists hold one input batch's records (500 by
default); a longer list is cut into blocks, since `zip` over thousands of records at once
walks them all once per field and is slower than one tuple per record (measured on Higgs:
0.85 µs a record in blocks of 512, 1.3 µs as one tuple each, 3.2 µs as one block of 20,000)."""


def to_columns(records: list[Any]) -> tuple[list[list[tuple]], list[tuple[int, Any]]]:
    """The `Touch` records as blocks of columns, and every other record with its place."""
    touches = [r for r in records if type(r) is Touch]
    others: list[tuple[int, Any]] = []
    if len(touches) < len(records):
        others = [(i, r) for i, r in enumerate(records) if type(r) is not Touch]
    rows = COLUMN_ROWS
    blocks = [list(zip(*touches[i : i + rows], strict=True)) for i in range(0, len(touches), rows)]
    return blocks, others


def from_columns(blocks: list[list[tuple]], others: Iterable[tuple[int, Any]] = ()) -> list[Any]:
    """The records `to_columns` was given, in their order."""
    make = Touch._make
    records = list(chain.from_iterable(map(make, zip(*columns, strict=True)) for columns in blocks))
    for i, record in others:  # in order of place: each goes where it was
        records.insert(i, record)
    return records


def dumps_records(records: list[Any]) -> tuple[bytes, list[tuple[int, Any]]]:
    """The records' `Touch` columns marshalled, and the other records with their places (for
    the caller to pickle)."""
    blocks, others = to_columns(records)
    return marshal.dumps(blocks), others


def loads_records(blob: bytes, others: Iterable[tuple[int, Any]] = ()) -> list[Any]:
    """The records `dumps_records` was given."""
    return from_columns(marshal.loads(blob), others)
