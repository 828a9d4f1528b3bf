"""Active learning: which unlabelled messages are most worth labelling next (`chuishao suggest-labels`).

1. **Eligible rows.** Unreadable rows and texts the model refuses (empty, not Chinese, too long) are
   counted, never picked. Rows already labelled are skipped: an id or a text (matching form) of the
   ``labelled`` files, or a text the model was trained on (its training-row prints). Of identical
   texts in the pool only the first is eligible.
2. **Score** = uncertainty + ``rare_weight`` x rarity. Uncertainty comes from the model's calibrated
   probabilities: ``margin`` (1 - (p1 - p2)) or ``entropy`` (normalised to 0..1). Rarity is the
   probability-weighted rarity of the message's top 3 topics, a topic's rarity being
   log(n_max / n) / log(n_max / n_min) over the model's training rows per topic (``label_counts``
   in its manifest; a model saved before that was kept: the pool's predicted topics stand in).
   A message that may belong to a rare topic is worth more: those are the topics a model gets wrong.
3. **Diversity.** The ``candidates`` x n best-scored rows are taken greedily by maximal marginal
   relevance: each pick maximises (1 - diversity) x score - diversity x its highest cosine similarity
   to a row already picked, on TF-IDF of hashed character 1-3-grams. Near copies (character 5-gram
   Jaccard >= 0.9, the check of `chuishao check`) of a labelled text or of a better-scored candidate
   are dropped first: labelling the same complaint twice teaches little.

``seed`` orders rows of equal score; the rest is deterministic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

from chuishao.analysis.checks import matching_form, near_pairs
from chuishao.io.records import InputRecord
from chuishao.models.cascade import RoutingModel
from chuishao.pipeline.rowprint import row_prints

Strategy = Literal["margin", "entropy"]
NEAR = 0.9  # near copies, as chuishao check finds them
_BATCH = 2048  # rows scored at a time (memory stays flat on a large pool)


@dataclass
class Pick:
    rank: int
    id: str
    title: str | None
    text: str
    top: list[tuple[str, float]]  # the model's top 3 (code, calibrated probability)
    uncertainty: float
    rarity: float
    score: float


@dataclass
class Selection:
    picks: list[Pick]
    figures: dict[str, object] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # unreadable pool rows (first few), said on stderr


def uncertainty(proba: np.ndarray, strategy: Strategy) -> np.ndarray:
    """0 (sure) .. 1 (no idea) per row of calibrated probabilities."""
    if strategy == "entropy":
        p = np.clip(proba, 1e-12, 1.0)
        return (-(p * np.log(p)).sum(axis=1) / np.log(proba.shape[1])).astype(float)
    top2 = -np.partition(-proba, 1, axis=1)[:, :2]
    return (1.0 - (top2[:, 0] - top2[:, 1])).astype(float)


def topic_rarity(counts: dict[str, int], classes: Sequence[str]) -> np.ndarray:
    """Per class: 1 for the rarest topic, 0 for the most common, log-scaled between (a topic absent
    from ``counts`` counts as 1 row)."""
    n = np.array([max(int(counts.get(c, 0)), 1) for c in classes], dtype=float)
    spread = np.log(n.max() / n.min())
    return np.zeros(len(n)) if spread == 0 else np.log(n.max() / n) / spread


def _known_texts(labelled: Sequence[InputRecord]) -> tuple[set[str], set[str]]:
    ids = {r.id for r in labelled}
    forms = {matching_form(r.text) for r in labelled if isinstance(r.text, str)}
    return ids, forms - {""}


def _diverse(texts: list[str], scores: np.ndarray, n: int, diversity: float) -> list[int]:
    """Greedy maximal marginal relevance over ``texts`` (positions, in the order picked)."""
    if len(texts) <= n and diversity == 0:
        return list(np.argsort(-scores, kind="stable"))
    hashed = HashingVectorizer(analyzer="char", ngram_range=(1, 3), n_features=2**18, alternate_sign=False, norm=None)
    x = TfidfTransformer().fit_transform(hashed.transform(texts))  # rows L2-normalised
    sim = (x @ x.T).toarray()
    span = scores.max() - scores.min()
    relevance = (scores - scores.min()) / span if span > 0 else np.ones(len(scores))
    closest = np.zeros(len(texts))
    free = np.ones(len(texts), dtype=bool)
    order: list[int] = []
    for _ in range(min(n, len(texts))):
        value = np.where(free, (1 - diversity) * relevance - diversity * closest, -np.inf)
        best = int(np.argmax(value))
        order.append(best)
        free[best] = False
        closest = np.maximum(closest, sim[best])
    return order


def select(model: RoutingModel, pool: Sequence[InputRecord], n: int, *, labelled: Sequence[InputRecord] = (),
           strategy: Strategy = "margin", rare_weight: float = 0.5, diversity: float = 0.3, candidates: int = 5,
           seed: int = 0) -> Selection:
    """The ``n`` pool messages most worth labelling, best first (see the module's doc)."""
    if n < 1:
        raise ValueError(f"-n must be at least 1, got {n}")
    if not 0 <= diversity <= 1:
        raise ValueError(f"diversity must be within 0..1, got {diversity}")
    figures: Counter[str] = Counter(pool_rows=len(pool))  # counts; ``info`` the rest
    info: dict[str, object] = {}
    problems: list[str] = []
    known_ids, known_forms = _known_texts(labelled)
    trained = getattr(model, "training_rows_", None)  # a cascade keeps no prints: that check is skipped
    preprocessor = getattr(model, "preprocessor", None)
    seen_forms: set[str] = set()
    rows: list[InputRecord] = []
    for rec in pool:
        if rec.error or not isinstance(rec.text, str):
            figures["unreadable"] += 1
            problems.append(rec.error or f"row {rec.row}: no text")
            continue
        if preprocessor is not None and preprocessor.problem(rec.text, title=rec.title) is not None:
            figures["not_classifiable"] += 1
            continue
        form = matching_form(rec.text)
        if rec.id in known_ids or form in known_forms:
            figures["already_labelled"] += 1
            continue
        if form in seen_forms:
            figures["duplicates"] += 1
            continue
        seen_forms.add(form)
        rows.append(rec)
    if trained is not None and len(rows):
        was_trained = np.isin(row_prints(r.text for r in rows), trained)  # type: ignore[misc]
        figures["trained_on"] = int(was_trained.sum())
        rows = [r for r, t in zip(rows, was_trained.tolist(), strict=True) if not t]
    figures["eligible"] = len(rows)
    if not rows:
        return Selection([], {**figures, "picked": 0}, problems)
    classes = list(model.classes_)
    proba = np.vstack([model.predict_proba([r.text for r in rows[i:i + _BATCH]],  # type: ignore[misc]
                                           titles=[r.title for r in rows[i:i + _BATCH]])
                       for i in range(0, len(rows), _BATCH)])
    counts = model.metadata.get("label_counts")
    if isinstance(counts, dict) and counts:
        info["rarity_from"] = "training label_counts"
    else:  # an older model: how often the pool's messages are given each topic stands in
        counts = Counter(classes[i] for i in proba.argmax(axis=1))
        info["rarity_from"] = "pool predictions (the model keeps no label_counts)"
    rarity_of = topic_rarity(counts, classes)
    top3 = np.argsort(-proba, axis=1)[:, :3]
    top_p = np.take_along_axis(proba, top3, axis=1)
    unsure = uncertainty(proba, strategy)
    rare = (top_p * rarity_of[top3]).sum(axis=1) / np.maximum(top_p.sum(axis=1), 1e-12)
    score = unsure + rare_weight * rare
    # equal scores in a seeded random order; otherwise best first
    tiebreak = np.random.default_rng(seed).permutation(len(rows))
    best = np.lexsort((tiebreak, -score))[: max(n, candidates * n)]
    ranked = _without_near_copies(best, rows, labelled, figures)
    chosen = [ranked[i] for i in _diverse([str(rows[i].text) for i in ranked], score[ranked], n, diversity)]
    picks = [Pick(rank=k + 1, id=rows[i].id, title=rows[i].title, text=str(rows[i].text),
                  top=[(classes[j], round(float(p), 4)) for j, p in zip(top3[i], top_p[i], strict=True)],
                  uncertainty=round(float(unsure[i]), 4), rarity=round(float(rare[i]), 4), score=round(float(score[i]), 4))
             for k, i in enumerate(chosen)]
    figures["picked"] = len(picks)
    info["picked_by_top_topic"] = dict(sorted(Counter(p.top[0][0] for p in picks).items()))
    return Selection(picks, {**figures, **info}, problems)


def _without_near_copies(ranked: np.ndarray, rows: list[InputRecord], labelled: Sequence[InputRecord],
                         figures: Counter[str]) -> list[int]:
    """Candidates (best first) without near copies of a labelled text or of a better candidate."""
    forms = [matching_form(str(rows[i].text)) for i in ranked]
    known = [matching_form(r.text) for r in labelled if isinstance(r.text, str)]
    side = [0] * len(forms) + [1] * len(known)
    drop: set[int] = set()
    for a, b, _ in near_pairs(forms + known, side, NEAR):  # a < b
        if a >= len(forms):  # two labelled texts
            continue
        drop.add(a if b >= len(forms) else b)  # a candidate near a labelled text; of two candidates the lower-scored
    figures["near_copies"] = len(drop)
    return [int(i) for k, i in enumerate(ranked) if k not in drop]
