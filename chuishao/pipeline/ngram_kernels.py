"""Compiled n-gram counting: the fast path of ``features.NgramTfidf.transform`` (optional, numba).

The numpy path in ``features.py`` hashes every n-gram of a batch in a dozen full-array passes,
probes the vocabulary table in rounds, and sorts to count (document, column) pairs. The
kernels (``_ngram_numba``) do the same work in one pass per document: the same hashes, the same
table, the same counts in the same order (tests check the two paths give identical matrices),
at about a third of the cost. numba comes with the ``batch`` and ``serve`` extras; without it, or
with ``CHUISHAO_KERNELS=0``, the numpy path runs.
"""

from __future__ import annotations

import os
from functools import lru_cache
from types import ModuleType

MIN_BATCH = 16  # smaller batches (one message at a time) gain nothing worth the numba import


@lru_cache(maxsize=1)
def kernels() -> ModuleType | None:
    """The compiled kernels (``char_counts``, ``word_counts``), or None when numba is missing or
    turned off."""
    if os.environ.get("CHUISHAO_KERNELS", "1") == "0":
        return None
    try:
        from chuishao.pipeline import _ngram_numba
    except ImportError:
        return None
    return _ngram_numba
