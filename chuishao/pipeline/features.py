"""Fast n-gram TF-IDF features for Chinese text.

scikit-learn's TfidfVectorizer builds every character n-gram as a Python string (about 900
messages/s per core here); batch tagging needs several times that. This vectorizer computes
64-bit polynomial hashes of character and word n-grams for a whole batch at once with numpy,
keeps a vocabulary of the hashes seen in training (``min_df``), and weights them exactly like
``TfidfVectorizer(sublinear_tf=True, smooth_idf=True, norm='l2')``. The n-gram strings are kept
for the vocabulary only, to explain decisions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import normalize

from chuishao.pipeline.doc import Doc
from chuishao.pipeline.ngram_kernels import MIN_BATCH, kernels

_P = np.uint64(1_000_003)
_P_INV = np.uint64(pow(1_000_003, -1, 2**64))
_SEP_DOC = 0  # code point separating documents in a batch
_SEP_TOK = 1  # code point separating words in a batch of token lists


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads polynomial hashes over all 64 bits."""
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


_SEPARATORS = str.maketrans({"\x00": " ", "\x01": " "})


def _codepoints(strings: Sequence[str], sep: str, sanitize: bool) -> tuple[str, np.ndarray]:
    if sanitize:  # separators must not occur inside a text (a NUL in a title would split a document)
        strings = [x.translate(_SEPARATORS) if ("\x00" in x or "\x01" in x) else x for x in strings]
    joined = sep.join(strings)
    return joined, np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)


def _token_string(tokens: Sequence[str]) -> str:
    """Tokens joined by the word separator; separators inside a token become spaces, or they
    would split it (or its whole document) in two."""
    joined = "\x01".join(tokens)
    if "\x00" in joined or joined.count("\x01") != max(len(tokens) - 1, 0):
        joined = "\x01".join(t.translate(_SEPARATORS) for t in tokens)
    return joined


