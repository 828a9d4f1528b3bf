"""The numba kernels behind ``ngram_kernels.kernels()``; importing this module imports numba.

Top-level functions (not closures), so numba's on-disk cache (``cache=True``) finds them again in
the next process instead of compiling anew (~3 s).
"""

from __future__ import annotations

import numba
import numpy as np

P = np.uint64(1_000_003)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
S30, S27, S31 = np.uint64(30), np.uint64(27), np.uint64(31)


@numba.njit(cache=True, nogil=True, inline="always")
def mix(h):
    h = (h ^ (h >> S30)) * M1
    h = (h ^ (h >> S27)) * M2
    return h ^ (h >> S31)


@numba.njit(cache=True, nogil=True, inline="always")
def find(h, table, shift, mask):
    """Column of hash ``h`` or -1: ``HashIndex``'s linear probing over its interleaved table
    (key, column + 1; 0 marks a free slot), so a probe touches one cache line, not two."""
    slot = np.int64(h >> shift)
    while True:
        v = table[2 * slot + 1]
        if v == 0:
            return -1
        if table[2 * slot] == h:
            return np.int64(v) - 1
        slot = (slot + 1) & mask


@numba.njit(cache=True, nogil=True)
def local_table(most):
    """Per-document de-duplication table for up to ``most`` n-grams: small enough for L1/L2."""
    size = 1
    while size < 2 * most + 2:
        size *= 2
    return np.full(size, -1, dtype=np.int32), np.empty(size, dtype=np.int32)


@numba.njit(cache=True, nogil=True, inline="always")
def count(col, lmask, lt_col, lt_at, indices, counts, slots, out):
    """Add one occurrence of ``col`` to the current document; returns the new entry count."""
    s = (np.int64(col) * 2654435761) & lmask
    while True:
        c = lt_col[s]
        if c == col:
            counts[lt_at[s]] += 1.0
            return out
        if c == -1:
            lt_col[s] = col
            lt_at[s] = out
            indices[out] = col
            counts[out] = 1.0
            slots[out] = s
            return out + 1
        s = (s + 1) & lmask


@numba.njit(cache=True, nogil=True)
def resolve(hashes, cols, m, table, shift, mask):
    """Columns of ``hashes[:m]`` into ``cols[:m]`` (entries already >= -1 are kept: direct hits).

    Two passes: first read every home slot, a loop without branches, so the CPU overlaps the
    cache misses (the table is 16 MB) instead of waiting on each; then settle the few that
    collided by probing on.
    """
    for j in range(m):
        if cols[j] == -2:
            slot = np.int64(hashes[j] >> shift)
            cols[j] = (
                np.int64(table[2 * slot + 1]) - 1
                if table[2 * slot] == hashes[j]
                else -3 - np.int64(table[2 * slot + 1] == 0)
            )
    for j in range(m):
        if cols[j] == -4:  # home slot free: unknown
            cols[j] = -1
        elif cols[j] == -3:  # home slot taken by another key: probe on
            cols[j] = find(hashes[j], table, shift, mask)


@numba.njit(cache=True, nogil=True, inline="always")
def add_document(hashes, cols, m, table, shift, mask, lt_col, lt_at, indices, counts, slots, out):
    """Look up one document's ``m`` n-grams and append its de-duplicated counts at ``out``;
    returns the new end."""
    resolve(hashes, cols, m, table, shift, mask)
    lmask = lt_col.shape[0] - 1
    start = out
    for j in range(m):
        if cols[j] >= 0:
            out = count(np.int32(cols[j]), lmask, lt_col, lt_at, indices, counts, slots, out)
    for j in range(start, out):
        lt_col[slots[j]] = -1
    return out


