"""WhistleClassifier: one object from raw text to a routed answer.

Normalisation, segmentation, features, the topic and sub-problem models, calibration and the
review threshold are fitted together and saved together, so training and serving never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

from whistle.config import WhistleConfig
from whistle.models.answer import Departments, RoutingAnswer, TopicScore
from whistle.models.calibration import fit_temperature, review_threshold, softmax
from whistle.pipeline.features import Doc, NgramTfidf
from whistle.pipeline.preprocess import TextPreprocessor
from whistle.taxonomy import Taxonomy

_PLACEHOLDERS = ("phone", "id", "card", "email")
_WORDLIKE = re.compile(r"^[\w\u4e00-\u9fff]+$")


class LinearScorer:
    """A fitted linear model stored compactly (float32); scores = X @ W.T + b."""

    def __init__(self, classes: Sequence[str], coef: np.ndarray, intercept: np.ndarray) -> None:
        self.classes = list(classes)
        self.coef = np.ascontiguousarray(coef, dtype=np.float32)
        self.intercept = np.asarray(intercept, dtype=np.float32)

    @classmethod
    def fit(cls, X: sp.csr_matrix, y: Sequence[str], weights: np.ndarray | None, C: float,
            class_weight: str | None, seed: int) -> LinearScorer:
        svc = LinearSVC(C=C, class_weight=class_weight, random_state=seed)
        svc.fit(X, y, sample_weight=weights)
        coef, intercept = svc.coef_, svc.intercept_
        if coef.shape[0] == 1:  # binary: sklearn keeps one row for the positive class
            coef = np.vstack([-coef, coef])
            intercept = np.array([-intercept[0], intercept[0]])
        return cls(svc.classes_.tolist(), coef, intercept)

    def scores(self, X: sp.csr_matrix) -> np.ndarray:
        return np.asarray(X @ self.coef.T) + self.intercept


class WhistleClassifier:
    """Estimator-style: ``fit(titles, texts, labels, subs, weights)``, ``predict_proba``, ``route``."""

    def __init__(self, config: WhistleConfig | None = None, taxonomy: Taxonomy | None = None) -> None:
        self.config = config or WhistleConfig()
        self.taxonomy = taxonomy
        self.metadata: dict[str, object] = {}

    # ---- features ---------------------------------------------------------------
    def _build(self) -> None:
        fc = self.config.features
        self.preprocessor = TextPreprocessor(self.config.text)
        per_block = None if fc.max_features is None else fc.max_features
        self.char_vectorizer = NgramTfidf("char", fc.char_ngrams, fc.min_df, fc.max_df, per_block)
        self.word_vectorizer = NgramTfidf("word", fc.word_ngrams, fc.min_df, fc.max_df, per_block)

    def docs(self, titles: Sequence[str | None], texts: Sequence[str]) -> list[Doc]:
        return self.preprocessor.docs(titles, texts)

    def features(self, docs: Sequence[Doc]) -> sp.csr_matrix:
        xc = self.char_vectorizer.transform(docs)
        xw = self.word_vectorizer.transform(docs)
        w = self.config.features.word_weight
        if w != 1.0:
            xw = xw * w
        return sp.hstack([xc, xw], format="csr")

    @property
    def feature_names(self) -> np.ndarray:
        if getattr(self, "_feature_names", None) is None:
            self._feature_names = np.concatenate([self.char_vectorizer.terms_, self.word_vectorizer.terms_])
        return self._feature_names

    # ---- training -----------------------------------------------------------------
    def fit(
        self,
        titles: Sequence[str | None],
        texts: Sequence[str],
        labels: Sequence[str],
        subs: Sequence[str | None] | None = None,
        weights: Sequence[float] | None = None,
        feature_docs: Sequence[Doc] = (),
    ) -> WhistleClassifier:
        """Fit everything. ``feature_docs`` (unlabelled messages) only widen the vocabulary and idf."""
        if self.taxonomy is None:
            self.taxonomy = Taxonomy.free(labels)
        self._build()
        cc = self.config.classifier
        docs = self.docs(titles, texts)
        all_docs = list(docs) + list(feature_docs)
        self.char_vectorizer.fit(all_docs)
        self.word_vectorizer.fit(all_docs)
        self._feature_names = None
        X = self.features(docs)
        y = np.asarray(labels)
        w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
        self.topic_model = LinearScorer.fit(X, y, w, cc.C, cc.class_weight, self.config.seed)
        self.classes_ = self.topic_model.classes
        self._fit_calibration(X, y, w)
        self._fit_subs(X, y, subs, w)
        return self

    def _fit_calibration(self, X: sp.csr_matrix, y: np.ndarray, w: np.ndarray) -> None:
        cc = self.config.classifier
        counts = np.unique(y, return_counts=True)[1]
        folds = max(2, min(cc.calibration_folds, int(counts.min())))
        skf = StratifiedKFold(folds, shuffle=True, random_state=self.config.seed)
        oof = np.zeros((len(y), len(self.classes_)), dtype=np.float32)
        index = {c: i for i, c in enumerate(self.classes_)}
        for train_idx, held_idx in skf.split(X, y):
            m = LinearScorer.fit(X[train_idx], y[train_idx], w[train_idx], cc.C, cc.class_weight, self.config.seed)
            cols = [index[c] for c in m.classes]
            part = np.full((len(held_idx), len(self.classes_)), -10.0, dtype=np.float32)
            part[:, cols] = m.scores(X[held_idx])
            oof[held_idx] = part
        y_idx = np.array([index[c] for c in y])
        self.temperature_ = fit_temperature(oof, y_idx)
        proba = softmax(oof, self.temperature_)
        confidence = proba.max(axis=1)
        correct = proba.argmax(axis=1) == y_idx
        self.review_threshold_ = review_threshold(confidence, correct, self.config.review.target_precision)
        self.heldout_ = {
            "folds": folds,
            "accuracy": float(correct.mean()),
            "review_threshold": self.review_threshold_,
            "review_share": float((confidence < self.review_threshold_).mean()),
            "accuracy_when_sure": float(correct[confidence >= self.review_threshold_].mean())
            if (confidence >= self.review_threshold_).any() else None,
            "temperature": self.temperature_,
        }

    def _fit_subs(self, X: sp.csr_matrix, y: np.ndarray, subs: Sequence[str | None] | None, w: np.ndarray) -> None:
        self.sub_model = None
        if subs is None or self.taxonomy.is_free:
            return
        s = np.asarray([x or "" for x in subs], dtype=object)
        rows = np.nonzero(s != "")[0]
        if len(set(s[rows])) < 2:
            return
        self.sub_model = LinearScorer.fit(X[rows], s[rows].astype(str), w[rows],
                                          self.config.classifier.sub_C, None, self.config.seed)

    # ---- prediction ---------------------------------------------------------------
    def decision_scores(self, X: sp.csr_matrix) -> np.ndarray:
        return self.topic_model.scores(X)

    def predict_proba_docs(self, X: sp.csr_matrix) -> np.ndarray:
        return softmax(self.decision_scores(X), self.temperature_)

    def predict_proba(self, texts: Sequence[str], titles: Sequence[str | None] | None = None) -> np.ndarray:
        titles = titles if titles is not None else [None] * len(texts)
        return self.predict_proba_docs(self.features(self.docs(titles, texts)))

    def predict(self, texts: Sequence[str], titles: Sequence[str | None] | None = None) -> list[str]:
        proba = self.predict_proba(texts, titles)
        return [self.classes_[i] for i in proba.argmax(axis=1)]

    def route(
        self,
        texts: Sequence[object],
        titles: Sequence[str | None] | None = None,
        ids: Sequence[str | None] | None = None,
    ) -> list[RoutingAnswer]:
        """Routing answers in input order; a message that cannot be classified gets ``error``."""
        n = len(texts)
        titles = titles if titles is not None else [None] * n
        ids = ids if ids is not None else [None] * n
        version = self.version
        answers: list[RoutingAnswer | None] = [None] * n
        good: list[int] = []
        for i, (title, text) in enumerate(zip(titles, texts)):
            problem = self.preprocessor.problem(title, text)
            if problem is None:
                good.append(i)
            else:
                answers[i] = RoutingAnswer(id=ids[i], error=problem, model_version=version)
        if good:
            X = self.features(self.docs([titles[i] for i in good], [texts[i] for i in good]))  # type: ignore[misc]
            proba = self.predict_proba_docs(X)
            sub_scores = self.sub_model.scores(X) if self.sub_model is not None else None
            for row, i in enumerate(good):
                answers[i] = self._answer(X, row, proba[row], sub_scores, ids[i], version)
        return answers  # type: ignore[return-value]

    def _answer(self, X: sp.csr_matrix, row: int, proba: np.ndarray, sub_scores: np.ndarray | None,
                id_: str | None, version: str) -> RoutingAnswer:
        tax = self.taxonomy
        k = self.config.review.top_k
        order = np.argsort(-proba)[:k]
        best = int(order[0])
        topic = self.classes_[best]
        sub = self._best_sub(topic, sub_scores[row] if sub_scores is not None else None)
        area = tax.area(topic)
        confidence = float(proba[best])
        return RoutingAnswer(
            id=id_,
            topic=topic,
            topic_name=tax.name_of(topic),
            area=area.name if area else None,
            sub=sub,
            sub_name=tax.name_of(sub) if sub else None,
            confidence=round(confidence, 4),
            needs_review=confidence < self.review_threshold_,
            top=[TopicScore(topic=self.classes_[j], topic_name=tax.name_of(self.classes_[j]),
                            score=round(float(proba[j]), 4)) for j in order],
            departments=Departments(**tax.departments(topic)),
            evidence=self.evidence(X, row, best),
            model_version=version,
        )

    def _best_sub(self, topic: str, scores: np.ndarray | None) -> str | None:
        if scores is None:
            return None
        allowed = [c for c in self.taxonomy.subs_of(topic) if c in self.sub_model.classes]
        if not allowed:
            return None
        index = {c: i for i, c in enumerate(self.sub_model.classes)}
        return max(allowed, key=lambda c: scores[index[c]])

    def evidence(self, X: sp.csr_matrix, row: int, class_idx: int) -> list[str]:
        """Words of this message that pushed hardest towards the chosen topic.

        Whole words (and word pairs) read better than character n-grams; these fill in only
        when too few words point the same way.
        """
        limit = self.config.review.evidence_terms
        if limit == 0:
            return []
        start, end = X.indptr[row], X.indptr[row + 1]
        cols = X.indices[start:end]
        contrib = X.data[start:end] * self.topic_model.coef[class_idx, cols]
        is_word = cols >= self.char_vectorizer.terms_.shape[0]
        picked: list[str] = []
        for block in (is_word, ~is_word):
            self._pick_terms(cols[block], contrib[block], limit, picked)
            if len(picked) >= limit:
                break
        return picked

    def _pick_terms(self, cols: np.ndarray, contrib: np.ndarray, limit: int, picked: list[str]) -> None:
        want = min(contrib.shape[0], limit * 4)
        if want == 0:
            return
        top = np.argpartition(-contrib, want - 1)[:want]
        for j in top[np.argsort(-contrib[top])]:
            if contrib[j] <= 0 or len(picked) >= limit:
                return
            term = str(self.feature_names[cols[j]])
            if len(term) < 2 or not _WORDLIKE.match(term) or term in _PLACEHOLDERS:
                continue
            if any(term in p or p in term for p in picked):
                continue
            picked.append(term)

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", "unsaved"))
