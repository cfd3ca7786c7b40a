"""Customer ids <-> dense node numbers, at ~30 bytes an account instead of ~130.

A `dict[str, int]` plus a list of the ids costs a dict entry, a str object (~64 B) and an int
object (32 B) per account. Here the ids are one UTF-8 blob with offsets, and the lookup is an
open-addressing table (linear probing, load between 1/3 and 2/3) whose slots hold (31 bits of)
the CRC-32 of an id next to its node number. A lookup compares that hash first and then the
id's bytes themselves, so two ids with the same hash are still two accounts: the index is exact,
not probabilistic.

A forgotten (purged) account's slot becomes a tombstone (probing goes on past it); its bytes
stay in the blob until `compact`, and an id that comes back is a new node.

Only the blob, the offsets and the liveness column are state; the table is rebuilt on load
(vectorised), so the pickled form does not depend on how the table grew.
"""

from __future__ import annotations

import zlib
from array import array
from typing import Any

import numpy as np

_MIN_TABLE = 16

_EMPTY = -1
_TOMBSTONE = -2
"""Slot values: no entry ever / a forgotten account's (an entry: hash << 32 | node, >= 0)."""

_LOW32 = 0xFFFFFFFF

_crc32 = zlib.crc32

HOT_IDS = 8192
"""Ids last looked up, kept in a plain dict in front of the table (emptied when full): the
accounts a stream keeps touching (its hubs) resolve at dict speed. A bounded cache, not state."""


def probe_table(
    homes: np.ndarray, size: int, values: np.ndarray | None = None, typecode: str = "i"
) -> array:
    """A linear-probing table (slots of `typecode`, -1 = empty) with row k's value at `homes[k]`.

    The values are the row numbers unless given (then >= 0). Vectorised: rows are placed in the
    order of their home slot, each at max(its home, the slot after the previous one), which is
    a valid linear-probing layout (every slot between a row's home and its place is taken); rows
    pushed past the end wrap around into the first free slots, in order, as probing would.
    `size` must exceed the number of rows.
    """
    table = np.full(size, -1, dtype=np.dtype(typecode))
    n = len(homes)
    if n:
        order = np.argsort(homes, kind="stable")
        ranks = np.arange(n, dtype=np.int64)
        places = np.maximum.accumulate(homes[order].astype(np.int64) - ranks) + ranks
        inside = places < size
        stored = order if values is None else values[order]
        table[places[inside]] = stored[inside]
        wrapped = stored[~inside]
        if len(wrapped):
            table[np.flatnonzero(table < 0)[: len(wrapped)]] = wrapped
    out = array(typecode)
    out.frombytes(table.tobytes())
    return out


def table_size(count: int) -> int:
    """The power of two that keeps `count` rows at a load of at most 1/2."""
    size = _MIN_TABLE
    while size < 2 * count:
        size *= 2
    return size


