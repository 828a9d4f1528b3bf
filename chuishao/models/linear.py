"""Linear scorers stored compactly and laid out for fast scoring."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.svm import LinearSVC


def fit_svc(X: sp.csr_matrix, y: np.ndarray, weights: np.ndarray | None, C: float,
            class_weight: str | None, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """LinearSVC weights as (classes, coef [n_classes, n_features], intercept)."""
    svc = LinearSVC(C=C, class_weight=class_weight, random_state=seed)
    svc.fit(X, y, sample_weight=weights)
    coef, intercept = svc.coef_, svc.intercept_
    if coef.shape[0] == 1:  # binary: sklearn keeps one row, for the second class
        coef = np.vstack([-coef, coef])
        intercept = np.array([-intercept[0], intercept[0]])
    return svc.classes_.tolist(), coef, intercept


def prune(coef: np.ndarray, quantile: float) -> np.ndarray:
    """Zero the smallest weights (by magnitude, below ``quantile``): the saved model shrinks
    several-fold while predictions barely move (99.6 % agreement at 0.9 on the corpus)."""
    if quantile <= 0:
        return coef
    magnitude = np.abs(coef)
    nonzero = magnitude[magnitude > 0]
    if nonzero.size == 0:
        return coef
    # quantile of the non-zero weights: sub-problem models are mostly exact zeros already
    threshold = np.quantile(nonzero, quantile)
    return np.where(np.abs(coef) >= threshold, coef, 0.0)


def _pack(matrix: sp.spmatrix | np.ndarray) -> dict[str, object]:
    """Sparse weights with half-precision values (~3 significant digits) for saving."""
    csr = sp.csr_matrix(matrix)
    return {"shape": csr.shape, "data": csr.data.astype(np.float16), "indices": csr.indices, "indptr": csr.indptr}


def _unpack(packed: dict[str, object]) -> sp.csr_matrix:
    return sp.csr_matrix((packed["data"].astype(np.float32), packed["indices"], packed["indptr"]),  # type: ignore[union-attr]
                         shape=packed["shape"])


class LinearScorer:
    """scores = X @ W + b with W kept as one C-ordered [n_features, n_classes] array.

    Why this layout: ``X @ coef.T`` on sklearn's [n_classes, n_features] array makes scipy copy
    the whole transposed matrix on every call (~19 ms a message on the real model).
    On disk W is stored sparse (pruned weights are exact zeros).
    """

    def __init__(self, classes: Sequence[str], coef: np.ndarray, intercept: np.ndarray) -> None:
        self.classes = list(classes)
        self.weights = np.ascontiguousarray(np.asarray(coef, dtype=np.float32).T)
        self.intercept = np.asarray(intercept, dtype=np.float32)

    @classmethod
    def fit(cls, X: sp.csr_matrix, y: Sequence[str], weights: np.ndarray | None, C: float,
            class_weight: str | None, seed: int, prune_quantile: float = 0.0) -> LinearScorer:
        classes, coef, intercept = fit_svc(X, np.asarray(y), weights, C, class_weight, seed)
        return cls(classes, prune(coef, prune_quantile), intercept)

    def scores(self, X: sp.csr_matrix) -> np.ndarray:
        return np.asarray(X @ self.weights) + self.intercept

    def __getstate__(self) -> dict[str, object]:
        return {"classes": self.classes, "weights": _pack(self.weights), "intercept": self.intercept}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.classes = state["classes"]  # type: ignore[assignment]
        self.weights = np.ascontiguousarray(_unpack(state["weights"]).toarray())  # type: ignore[arg-type]
        self.intercept = state["intercept"]  # type: ignore[assignment]


class SparseScorer:
    """A small scorer (a topic's 2-3 sub-problems) whose weights are mostly zero: kept sparse.

    Trained only on that topic's messages, LinearSVC gives exact zeros to every feature that
    never occurs in them, so sparse storage costs a fraction of a dense matrix.
    """

    def __init__(self, classes: Sequence[str], coef: np.ndarray, intercept: np.ndarray) -> None:
        self.classes = list(classes)
        # CSR [n_features, n_classes]: ``X @ W`` with CSR X multiplies directly; a CSC W would be
        # converted to CSR (a full transposition) on every call.
        self.weights = sp.csr_matrix(np.asarray(coef, dtype=np.float32).T)
        self.intercept = np.asarray(intercept, dtype=np.float32)

    def __getstate__(self) -> dict[str, object]:
        return {"classes": self.classes, "weights": _pack(self.weights), "intercept": self.intercept}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.classes = state["classes"]  # type: ignore[assignment]
        self.weights = _unpack(state["weights"]).tocsr()  # type: ignore[arg-type]
        self.intercept = state["intercept"]  # type: ignore[assignment]

    def scores(self, X: sp.csr_matrix) -> np.ndarray:
        return np.asarray((X @ self.weights).toarray()) + self.intercept
