"""NodeIndex: an exact id -> node number map (hash collisions included), against a dict."""

from __future__ import annotations

import pickle
import random
import zlib

import numpy as np
import pytest

from operators import node_index
from operators.node_index import NodeIndex, probe_table

# Two ids with the same CRC-32 (found by a birthday search): the index must keep them apart.
COLLIDING = ("tw:c38873", "tw:c23502600")


def test_the_colliding_pair_collides() -> None:
    a, b = COLLIDING
    assert zlib.crc32(a.encode()) == zlib.crc32(b.encode())


@pytest.mark.parametrize("hot", [0, 1, 8192])
def test_colliding_ids_stay_two_accounts(hot: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_index, "HOT_IDS", hot)  # 0/1: every lookup goes to the table
    a, b = COLLIDING
    index = NodeIndex()
    assert (index.intern(a), index.intern(b), index.intern(a)) == (0, 1, 0)
    assert (index.find(a), index.find(b)) == (0, 1)
    assert index.forget(a) == 0
    assert (index.find(a), index.find(b)) == (-1, 1)
    assert index.intern(a) == 2  # a purged account comes back as a new node
    clone = pickle.loads(pickle.dumps(index))
    assert (clone.find(a), clone.find(b)) == (2, 1)
    clone.compact(np.array([False, True, True]))
    assert (clone.find(a), clone.find(b)) == (1, 0)
    assert clone.customer_ids() == [b, a]


def _random_ops(seed: int, n: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pool = [f"tw:{i}" for i in range(600)] + list(COLLIDING) + ["bsky:did:plc:é", "m:ü/ñ"]
    ops = []
    for _ in range(n):
        r = rng.random()
        kind = "forget" if r < 0.05 else "compact" if r < 0.06 else "pickle" if r < 0.07 else "add"
        ops.append((kind, rng.choice(pool)))
    return ops


@pytest.mark.parametrize(("seed", "hot"), [(1, 8192), (2, 4), (3, 0)])
def test_agrees_with_a_dict(seed: int, hot: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Interns, purges, compactions and pickle round trips: always the dict's answers."""
    monkeypatch.setattr(node_index, "HOT_IDS", hot)
    index = NodeIndex()
    model: dict[str, int] = {}
    names: list[str | None] = []
    for kind, cid in _random_ops(seed, 6000):
        if kind == "add":
            expected = model.setdefault(cid, len(names))
            if expected == len(names):
                names.append(cid)
            assert index.intern(cid) == expected
        elif kind == "forget":
            i = model.pop(cid, -1)
            if i >= 0:
                names[i] = None
            assert index.forget(cid) == i
        elif kind == "compact":  # keep the live ones, renumbered in order
            keep = np.array([name is not None for name in names], dtype=bool)
            index.compact(keep)
            names = [name for name in names if name is not None]
            model = {name: i for i, name in enumerate(names)}
        else:
            index = pickle.loads(pickle.dumps(index))
        assert len(index) == len(names)
    assert index.customer_ids() == names
    for cid in {c for _, c in _random_ops(seed, 6000)}:
        assert index.find(cid) == model.get(cid, -1)


def test_pickles_are_the_same_for_the_same_calls() -> None:
    def build() -> bytes:
        index = NodeIndex()
        for kind, cid in _random_ops(4, 3000):
            if kind == "forget":
                index.forget(cid)
            else:
                index.intern(cid)
        return pickle.dumps(index)

    assert build() == build()


@pytest.mark.parametrize("size", [16, 64])
def test_probe_table_finds_every_row_by_probing(size: int) -> None:
    rng = np.random.default_rng(size)
    homes = rng.integers(size - 4, size, 10)  # crowded at the end: rows wrap around
    table = probe_table(homes, size)
    for row, home in enumerate(homes.tolist()):
        slot = home
        while table[slot] != row:
            assert table[slot] >= 0, "an empty slot before the row: probing would miss it"
            slot = (slot + 1) % size
