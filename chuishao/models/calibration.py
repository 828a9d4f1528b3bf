"""Calibrated probabilities and the review threshold, both fitted on held-out scores."""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import minimize_scalar


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = scores / temperature
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    return z / z.sum(axis=1, keepdims=True)


def fit_temperature(scores: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising held-out log-loss; keeps the ranking (and argmax) intact."""

    def nll(log_t: float) -> float:
        p = softmax(scores, float(np.exp(log_t)))
        return -float(np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))

    res = minimize_scalar(nll, bounds=(np.log(0.01), np.log(10.0)), method="bounded")
    return float(np.exp(res.x))


def macro_f1_from_predictions(pred: np.ndarray, y: np.ndarray, n_classes: int) -> float:
    """Macro-F1 over the classes present in ``y`` or ``pred`` (as sklearn's f1_score(average="macro"))."""
    tp = np.bincount(y[pred == y], minlength=n_classes)
    n_pred = np.bincount(pred, minlength=n_classes)
    n_true = np.bincount(y, minlength=n_classes)
    present = (n_pred + n_true) > 0
    f1 = 2 * tp[present] / (n_pred[present] + n_true[present])
    return float(f1.mean())


def fit_class_bias(scores: np.ndarray, y: np.ndarray, step: float = 0.05, reach: float = 1.0,
                   passes: int = 3, shrink: float = 1.0, accuracy_weight: float = 0.0) -> np.ndarray:
    """Per-class offsets added to the scores that maximise held-out macro-F1, plus
    ``accuracy_weight`` x accuracy (threshold moving).

    A linear model trained on a few rare-class examples gives them high precision and low
    recall; raising their offset trades a little of the first for much of the second. Coordinate
    ascent over a grid; ties keep the offset nearest to zero. ``shrink`` < 1 pulls the offsets
    toward zero, against fitting the held-out noise of classes with a dozen examples.
    """
    n_classes = scores.shape[1]

    def objective(pred: np.ndarray) -> float:
        return macro_f1_from_predictions(pred, y, n_classes) + accuracy_weight * float((pred == y).mean())

    bias = np.zeros(n_classes, dtype=scores.dtype)
    grid = np.round(np.arange(-reach, reach + step / 2, step), 6)
    grid = grid[np.argsort(np.abs(grid), kind="stable")]  # try offsets nearest to zero first
    best = objective((scores + bias).argmax(axis=1))
    for _ in range(passes):
        changed = False
        for c in range(n_classes):
            keep = bias[c]
            for offset in grid:
                bias[c] = offset
                value = objective((scores + bias).argmax(axis=1))
                if value > best + 1e-9:
                    best, keep, changed = value, offset, True
            bias[c] = keep
        if not changed:
            break
    return (bias * shrink).astype(scores.dtype)


def review_threshold(confidence: np.ndarray, correct: np.ndarray, target_precision: float) -> float:
    """Lowest confidence t such that held-out answers with confidence >= t are right at
    least ``target_precision`` of the time; answers below t need an operator's decision."""
    order = np.argsort(-confidence, kind="stable")
    conf_sorted = confidence[order]
    running = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    ok = np.nonzero(running >= target_precision)[0]
    if ok.size == 0:
        return 1.0
    return float(conf_sorted[ok[-1]])


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        m = (confidence > lo) & (confidence <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - confidence[m].mean())
    return float(ece)
