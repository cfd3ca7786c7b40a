"""The ranking half of the influence graph: weighted PageRank with decay that reaches influence.

Pure numpy/scipy over the graph's CSR (in-edges grouped by destination); see
`operators.influence_refresh` for what the ranking means.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

PAGERANK_TOL = 1e-7
"""Power iteration stops when the L1 change of the vector (which sums to 1) is below this."""

PAGERANK_MAX_ITER = 500


def weighted_pagerank(
    n: int,
    src: np.ndarray,
    indptr: np.ndarray,
    weights: np.ndarray,
    alpha: float,
    start: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, int]:
    """(PageRank vector summing to 1, every node's decayed out-weight, iterations).

    Edges are `src[k] -> dst` with dst's in-edges at indptr[dst]:indptr[dst + 1]. A source
    passes on its weights normalised by max(out-weight, 1); the rest teleports uniformly.
    `start` warm-starts the iteration (the previous vector: nodes past its end, or at 0, start
    uniform); an empty `start` starts cold.
    """
    if n == 0:
        return np.zeros(0), np.zeros(0), 0
    out = np.bincount(src, weights=weights, minlength=n)
    denom = np.maximum(out, 1.0)
    passed = out / denom  # 1 for an active source, less for a silent one, 0 if dangling
    matrix = sparse.csr_array((weights / denom[src], src, indptr), shape=(n, n))
    x = np.full(n, 1.0 / n)
    m = min(len(start), n)
    if m:
        x[:m] = np.where(start[:m] > 0.0, start[:m], 1.0 / n)
    x /= x.sum()
    leaking = np.flatnonzero(passed < 1.0)  # silent and dangling sources
    leak = 1.0 - passed[leaking]
    teleport = (1.0 - alpha) / n
    diff = np.empty(n)
    iterations = 0
    while iterations < PAGERANK_MAX_ITER:
        iterations += 1
        y = matrix @ x
        y *= alpha
        # A gather and a multiply, not a BLAS dot: no thread pool spun up per iteration.
        y += alpha * float((leak * np.take(x, leaking)).sum()) / n + teleport
        np.subtract(y, x, out=diff)
        np.abs(diff, out=diff)
        x = y
        if diff.sum() < PAGERANK_TOL:
            break
    return x, out, iterations