class NodeIndex:
    """Exact id -> node number map over a compact byte blob; node numbers are dense, in order."""

    __slots__ = ("_blob", "_hot", "_limit", "_starts", "_table", "_used", "alive", "recent")

    def __init__(self) -> None:
        self._blob = bytearray()
        # Node i's id is blob[starts[i]:starts[i + 1]]. 'I': a blob past 4 GB (some 300M ids)
        # overflows loudly rather than silently.
        self._starts = array("I", [0])
        self.alive = bytearray()  # 0 once forgotten
        self._table = array("q", [_EMPTY]) * _MIN_TABLE  # (CRC-32 >> 1) << 32 | node number
        self._used = 0  # slots not empty (tombstones included)
        self._limit = 2 * _MIN_TABLE // 3
        self._hot: dict[str, int] = {}  # emptied, never replaced: `recent` stays bound to it
        self.recent = self._hot.get
        """The node number of an id used recently, or None (then `intern` or `find` it): the
        callers' fast path, a dict lookup without a Python call."""

    def __len__(self) -> int:
        """Nodes numbered so far, forgotten ones included (until `compact`)."""
        return len(self.alive)

    def intern(self, customer_id: str) -> int:
        """The account's node number; a new one (== len before the call) for a new account."""
        hot = self._hot
        i = hot.get(customer_id)
        if i is not None:
            return i
        if len(hot) >= HOT_IDS:
            hot.clear()
        key = customer_id.encode()
        h = _crc32(key) >> 1  # 31 bits: an entry stays a positive int64
        table = self._table
        mask = len(table) - 1
        slot = h & mask
        entry = table[slot]
        while entry != -1:  # -1: empty (a tombstone, -2, is probed past)
            if entry >> 32 == h:
                i = entry & 0xFFFFFFFF
                starts = self._starts
                if self._blob[starts[i] : starts[i + 1]] == key:
                    hot[customer_id] = i
                    return i
            slot = (slot + 1) & mask
            entry = table[slot]
        alive = self.alive
        i = len(alive)
        alive.append(1)
        blob = self._blob
        blob += key
        self._starts.append(len(blob))
        table[slot] = (h << 32) | i
        hot[customer_id] = i
        self._used += 1
        if self._used > self._limit:
            self._rebuild()
        return i

    def _slot(self, customer_id: str) -> int:
        """The slot holding the account, or -1 when unknown or forgotten."""
        key = customer_id.encode()
        h = _crc32(key) >> 1
        table = self._table
        mask = len(table) - 1
        slot = h & mask
        while True:
            entry = table[slot]
            if entry >> 32 == h:
                i = entry & _LOW32
                starts = self._starts
                if self._blob[starts[i] : starts[i + 1]] == key:
                    return slot
            elif entry == _EMPTY:
                return -1
            slot = (slot + 1) & mask

    def find(self, customer_id: str) -> int:
        """The account's node number, or -1 when unknown or forgotten."""
        i = self._hot.get(customer_id)
        if i is not None:
            return i
        slot = self._slot(customer_id)
        return -1 if slot < 0 else self._table[slot] & _LOW32

    def forget(self, customer_id: str) -> int:
        """Mark the account forgotten; its node number, or -1 when it was not known."""
        slot = self._slot(customer_id)
        if slot < 0:
            return -1
        i = self._table[slot] & _LOW32
        self._table[slot] = _TOMBSTONE
        self._hot.pop(customer_id, None)
        self.alive[i] = 0
        return i

    def customer_id(self, i: int) -> str:
        """The id of node i (forgotten or not)."""
        return self._blob[self._starts[i] : self._starts[i + 1]].decode()

    def customer_ids(self) -> list[str | None]:
        """Every node's id, None for the forgotten ones (O(V): for checks and exports)."""
        blob, starts, alive = bytes(self._blob), self._starts, self.alive
        return [
            blob[starts[i] : starts[i + 1]].decode() if alive[i] else None
            for i in range(len(alive))
        ]

    def compact(self, keep: np.ndarray) -> None:
        """Keep only the nodes where `keep` (bool, one per node) is set, renumbered in order."""
        live = self._entries()
        starts = np.frombuffer(self._starts, dtype=np.uint32).astype(np.int64)
        lengths = np.diff(starts)
        kept = np.flatnonzero(keep)
        blob = np.frombuffer(self._blob, dtype=np.uint8)
        self._blob = bytearray(blob[np.repeat(keep, lengths)].tobytes())
        del blob
        new_starts = np.zeros(len(kept) + 1, dtype=np.uint32)
        np.cumsum(lengths[kept], out=new_starts[1:])
        self._starts = _to_array("I", new_starts)
        self.alive = bytearray(b"\x01" * len(kept))
        self._hot.clear()  # renumbered
        nodes = live & _LOW32
        live = live[keep[nodes]]
        remap = np.cumsum(keep) - 1
        self._place(live >> 32, remap[live & _LOW32])

    def _entries(self) -> np.ndarray:
        table = np.frombuffer(self._table, dtype=np.int64)
        return table[table >= 0]

    def _rebuild(self) -> None:
        live = self._entries()
        self._place(live >> 32, live & _LOW32)

    def _place(self, crcs: np.ndarray, nodes: np.ndarray) -> None:
        size = table_size(len(nodes))
        self._table = probe_table(crcs & (size - 1), size, (crcs << 32) | nodes, "q")
        self._used = len(nodes)
        self._limit = 2 * size // 3  # past this many taken slots, grow

    def memory_bytes(self) -> int:
        """Bytes held by the blob, the offsets, the table and the liveness column."""
        return sum(
            part.__sizeof__() for part in (self._blob, self._starts, self.alive, self._table)
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"blob": bytes(self._blob), "starts": self._starts, "alive": self.alive}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._blob = bytearray(state["blob"])
        self._starts = state["starts"]
        self.alive = state["alive"]
        self._hot = {}
        self.recent = self._hot.get
        view, starts, alive = memoryview(self._blob), self._starts, self.alive
        crc = zlib.crc32
        nodes = [i for i in range(len(alive)) if alive[i]]
        crcs = [crc(view[starts[i] : starts[i + 1]]) >> 1 for i in nodes]
        del view
        self._place(np.array(crcs, dtype=np.int64), np.array(nodes, dtype=np.int64))


def _to_array(typecode: str, values: np.ndarray) -> array:
    out = array(typecode)
    out.frombytes(np.ascontiguousarray(values, dtype=np.dtype(typecode)).tobytes())
    return out