def _span_hashes(codes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Polynomial hash of codes[s:e] for every span, via prefix sums in Z/2^64."""
    n = codes.shape[0]
    with np.errstate(over="ignore"):
        inv_pows = np.empty(n, dtype=np.uint64)
        inv_pows[0] = 1
        if n > 1:
            inv_pows[1:] = _P_INV
            inv_pows = np.cumprod(inv_pows, dtype=np.uint64)
        pows = np.empty(n + 1, dtype=np.uint64)
        pows[0] = 1
        pows[1:] = _P
        pows = np.cumprod(pows, dtype=np.uint64)
        prefix = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum(codes * inv_pows, dtype=np.uint64, out=prefix[1:])
        return (prefix[ends] - prefix[starts]) * pows[ends - 1]


class NgramHasher:
    """Hashes of the n-grams of a batch: (document index, hash, start, end) per occurrence."""

    def __init__(self, kind: str, ngram_range: tuple[int, int]) -> None:
        if kind not in ("char", "word"):
            raise ValueError(f"n-gram kind must be 'char' or 'word', not {kind!r}")
        self.kind = kind
        self.ngram_range = ngram_range

    def __call__(self, docs: Sequence[Doc]) -> tuple[np.ndarray, np.ndarray, str, np.ndarray, np.ndarray]:
        if self.kind == "char":
            return self._char(docs)
        return self._word(docs)

    def _char(self, docs: Sequence[Doc]):
        joined, codes = _codepoints([d.text for d in docs], "\x00", sanitize=True)
        is_sep = codes == _SEP_DOC
        doc_of = np.cumsum(is_sep)
        lo, hi = self.ngram_range
        idx_parts, hash_parts, start_parts, end_parts = [], [], [], []
        with np.errstate(over="ignore"):
            for n in range(lo, hi + 1):
                m = codes.shape[0] - n + 1
                if m <= 0:
                    continue
                h = codes[:m].copy()
                bad = is_sep[:m].copy()
                for k in range(1, n):
                    h = h * _P + codes[k : k + m]
                    bad |= is_sep[k : k + m]
                keep = ~bad
                starts = np.nonzero(keep)[0]
                hash_parts.append(_mix(h[keep] ^ np.uint64(n << 56)))
                idx_parts.append(doc_of[starts])
                start_parts.append(starts)
                end_parts.append(starts + n)
        return _concat(idx_parts, hash_parts, start_parts, end_parts, joined)

    def _word(self, docs: Sequence[Doc]):
        joined, codes = _codepoints([_token_string(d.tokens) for d in docs], "\x00", sanitize=False)
        bounds = np.nonzero(codes <= _SEP_TOK)[0]
        ends = np.concatenate([bounds, [codes.shape[0]]])
        starts = np.concatenate([[0], bounds + 1])
        doc_of = np.concatenate([[0], np.cumsum(codes[bounds] == _SEP_DOC)])
        nonempty = ends > starts
        starts, ends, doc_of = starts[nonempty], ends[nonempty], doc_of[nonempty]
        word_h = _span_hashes(codes, starts, ends) if starts.size else np.zeros(0, dtype=np.uint64)
        lo, hi = self.ngram_range
        idx_parts, hash_parts, start_parts, end_parts = [], [], [], []
        with np.errstate(over="ignore"):
            for n in range(lo, hi + 1):
                m = word_h.shape[0] - n + 1
                if m <= 0:
                    continue
                h = word_h[:m].copy()
                same_doc = np.ones(m, dtype=bool)
                for k in range(1, n):
                    h = h * _P + word_h[k : k + m]
                    same_doc &= doc_of[k : k + m] == doc_of[:m]
                hash_parts.append(_mix(h[same_doc] ^ np.uint64((n << 56) | (1 << 48))))
                idx_parts.append(doc_of[:m][same_doc])
                start_parts.append(starts[:m][same_doc])
                end_parts.append(ends[n - 1 : n - 1 + m][same_doc])
        return _concat(idx_parts, hash_parts, start_parts, end_parts, joined)


def _concat(idx_parts, hash_parts, start_parts, end_parts, joined):
    if not hash_parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, np.zeros(0, dtype=np.uint64), joined, empty, empty
    return (
        np.concatenate(idx_parts).astype(np.int64),
        np.concatenate(hash_parts),
        joined,
        np.concatenate(start_parts),
        np.concatenate(end_parts),
    )


class HashIndex:
    """Open-addressing table from 64-bit n-gram hash to column; vectorised lookups.

    ``np.searchsorted`` over the vocabulary costs ~18 cache misses per n-gram; this costs ~1.
    The table interleaves (key, column + 1) pairs, 0 marking a free slot, so one probe reads
    one cache line; the compiled kernels (``_ngram_numba``) read the same table.
    """

    def __init__(self, keys: np.ndarray) -> None:
        bits = max(4, int(np.ceil(np.log2(max(keys.shape[0], 1) * 3))))
        self.shift = np.uint64(64 - bits)
        self.mask = (1 << bits) - 1
        self.table = np.zeros(2 << bits, dtype=np.uint64)
        table_keys, table_vals = self.table[0::2], self.table[1::2]
        pending = np.arange(keys.shape[0])
        slots = (keys >> self.shift).astype(np.int64)
        self.max_probe = 0
        while pending.size:
            free = table_vals[slots[pending]] == 0
            cand = pending[free]
            _, first = np.unique(slots[cand], return_index=True)
            winners = cand[first]
            table_keys[slots[winners]] = keys[winners]
            table_vals[slots[winners]] = (winners + 1).astype(np.uint64)
            pending = np.setdiff1d(pending, winners, assume_unique=True)
            slots[pending] = (slots[pending] + 1) & self.mask
            self.max_probe += 1 if pending.size else 0

    def lookup(self, hashes: np.ndarray) -> np.ndarray:
        """Column of each hash, or -1 when it is not in the vocabulary."""
        table_keys, table_vals = self.table[0::2], self.table[1::2]
        result = np.full(hashes.shape[0], -1, dtype=np.int64)
        slots = (hashes >> self.shift).astype(np.int64)
        pending = np.arange(hashes.shape[0])
        for _ in range(self.max_probe + 1):
            s = slots[pending]
            vals = table_vals[s].astype(np.int64) - 1
            hit = table_keys[s] == hashes[pending]
            occupied = vals >= 0
            result[pending[hit & occupied]] = vals[hit & occupied]
            pending = pending[~hit & occupied]
            if not pending.size:
                break
            slots[pending] = (slots[pending] + 1) & self.mask
        return result


def first_occurrence_counts(doc_idx: np.ndarray, cols: np.ndarray, n_docs: int, n_cols: int) -> sp.csr_matrix:
    """Count matrix of (document, column) occurrences given in reading order (documents in
    order): each row's columns in order of first occurrence, as the compiled kernels emit them."""
    key = doc_idx.astype(np.int64) * n_cols + cols
    uniq, first, counts = np.unique(key, return_index=True, return_counts=True)
    order = np.argsort(first)
    uniq, counts = uniq[order], counts[order]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(uniq // n_cols, minlength=n_docs))])
    matrix = sp.csr_matrix((counts.astype(np.float32), (uniq % n_cols).astype(np.int32), indptr), shape=(n_docs, n_cols))
    matrix.has_sorted_indices = False
    return matrix


def _smallest_uint(values: np.ndarray) -> np.ndarray:
    """``values`` (non-negative) in the narrowest unsigned type that holds them all."""
    top = int(values.max()) if values.size else 0
    dtype = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if top <= np.iinfo(t).max)
    return values.astype(dtype)


class TermTable:
    """The n-gram of each column, as one string and offsets: a few MB where an array of
    600,000 Python strings takes ~40 MB, loads slowly, and is copied page by page into
    every forked worker as their reference counts change."""

    def __init__(self, terms: Sequence[str]) -> None:
        self.blob = "".join(terms)
        self.offsets = np.zeros(len(terms) + 1, dtype=np.int64)
        np.cumsum([len(t) for t in terms], out=self.offsets[1:])

    def __len__(self) -> int:
        return self.offsets.shape[0] - 1

    def __getitem__(self, i: int) -> str:
        return self.blob[self.offsets[i] : self.offsets[i + 1]]

    def __iter__(self) -> Iterator[str]:
        blob = self.blob
        return (blob[a:b] for a, b in pairwise(self.offsets.tolist()))

    def to_state(self) -> dict[str, np.ndarray]:
        """The terms as arrays: their UTF-8 text, and each term's length in characters."""
        return {"text": np.frombuffer(self.blob.encode("utf-8"), dtype=np.uint8),
                "lengths": _smallest_uint(np.diff(self.offsets))}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray]) -> TermTable:
        text, lengths = arrays["text"], arrays["lengths"]
        if text.dtype != np.uint8 or lengths.dtype.kind != "u":
            raise ValueError(f"terms: text of {text.dtype} and lengths of {lengths.dtype}, expected unsigned integers")
        table = cls.__new__(cls)
        table.blob = text.tobytes().decode("utf-8")
        table.offsets = np.zeros(lengths.shape[0] + 1, dtype=np.int64)
        np.cumsum(lengths, out=table.offsets[1:])
        if table.offsets[-1] != len(table.blob):
            raise ValueError(f"terms: lengths add up to {table.offsets[-1]} characters, the text has {len(table.blob)}")
        return table

    def take(self, columns: np.ndarray) -> list[str]:
        """The terms of many columns at once (the offsets are read vectorised)."""
        blob = self.blob
        return [blob[a:b] for a, b in zip(self.offsets[columns].tolist(), self.offsets[columns + 1].tolist(), strict=True)]


