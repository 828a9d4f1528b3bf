"""Serving-time speed-up of the linear scorers, applied to a loaded model without changing it on disk.

Why: ``LinearScorer.scores`` computes ``X @ coef.T``; ``coef.T`` is a Fortran-ordered view, and
scipy copies it into C order on *every* call (16 x 416k floats for the topics, 31 x 416k for
the sub-problems: ~19 ms of a ~40 ms single-message route on the real model). Keeping one
C-ordered copy makes a single message ~5x faster with identical scores. This belongs in
``whistle.models.classifier`` (reported to the lead); until it lands there the service patches
the instance, and checks on a probe that the answers do not change.
"""

from __future__ import annotations

import logging
from types import MethodType

import numpy as np
import scipy.sparse as sp

from whistle.models.classifier import WhistleClassifier

log = logging.getLogger("whistle.serve")

PROBE_TEXTS = ("小区楼下烧烤店每天营业到凌晨，油烟和噪音严重扰民。", "家门口的路灯坏了一个多月，晚上漆黑一片。")


def _fast_scores(self: object, X: sp.csr_matrix) -> np.ndarray:
    return np.asarray(X @ self._coef_t) + self.intercept  # type: ignore[attr-defined]


def speed_up(model: WhistleClassifier) -> bool:
    """Patch the scorers of ``model`` in place; False (and unpatched) if anything looks different."""
    scorers = [s for s in (getattr(model, "topic_model", None), getattr(model, "sub_model", None)) if s is not None]
    if not scorers or not all(hasattr(s, "coef") and hasattr(s, "intercept") for s in scorers):
        return False
    before = [a.model_dump() for a in model.route(list(PROBE_TEXTS))]
    for s in scorers:
        s._coef_t = np.ascontiguousarray(s.coef.T)
        s.scores = MethodType(_fast_scores, s)
    if [a.model_dump() for a in model.route(list(PROBE_TEXTS))] != before:
        for s in scorers:  # an instance attribute shadows the method: removing it restores the original
            del s.scores, s._coef_t
        log.warning("fast scoring path gave different answers; serving the model unchanged")
        return False
    return True
