"""MinHash signatures of messages, and the LSH band keys that find similar ones.

A message's shingles are the character n-grams (2 by default: paraphrases share more bigrams) of its normalised title + text:
every character that is not a letter or digit removed (punctuation, white space), NFKC, lower case,
runs of 3+ digits as one ``0`` (two callers' phone numbers or dates differ, the problem does not;
"3号楼" and "A3区" keep their digit).

The signature is datasketch's ``MinHash`` (scheme ``affine32``, the default since datasketch 2.0)
with :func:`shingle_hash` as its hash function: ``signatures`` computes the same values for a
whole batch of messages with numpy (datasketch hashes each shingle in Python and updates one
MinHash at a time: ~50x slower, bench/results/events.json "signatures"; tests/test_events.py checks
equality). With numba (the ``batch`` and ``serve`` extras) a compiled kernel applies the permutations
in one pass per message instead of numpy's (shingles x permutations) array; ``CHUISHAO_KERNELS=0``
turns it off.

A band key mixes ``rows`` signature values with the band's number and the row's **block** (its
topic and place key): two rows are candidates only when they share a band key, so rows of another
topic or place are never compared. Keys are stable across processes and machines (no Python
``hash``), so the service can store them in a database.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from chuishao.pipeline.ngram_kernels import kernels

_DROP = re.compile(r"[\W_]+")  # not a letter or digit (any script): punctuation, white space, symbols
_DIGITS = re.compile(r"\d{3,}")  # 3+ digits: phones, dates, amounts; "3号楼" and "A3区" keep theirs
_PAD = 0x1FFFFF  # pads a text shorter than one shingle (not a code point: code points end at 0x10FFFF)
_M64 = (np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))
_M32 = (np.uint32(0x85EBCA6B), np.uint32(0xC2B2AE35))
_MAX32 = np.uint32(0xFFFFFFFF)


def normalise(text: str) -> str:
    """The form shingles are taken from (see the module's note)."""
    # Punctuation first: full-width punctuation fails NFKC's quick check, and the full normalisation
    # costs ~100x the check; without it, most messages need none.
    text = _DROP.sub("", text)
    if not unicodedata.is_normalized("NFKC", text):
        text = _DROP.sub("", unicodedata.normalize("NFKC", text))
    return _DIGITS.sub("0", text.lower())


def _fmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * _M64[0]
    h = h ^ (h >> np.uint64(33))
    h = h * _M64[1]
    return h ^ (h >> np.uint64(33))


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, as datasketch applies it before its permutations."""
    h = h ^ (h >> np.uint32(16))
    h = h * _M32[0]
    h = h ^ (h >> np.uint32(13))
    h = h * _M32[1]
    return h ^ (h >> np.uint32(16))


def _gram_keys(text: str, n: int) -> np.ndarray:
    """The n-grams of a text as exact uint64 keys: 21 bits per character, always three characters
    (a shorter n-gram, or a text shorter than n taken as one shingle, padded with a non-character)."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if len(codes) < n:
        n = len(codes)
    count = len(codes) - n + 1
    keys = np.zeros(count, dtype=np.uint64)
    for k in range(3):
        part = codes[k:k + count] if k < n else np.full(count, _PAD, dtype=np.uint64)
        keys = (keys << np.uint64(21)) | part
    return keys


def _hash_keys(keys: np.ndarray) -> np.ndarray:
    return (_fmix64(keys) & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def shingles(text: str, n: int = 2) -> list[str]:
    """The shingles of an already normalised text (the text itself when shorter than n; none when empty)."""
    if not text:
        return []
    if len(text) < n:
        return [text]
    return [text[i:i + n] for i in range(len(text) - n + 1)]


def shingle_hash(shingle: str | bytes) -> int:
    """A shingle's 32-bit hash: its (at most 3) code points packed exactly into 64 bits, then
    MurmurHash3's 64-bit finalizer, low 32 bits. The ``hashfunc`` to give datasketch's MinHash
    for the same values as ``signatures`` (bytes are read as UTF-8)."""
    if isinstance(shingle, bytes):
        shingle = shingle.decode("utf-8")
    if not 1 <= len(shingle) <= 3:
        raise ValueError(f"a shingle has 1 to 3 characters, not {len(shingle)}")
    return int(_hash_keys(_gram_keys(shingle, len(shingle)))[0])


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutations (a odd, b) for this seed: the same RandomState draws."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def signatures(texts: Sequence[str], num_perm: int = 96, seed: int = 1, n: int = 2,
               batch: int = 256, use_kernel: bool = True) -> np.ndarray:
    """MinHash signatures (len(texts) x num_perm, uint32) of normalised texts; an empty text has
    the all-0xFFFFFFFF signature (similar to nothing: see ``similarity``)."""
    if not 1 <= n <= 3:
        raise ValueError(f"shingle size must be 1 to 3 characters, not {n}")
    a, b = permutations(num_perm, seed)
    out = np.full((len(texts), num_perm), _MAX32, dtype=np.uint32)
    for start in range(0, len(texts), batch):
        part = texts[start:start + batch]
        keys, owners = [], []
        for i, text in enumerate(part):
            if text:
                k = _gram_keys(text, n)
                keys.append(k)
                owners.append(np.full(len(k), i, dtype=np.int64))
        if not keys:
            continue
        allkeys = np.concatenate(keys)
        who = np.concatenate(owners)
        hv = _fmix32(_hash_keys(allkeys))
        starts = np.flatnonzero(np.r_[True, who[1:] != who[:-1]])
        fast = _kernel() if use_kernel else None
        if fast is not None:
            fast(hv, np.r_[starts, len(hv)].astype(np.int64), (start + who[starts]).astype(np.int64), a, b, out)
            continue
        with np.errstate(over="ignore"):
            phv = hv[:, None] * a[None, :] + b[None, :]  # uint32 wraps: the modulo 2^32 of the scheme
        out[start + who[starts]] = np.minimum.reduceat(phv, starts, axis=0)
    return out


@lru_cache(maxsize=1)
def _kernel() -> Callable[..., None] | None:
    """The compiled permutation kernel, or None without numba (or with CHUISHAO_KERNELS=0): numpy then."""
    if kernels() is None:  # the same switch as the n-gram kernels: numba present, CHUISHAO_KERNELS
        return None
    from chuishao.analysis._minhash_numba import min_affine

    return min_affine


def similarity(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of signature pairs (rows of the two arrays, or two signatures);
    an empty text's signature is similar to nothing, itself included."""
    same = (sig_a == sig_b) & (sig_a != _MAX32)
    return np.asarray(np.count_nonzero(same, axis=-1) / same.shape[-1])  # no float copy of the whole array


def stable_hash64(text: str) -> int:
    """A 64-bit hash of a string, the same in every process (blake2b)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def block_key(topic: str | None, place: str | None) -> int:
    """The block of a row: its topic and place key ('' for an unknown place, a block of its own)."""
    return stable_hash64(f"{topic or ''}\x1f{place or ''}")


def band_keys(sigs: np.ndarray, blocks: np.ndarray, bands: int) -> np.ndarray:
    """(rows x bands) uint64 keys: each band's signature values, the band number and the block, mixed.
    Empty texts' rows get key 0 in every band (callers skip key 0)."""
    n, num_perm = sigs.shape
    if num_perm % bands:
        raise ValueError(f"num_perm {num_perm} is not a multiple of bands {bands}")
    rows = num_perm // bands
    out = np.empty((n, bands), dtype=np.uint64)
    blocks = np.asarray(blocks, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(bands):
            h = _fmix64(blocks ^ np.uint64(j + 1) * np.uint64(0x9E3779B97F4A7C15))
            for c in range(j * rows, (j + 1) * rows):
                h = _fmix64(h ^ sigs[:, c].astype(np.uint64))
            out[:, j] = h | np.uint64(1)  # never 0
    empty = (sigs == _MAX32).all(axis=1)
    out[empty] = 0
    return out