class NgramTfidf(TransformerMixin, BaseEstimator):
    """TF-IDF over hashed character or word n-grams of ``Doc`` objects.

    Matches ``TfidfVectorizer(analyzer=kind, sublinear_tf=True)`` with the same ``min_df`` and
    ``max_df`` (see tests) at a fraction of the cost. Columns are ordered by n-gram hash; ``terms_``
    names them. ``max_features`` differs: it keeps the n-grams the most *documents* have (ties in
    hash order), where scikit-learn keeps those with the most occurrences; the values are then
    scikit-learn's on the n-grams kept.
    """

    _unigrams: np.ndarray | None  # built on first use by ``_unigram_columns``

    def __init__(
        self,
        kind: str = "char",
        ngram_range: tuple[int, int] = (1, 3),
        min_df: int = 2,
        max_df: float = 1.0,
        max_features: int | None = None,
        sublinear_tf: bool = True,
    ) -> None:
        self.kind = kind
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.max_df = max_df
        self.max_features = max_features
        self.sublinear_tf = sublinear_tf

    def fit(self, docs: Sequence[Doc], y: object = None) -> NgramTfidf:
        lo, hi = self.ngram_range  # a list when given as one: the hasher takes a tuple
        doc_idx, hashes, joined, starts, ends = NgramHasher(self.kind, (lo, hi))(docs)
        n_docs = len(docs)
        # document frequency: count distinct (hash, doc) pairs per hash
        order = np.lexsort((doc_idx, hashes))
        h_sorted, d_sorted = hashes[order], doc_idx[order]
        new_hash = np.ones(h_sorted.shape[0], dtype=bool)
        new_hash[1:] = h_sorted[1:] != h_sorted[:-1]
        new_pair = new_hash.copy()
        new_pair[1:] |= d_sorted[1:] != d_sorted[:-1]
        first = np.nonzero(new_hash)[0]
        uniq = h_sorted[first]
        df = np.add.reduceat(new_pair.astype(np.int64), first) if first.size else first
        keep = (df >= self.min_df) & (df <= self.max_df * n_docs)
        uniq, df, first = uniq[keep], df[keep], first[keep]
        if self.max_features is not None and uniq.shape[0] > self.max_features:
            top = np.sort(np.argsort(-df, kind="stable")[: self.max_features])
            uniq, df, first = uniq[top], df[top], first[top]
        if uniq.shape[0] == 0:
            raise ValueError("no n-gram reaches min_df: too few or too short training texts")
        # name each kept hash by its first occurrence
        where = order[first]
        self.terms_ = TermTable([joined[s:e].replace("\x01", "") for s, e in zip(starts[where], ends[where], strict=True)])
        self.hashes_ = uniq
        self.idf_ = (np.log((1 + n_docs) / (1 + df)) + 1.0).astype(np.float32)
        self._index = HashIndex(self.hashes_)
        self._unigrams = None
        return self

    def to_state(self) -> tuple[dict[str, object], dict[str, np.ndarray]]:
        """Parameters (JSON) and vocabulary (arrays: hashes, idf, terms). The lookup tables are
        derived from the hashes: rebuilt at load, never saved."""
        params = {"kind": self.kind, "ngram_range": list(self.ngram_range), "min_df": self.min_df,
                  "max_df": self.max_df, "max_features": self.max_features, "sublinear_tf": self.sublinear_tf}
        terms = {f"terms.{k}": v for k, v in self.terms_.to_state().items()}
        return params, {"hashes": self.hashes_, "idf": self.idf_, **terms}

    @classmethod
    def from_state(cls, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> NgramTfidf:
        params = dict(state)
        params["ngram_range"] = tuple(params["ngram_range"])
        vectorizer = cls(**params)
        vectorizer.hashes_, vectorizer.idf_ = arrays["hashes"], arrays["idf"]
        vectorizer.terms_ = TermTable.from_state({k.removeprefix("terms."): v for k, v in arrays.items()
                                                  if k.startswith("terms.")})
        n = vectorizer.hashes_.shape[0]
        if vectorizer.hashes_.dtype != np.uint64 or vectorizer.idf_.dtype != np.float32 or \
                vectorizer.idf_.shape != (n,) or len(vectorizer.terms_) != n:
            raise ValueError(f"{vectorizer.kind} vocabulary: {n} hashes ({vectorizer.hashes_.dtype}), "
                             f"{vectorizer.idf_.shape[0]} idf ({vectorizer.idf_.dtype}), {len(vectorizer.terms_)} terms")
        vectorizer._index = HashIndex(vectorizer.hashes_)
        vectorizer._unigrams = None
        return vectorizer

    def transform(self, docs: Sequence[Doc]) -> sp.csr_matrix:
        # Both paths give the same matrix, entries in order of first occurrence (not sorted:
        # sorting costs more than the rest of the transform, and neither path needs it).
        counts = self._counts_compiled(docs) if len(docs) >= MIN_BATCH else None
        if counts is None:
            counts = self._counts_numpy(docs)
        if self.sublinear_tf:
            np.log(counts.data, out=counts.data)
            counts.data += 1.0
        counts.data *= self.idf_[counts.indices]
        return normalize(counts, copy=False)

    def _counts_numpy(self, docs: Sequence[Doc]) -> sp.csr_matrix:
        lo, hi = self.ngram_range
        doc_idx, hashes, _, starts, ends = NgramHasher(self.kind, (lo, hi))(docs)
        cols = self._index.lookup(hashes)
        known = cols >= 0
        doc_idx, cols, starts, ends = doc_idx[known], cols[known], starts[known], ends[known]
        if self.kind == "char":  # by position, shorter n-grams first: the compiled path's order
            order = np.lexsort((ends - starts, starts))
        else:  # by document, n-gram orders one after another, as the compiled path reads them
            order = np.argsort(doc_idx, kind="stable")
        return first_occurrence_counts(doc_idx[order], cols[order], len(docs), self.hashes_.shape[0])

    def _counts_compiled(self, docs: Sequence[Doc]) -> sp.csr_matrix | None:
        k = kernels()
        if k is None:
            return None
        ix, shape = self._index, (len(docs), self.hashes_.shape[0])
        table = (ix.table, ix.shift, np.int64(ix.mask))
        lo, hi = self.ngram_range
        if self.kind == "char":
            texts = [d.text for d in docs]
            _, codes = _codepoints(texts, "\x00", sanitize=True)
            indptr, indices, counts = k.char_counts(codes, len(docs), lo, hi, *table, self._unigram_columns(),
                                                    max(map(len, texts)))
        else:
            _, codes = _codepoints([_token_string(d.tokens) for d in docs], "\x00", sanitize=False)
            longest = max(len(d.tokens) for d in docs)
            indptr, indices, counts = k.word_counts(codes, len(docs), lo, hi, *table, longest)
        matrix = sp.csr_matrix((counts, indices, indptr), shape=shape)
        matrix.has_sorted_indices = False
        return matrix

    def _unigram_columns(self) -> np.ndarray:
        """Column of every BMP character's unigram (-1: not in the vocabulary, or no unigrams)."""
        unigrams = getattr(self, "_unigrams", None)
        if unigrams is None:
            if self.kind != "char" or self.ngram_range[0] != 1:
                unigrams = np.zeros(0, dtype=np.int32)
            else:
                codes = np.arange(1 << 16, dtype=np.uint64)
                unigrams = self._index.lookup(_mix(codes ^ np.uint64(1 << 56))).astype(np.int32)
            self._unigrams = unigrams
        return unigrams

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        prefix = "c:" if self.kind == "char" else "w:"
        return np.array([prefix + t for t in self.terms_], dtype=object)
