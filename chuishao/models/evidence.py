"""Which features pushed a message towards its chosen topic: the candidates behind ``evidence``.

Two paths give the same candidates in the same order: a compiled kernel (numba, one pass per
row, weights read only for displayable entries) and the vectorised numpy path used without numba
or for small batches.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from chuishao.pipeline.ngram_kernels import MIN_BATCH, kernels


@lru_cache(maxsize=1)
def _kernel() -> Callable[..., np.ndarray] | None:
    if kernels() is None:  # the same switch as the n-gram kernels: numba present, CHUISHAO_KERNELS
        return None
    from chuishao.models._evidence_numba import top_candidates

    return top_candidates


def top_candidates(X: sp.csr_matrix, best: np.ndarray, weights: np.ndarray, displayable: np.ndarray,
                   columns: tuple[int, int], need: np.ndarray, per_row: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols): for each row with ``need``, up to ``per_row`` columns in ``columns`` [lo, hi)
    with a positive push (value x weight of the row's ``best`` class), displayable only;
    rows ascending, strongest first within a row, ties in entry order."""
    lo, hi = columns
    kernel = _kernel() if X.shape[0] >= MIN_BATCH else None
    if kernel is not None:
        top = kernel(X.indptr, X.indices, X.data, weights, best, displayable, lo, hi, need, per_row)
        rows, slots = np.nonzero(top >= 0)  # row-major: rows ascending, slots in order
        return rows, top[rows, slots]
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    # only this block's entries of rows still short of terms: the weight lookups are the cost
    sel = np.nonzero((X.indices >= lo) & (X.indices < hi) & need[rows])[0]
    c, r = X.indices[sel], rows[sel]
    ok = displayable[c]
    c, r, d = c[ok], r[ok], X.data[sel][ok]
    v = d * weights[c, best[r]]
    ok = v > 0
    r, c, v = r[ok], c[ok], v[ok]
    order = np.lexsort((-v, r))  # stable: ties keep entry order
    r, c = r[order], c[order]
    keep = (np.arange(r.shape[0]) - np.searchsorted(r, r)) < per_row
    return r[keep], c[keep].astype(np.int64)