@numba.njit(cache=True, nogil=True)
def char_counts(codes, n_docs, lo, hi, table, shift, mask, unigram, longest):
    """Counts of the known character n-grams (lo..hi) of each document, columns unsorted.

    ``codes``: code points of the batch's texts joined by 0, as ``features._codepoints``;
    ``unigram``: column of each BMP character (-1: unknown), read directly instead of probing;
    ``longest``: the longest text's length.
    """
    n = codes.shape[0]
    cap = n * (hi - lo + 1) + 1
    indptr = np.zeros(n_docs + 1, dtype=np.int64)
    indices = np.empty(cap, dtype=np.int32)
    counts = np.empty(cap, dtype=np.float32)
    slots = np.empty(cap, dtype=np.int64)
    per_doc = longest * (hi - lo + 1) + 1
    lt_col, lt_at = local_table(per_doc)
    hashes = np.empty(per_doc, dtype=np.uint64)
    cols = np.empty(per_doc, dtype=np.int64)
    out = 0
    doc = 0
    start = 0  # first code of the current document
    for pos in range(n + 1):
        if pos < n and codes[pos] != 0:
            continue
        m = 0  # this document's n-grams, by position then length (the numpy path's order)
        for i in range(start, pos):
            h = np.uint64(0)
            for k in range(hi):
                if i + k >= pos:
                    break
                h = h * P + codes[i + k]
                if k + 1 >= lo:
                    if k == 0 and h < unigram.shape[0]:
                        cols[m] = unigram[h]
                    else:
                        hashes[m] = mix(h ^ np.uint64((k + 1) << 56))
                        cols[m] = -2  # to look up
                    m += 1
        out = add_document(hashes, cols, m, table, shift, mask, lt_col, lt_at, indices, counts, slots, out)
        doc += 1
        indptr[doc] = out
        start = pos + 1
    return indptr, indices[:out].copy(), counts[:out].copy()


@numba.njit(cache=True, nogil=True)
def word_counts(codes, n_docs, lo, hi, table, shift, mask, longest):
    """Counts of the known word n-grams (lo..hi) of each document, columns unsorted.

    ``codes``: code points of the batch's token strings (tokens joined by 1, documents by 0), as
    ``features.NgramHasher._word`` builds them; ``longest``: the most tokens one document has.
    The same hashes as the numpy path (its prefix-sum form is this Horner form in Z/2^64) and
    the same order within a document: all unigrams in reading order, then the pairs, ...
    """
    n = codes.shape[0]
    indptr = np.zeros(n_docs + 1, dtype=np.int64)
    per_doc = longest * (hi - lo + 1) + 1
    cap = n * (hi - lo + 1) + 1
    indices = np.empty(cap, dtype=np.int32)
    counts = np.empty(cap, dtype=np.float32)
    slots = np.empty(cap, dtype=np.int64)
    lt_col, lt_at = local_table(per_doc)
    words = np.empty(longest + 1, dtype=np.uint64)
    hashes = np.empty(per_doc, dtype=np.uint64)
    cols = np.empty(per_doc, dtype=np.int64)
    out = 0
    doc = 0
    pos = 0
    while doc < n_docs:
        n_words = 0  # hash each non-empty token of this document
        h = np.uint64(0)
        length = 0
        while True:
            c = codes[pos] if pos < n else np.uint64(0)
            pos += 1
            if c > 1:
                h = h * P + c
                length += 1
                continue
            if length:
                words[n_words] = h
                n_words += 1
            h = np.uint64(0)
            length = 0
            if c == 0:
                break
        m = 0
        for size in range(lo, hi + 1):
            tag = np.uint64((size << 56) | (1 << 48))
            for i in range(n_words - size + 1):
                g = words[i]
                for k in range(1, size):
                    g = g * P + words[i + k]
                hashes[m] = mix(g ^ tag)
                cols[m] = -2
                m += 1
        out = add_document(hashes, cols, m, table, shift, mask, lt_col, lt_at, indices, counts, slots, out)
        doc += 1
        indptr[doc] = out
    return indptr, indices[:out].copy(), counts[:out].copy()
