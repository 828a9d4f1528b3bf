"""The numba kernel behind ``evidence.top_candidates``; importing this module imports numba."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def top_candidates(indptr, indices, data, weights, best, displayable, lo, hi, need, per_row):
    """Per row: up to ``per_row`` columns in [lo, hi) whose entries push hardest towards the row's
    ``best`` class (value x weight > 0, displayable only), strongest first, ties in entry order;
    -1 pads. Rows with ``need`` false are skipped."""
    n = indptr.shape[0] - 1
    out = np.full((n, per_row), -1, dtype=np.int64)
    longest = 0
    for r in range(n):
        longest = max(longest, indptr[r + 1] - indptr[r])
    values = np.empty(longest, dtype=np.float64)
    columns = np.empty(longest, dtype=np.int64)
    for r in range(n):
        if not need[r]:
            continue
        b = best[r]
        found = 0
        for k in range(indptr[r], indptr[r + 1]):
            c = indices[k]
            if c < lo or c >= hi or not displayable[c]:
                continue
            v = data[k] * weights[c, b]
            if v > 0:
                values[found] = v
                columns[found] = c
                found += 1
        order = np.argsort(-values[:found], kind="mergesort")  # stable: ties keep entry order
        for j in range(min(found, per_row)):
            out[r, j] = columns[order[j]]
    return out
