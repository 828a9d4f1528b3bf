"""The numba kernel behind ``minhash.signatures``' fast path; importing this module imports numba.

numpy applies the permutations by building a (shingles x num_perm) array and reducing it: memory-bound,
~5x slower than this one pass per message, which keeps one row of minima in cache. Same arithmetic
(uint32 wrap-around), same values: tests/test_events.py compares both paths with datasketch.
"""

from __future__ import annotations

import numba
import numpy as np

MASK = np.uint64(0xFFFFFFFF)


@numba.njit(cache=True, nogil=True)
def min_affine(hv, starts, rows, a, b, out):  # numba infers the types
    """out[rows[m], k] = min over hv[starts[m]:starts[m+1]] of (h * a[k] + b[k]) mod 2^32."""
    num_perm = a.shape[0]
    a64 = a.astype(np.uint64)
    b64 = b.astype(np.uint64)
    for m in range(rows.shape[0]):
        row = out[rows[m]]
        for i in range(starts[m], starts[m + 1]):
            h = np.uint64(hv[i])
            for k in range(num_perm):
                v = np.uint32((h * a64[k] + b64[k]) & MASK)
                if v < row[k]:
                    row[k] = v
