"""Calibrated probabilities and the review threshold, both fitted on held-out scores."""

from __future__ import annotations

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
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (confidence > lo) & (confidence <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - confidence[m].mean())
    return float(ece)
