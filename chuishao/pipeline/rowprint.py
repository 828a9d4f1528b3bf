"""Fingerprints of training rows: which messages a model was trained on, kept as data (no texts).

A row's print is a 64-bit hash of its text normalised for matching: NFKC (full-width forms and
compatibility characters folded), and every white-space character removed (an export that
re-wraps or pads a message must still match). A model keeps the sorted, distinct prints of its
labelled training rows; ``chuishao test`` counts the test rows whose print is among them.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

import numpy as np

_SPACE = re.compile(r"\s+")


def match_text(text: str) -> str:
    """The form of a text that prints are taken of."""
    return _SPACE.sub("", unicodedata.normalize("NFKC", text or ""))


def row_print(text: str) -> int:
    """A text's 64-bit print (blake2b of its matching form)."""
    digest = hashlib.blake2b(match_text(text).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def row_prints(texts: Iterable[str]) -> np.ndarray:
    """The prints of ``texts`` in their order (uint64)."""
    return np.fromiter((row_print(t) for t in texts), dtype=np.uint64)


def print_set(texts: Iterable[str]) -> np.ndarray:
    """Sorted distinct prints: what a model keeps (the same texts always give the same array)."""
    return np.unique(row_prints(texts))


def seen(prints: np.ndarray, texts: Iterable[str]) -> np.ndarray:
    """Which ``texts`` have their print among the sorted ``prints``."""
    return np.isin(row_prints(texts), prints, assume_unique=False)
