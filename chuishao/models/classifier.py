"""ChuishaoClassifier: one object from raw text to a routed answer.

Normalisation, segmentation, features, the topic and sub-problem models, calibration and the
review threshold are fitted together and saved together, so training and serving never disagree.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import StratifiedKFold

from chuishao.config import ChuishaoConfig
from chuishao.models.answer import RoutingAnswer, answer_dict, error_answer
from chuishao.models.calibration import (
    fit_class_bias,
    fit_temperature,
    macro_f1_from_predictions,
    review_threshold,
    softmax,
)
from chuishao.models.evidence import top_candidates
from chuishao.models.linear import LinearScorer, SparseScorer, fit_svc, prune
from chuishao.pipeline.doc import Doc
from chuishao.pipeline.features import NgramTfidf
from chuishao.pipeline.ngram_kernels import MIN_BATCH
from chuishao.pipeline.preprocess import TextPreprocessor
from chuishao.pipeline.rowprint import print_set
from chuishao.taxonomy import Taxonomy

_PLACEHOLDERS = ("phone", "id", "card", "email")
_WORDLIKE = re.compile(r"^[\w\u4e00-\u9fff]+$")


def _in_placeholder(term: str) -> bool:
    """Whether a term is a mask placeholder or a piece of one ("hon" of <phone>, "ard" of <card>):
    character n-grams cut placeholders into pieces that mean nothing to an operator."""
    return any(term in placeholder for placeholder in _PLACEHOLDERS)


# (input positions of the messages that passed the checks, their classical probabilities) ->
# (the probabilities answers are built from, the review threshold they are judged by)
Rescore = Callable[[list[int], np.ndarray], tuple[np.ndarray, float]]

WARM_UP_TEXTS = ("小区楼下烧烤店每天营业到凌晨，油烟和噪音严重扰民。", "家门口的路灯坏了一个多月，晚上漆黑一片。")


class ChuishaoClassifier:
    """Estimator-style: ``fit(texts, labels, *, titles, subs, weights)``, ``predict_proba(texts, *,
    titles)``, ``route(texts, *, titles, ids)``: texts first, the rest by keyword."""

    def __init__(self, config: ChuishaoConfig | None = None, taxonomy: Taxonomy | None = None,
                 preprocessor: TextPreprocessor | None = None) -> None:
        self.config = config or ChuishaoConfig()
        self._taxonomy = taxonomy  # None: fit makes a free one of the labels it sees
        # ready before fit: training turns unlabelled texts into docs with it first
        self.preprocessor = preprocessor or TextPreprocessor(self.config.text)
        self.metadata: dict[str, object] = {}
        # sorted prints of the labelled training rows (pipeline.rowprint); None: not known (older models)
        self.training_rows_: np.ndarray | None = None
        self._displayable: np.ndarray | None = None

    @property
    def taxonomy(self) -> Taxonomy:
        """The taxonomy answers are routed by: the one given, else (after ``fit``) the labels' own."""
        if self._taxonomy is None:
            raise NotFittedError("the classifier has no taxonomy before fit (none was given)")
        return self._taxonomy

    @taxonomy.setter
    def taxonomy(self, taxonomy: Taxonomy) -> None:
        self._taxonomy = taxonomy

    # ---- features ---------------------------------------------------------------
    def docs(self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None) -> list[Doc]:
        return self.preprocessor.docs(texts, titles=titles)

    def features(self, docs: Sequence[Doc]) -> sp.csr_matrix:
        xc = self.char_vectorizer.transform(docs)
        xw = self.word_vectorizer.transform(docs)
        w = self.config.features.word_weight
        if w != 1.0:
            xw = xw * w
        return sp.hstack([xc, xw], format="csr")  # row by row, entry order kept: no re-sort

    def feature_names(self, columns: np.ndarray) -> list[str]:
        """The n-grams behind columns of ``features()``: the char block first, then the words."""
        n_char = len(self.char_vectorizer.terms_)
        is_char = columns < n_char
        names: list[str] = [""] * columns.shape[0]
        for mask, table, offset in ((is_char, self.char_vectorizer.terms_, 0), (~is_char, self.word_vectorizer.terms_, n_char)):
            where = np.nonzero(mask)[0]
            for k, term in zip(where.tolist(), table.take(columns[where] - offset), strict=True):
                names[k] = term
        return names

    # ---- training -----------------------------------------------------------------
    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        titles: Sequence[str | None] | None = None,
        subs: Sequence[str | None] | None = None,
        weights: Sequence[float] | None = None,
        unlabelled: Sequence[Doc] = (),
        calibration_rows: Sequence[bool] | None = None,
    ) -> ChuishaoClassifier:
        """Fit everything. ``unlabelled`` messages are pseudo-labelled by a first model and added
        at ``classifier.self_training_weight`` (self-training: +0.3 points accuracy in CV).
        ``calibration_rows`` marks the rows whose out-of-fold scores set the temperature and the
        review threshold (default: all)."""
        if self._taxonomy is None:
            self._taxonomy = Taxonomy.free(labels)
        fc = self.config.features
        self.char_vectorizer = NgramTfidf("char", fc.char_ngrams, fc.min_df, fc.max_df, fc.max_features)
        self.word_vectorizer = NgramTfidf("word", fc.word_ngrams, fc.min_df, fc.max_df, fc.max_features)
        docs = self.docs(texts, titles=titles)
        self.char_vectorizer.fit(docs)
        self.word_vectorizer.fit(docs)
        self._displayable = None
        X = self.features(docs)
        y = np.asarray(labels)
        w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
        pseudo = self._pseudo_labelled(X, y, w, unlabelled)
        self.topic_model = self._fit_topics(X, y, w, pseudo)
        self.classes_ = self.topic_model.classes
        calibrate = np.ones(len(y), dtype=bool) if calibration_rows is None else np.asarray(calibration_rows, dtype=bool)
        self._fit_calibration(X, y, w, pseudo, calibrate)
        self._fit_subs(X, y, subs, w)
        self.training_summary_ = {"labelled": len(y), "pseudo_labelled": 0 if pseudo is None else int(pseudo[0].shape[0])}
        # which messages it learned from, as prints (chuishao test warns when its rows are among them)
        self.training_rows_ = print_set(texts)
        return self

    def _pseudo_labelled(self, X: sp.csr_matrix, y: np.ndarray, w: np.ndarray,
                         unlabelled: Sequence[Doc]) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray] | None:
        cc = self.config.classifier
        if not len(unlabelled) or cc.self_training_weight <= 0:
            return None
        Xu = self.features(unlabelled)
        first = LinearScorer.fit(X, y, w, cc.C, cc.class_weight, self.config.seed)
        yu = np.asarray(first.classes)[first.scores(Xu).argmax(axis=1)]
        return Xu, yu, np.full(len(yu), cc.self_training_weight)

    def _fit_topics(self, X: sp.csr_matrix, y: np.ndarray, w: np.ndarray,
                    pseudo: tuple[sp.csr_matrix, np.ndarray, np.ndarray] | None) -> LinearScorer:
        cc = self.config.classifier
        if pseudo is not None:
            X = sp.vstack([X, pseudo[0]], format="csr")
            y = np.concatenate([y, pseudo[1]])
            w = np.concatenate([w, pseudo[2]])
        return LinearScorer.fit(X, y, w, cc.C, cc.class_weight, self.config.seed, cc.prune_quantile)

    def _fit_calibration(self, X: sp.csr_matrix, y: np.ndarray, w: np.ndarray,
                         pseudo: tuple[sp.csr_matrix, np.ndarray, np.ndarray] | None, calibrate: np.ndarray) -> None:
        """Class offsets (folded into the topic intercepts), temperature and review threshold, all
        from out-of-fold scores of the labelled rows marked ``calibrate``."""
        cc = self.config.classifier
        counts = np.unique(y, return_counts=True)[1]
        folds = max(2, min(cc.calibration_folds, int(counts.min())))
        skf = StratifiedKFold(folds, shuffle=True, random_state=self.config.seed)
        oof = np.zeros((len(y), len(self.classes_)), dtype=np.float32)
        index = {c: i for i, c in enumerate(self.classes_)}
        with warnings.catch_warnings():  # a class rarer than the folds: chuishao check and train's rare list say so
            warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
            splits = list(skf.split(X, y))
        for train_idx, held_idx in splits:
            m = self._fit_topics(X[train_idx], y[train_idx], w[train_idx], pseudo)
            part = np.full((len(held_idx), len(self.classes_)), -10.0, dtype=np.float32)
            part[:, [index[c] for c in m.classes]] = m.scores(X[held_idx])
            oof[held_idx] = part
        oof, y_idx = oof[calibrate], np.array([index[c] for c in y[calibrate]])
        bias = np.zeros(len(self.classes_), dtype=np.float32)
        if cc.class_bias_shrink > 0:
            bias = fit_class_bias(oof, y_idx, shrink=cc.class_bias_shrink,
                                  accuracy_weight=cc.class_bias_accuracy_weight)
            oof = oof + bias
            self.topic_model.intercept = self.topic_model.intercept + bias
        self.temperature_ = fit_temperature(oof, y_idx)
        proba = softmax(oof, self.temperature_)
        confidence = proba.max(axis=1)
        correct = proba.argmax(axis=1) == y_idx
        self.review_threshold_ = review_threshold(confidence, correct, self.config.review.target_precision)
        sure = confidence >= self.review_threshold_
        self.heldout_ = {
            "folds": folds,
            "rows": int(calibrate.sum()),
            "accuracy": round(float(correct.mean()), 4),
            "macro_f1": round(macro_f1_from_predictions(proba.argmax(axis=1), y_idx, len(self.classes_)), 4),
            "review_threshold": round(self.review_threshold_, 4),
            "review_share": round(float((~sure).mean()), 4),
            "accuracy_when_sure": round(float(correct[sure].mean()), 4) if sure.any() else None,
            "temperature": round(self.temperature_, 4),
            "class_bias": {c: round(float(b), 3) for c, b in zip(self.classes_, bias, strict=True) if b != 0},
        }

    def _fit_subs(self, X: sp.csr_matrix, y: np.ndarray, subs: Sequence[str | None] | None, w: np.ndarray) -> None:
        """One small sub-problem model per topic, trained on that topic's messages only."""
        self.sub_models: dict[str, SparseScorer] = {}
        if subs is None or self.taxonomy.is_free:
            return
        s = np.asarray([x or "" for x in subs], dtype=object)
        for topic in self.classes_:
            rows = np.nonzero((y == topic) & (s != ""))[0]
            codes = sorted(set(s[rows]))
            if len(codes) < 2:
                if len(codes) == 1:  # only one sub-problem seen: it is the answer
                    self.sub_models[topic] = SparseScorer(codes, np.zeros((1, X.shape[1])), np.zeros(1))
                continue
            classes, coef, intercept = fit_svc(X[rows], s[rows].astype(str), w[rows],
                                               self.config.classifier.sub_C, None, self.config.seed)
            self.sub_models[topic] = SparseScorer(classes, prune(coef, self.config.classifier.prune_quantile), intercept)

    # ---- prediction ---------------------------------------------------------------
    def decision_scores(self, X: sp.csr_matrix) -> np.ndarray:
        return self.topic_model.scores(X)

    def predict_proba_features(self, X: sp.csr_matrix) -> np.ndarray:
        """Probabilities of the rows of a ``features()`` matrix."""
        return softmax(self.decision_scores(X), self.temperature_)

    def predict_proba(self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None) -> np.ndarray:
        return self.predict_proba_features(self.features(self.docs(texts, titles=titles)))

    def predict(self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None) -> list[str]:
        proba = self.predict_proba(texts, titles=titles)
        return [self.classes_[i] for i in proba.argmax(axis=1)]

    def warm_up(self) -> None:
        """Build the lazily built parts (segmenter dictionary, n-gram lookup tables, compiled
        kernels) now, so the first real message is not the slow one. Both the single-message and
        the batch path run: batches of MIN_BATCH or more use the compiled kernels."""
        self.route(list(WARM_UP_TEXTS))
        self.route([WARM_UP_TEXTS[i % len(WARM_UP_TEXTS)] for i in range(MIN_BATCH)])

    def route(
        self,
        texts: Sequence[object],
        *,
        titles: Sequence[str | None] | None = None,
        ids: Sequence[str | None] | None = None,
    ) -> list[RoutingAnswer]:
        """Routing answers in input order; a message that cannot be classified gets ``error``."""
        return [RoutingAnswer(**a) for a in self.route_dicts(texts, titles=titles, ids=ids)]

    def route_dicts(
        self,
        texts: Sequence[object],
        *,
        titles: Sequence[str | None] | None = None,
        ids: Sequence[str | None] | None = None,
        rescore: Rescore | None = None,
        version: str | None = None,
    ) -> list[dict[str, object]]:
        """``route`` as plain dicts (``answer_dict``, exactly ``RoutingAnswer.model_dump()``): batch
        tagging writes them straight out, skipping pydantic's per-message validation.

        The one place answers are built. ``rescore`` replaces this model's probabilities and review
        threshold (a cascade's combined scores); the sub-problem and evidence are this model's for
        the topic chosen. ``version``: the model version answers carry (default: this model's)."""
        n = len(texts)
        titles = titles if titles is not None else [None] * n
        ids = ids if ids is not None else [None] * n
        version = version if version is not None else self.version
        answers: list[dict[str, object] | None] = [None] * n
        good: list[int] = []
        for i, (title, text) in enumerate(zip(titles, texts, strict=True)):
            problem = self.preprocessor.problem(text, title=title)
            if problem is None:
                good.append(i)
            else:
                answers[i] = error_answer(ids[i], problem, version)
        if not good:
            return answers  # type: ignore[return-value]
        docs = self.docs([texts[i] for i in good], titles=[titles[i] for i in good])  # type: ignore[misc]
        X = self.features(docs)
        proba = self.predict_proba_features(X)
        threshold = self.review_threshold_
        if rescore is not None:
            proba, threshold = rescore(good, proba)
        k = self.config.review.top_k
        order = np.argsort(-proba, axis=1)[:, :k]
        best = order[:, 0]
        subs = self._subs(X, best)
        evidence = self.evidence(X, best, docs)
        tax = self.taxonomy
        names = [tax.name_of(c) for c in self.classes_]
        areas = [(a.name if (a := tax.area(c)) else None) for c in self.classes_]
        departments = [tax.departments(c) for c in self.classes_]
        sub_departments = tax.subs_with_departments  # the sub-problems that name their own departments
        # rounded once for the batch (Python's round() costs ~3 us a call), in float64: float32's
        # 0.9976 comes out as 0.9976000189781189 in JSON
        top_scores = np.round(np.take_along_axis(proba, order, axis=1).astype(np.float64), 4).tolist()
        sure = (proba[np.arange(len(best)), best] >= threshold).tolist()
        for row, (i, top_idx, scores) in enumerate(zip(good, order.tolist(), top_scores, strict=True)):
            b = top_idx[0]
            sub = subs[row]
            answers[i] = answer_dict(
                id=ids[i], topic=self.classes_[b], topic_name=names[b], area=areas[b],
                sub=sub, sub_name=tax.name_of(sub) if sub else None, confidence=scores[0], needs_review=not sure[row],
                top=[{"topic": self.classes_[j], "topic_name": names[j], "score": s}
                     for j, s in zip(top_idx, scores, strict=True)],
                departments=tax.departments(self.classes_[b], sub) if sub in sub_departments else
                {"lead": departments[b]["lead"], "assist": list(departments[b]["assist"])},
                evidence=evidence[row], model_version=version)
        return answers  # type: ignore[return-value]

    def _subs(self, X: sp.csr_matrix, best: np.ndarray) -> list[str | None]:
        """Sub-problem of each row, chosen among its predicted topic's sub-problems only."""
        result: list[str | None] = [None] * X.shape[0]
        for class_idx in np.unique(best):
            scorer = self.sub_models.get(self.classes_[class_idx])
            if scorer is None:
                continue
            rows = np.nonzero(best == class_idx)[0]
            picks = scorer.scores(X[rows]).argmax(axis=1)
            for r, p in zip(rows, picks, strict=True):
                result[r] = scorer.classes[p]
        return result

    def evidence(self, X: sp.csr_matrix, best: np.ndarray, docs: Sequence[Doc] | None = None) -> list[list[str]]:
        """For each row, the words that pushed hardest towards its chosen topic.

        Whole words (and word pairs) read better than character n-grams; these fill in only
        when too few words point the same way, and (given the rows' ``docs``) only those inside
        one of the message's words: "的的" or "里暖" (across 家里|暖气) mean nothing to an operator.
        Vectorised over the batch: the Python loop only sees each row's few best candidates.
        """
        n = X.shape[0]
        limit = self.config.review.evidence_terms
        picked: list[list[str]] = [[] for _ in range(n)]
        if limit == 0 or X.nnz == 0:
            return picked
        n_char, n_all = len(self.char_vectorizer.terms_), X.shape[1]
        weights, displayable = self.topic_model.weights, self.displayable
        for columns in ((n_char, n_all), (0, n_char)):  # words first, character n-grams fill in
            need = np.fromiter((len(p) < limit for p in picked), dtype=bool, count=n)
            if not need.any():
                break
            rows, cols = top_candidates(X, best, weights, displayable, columns, need, limit * 3)
            names = self.feature_names(cols)
            bounds = np.searchsorted(rows, np.arange(n + 1)).tolist()
            chars = columns[0] == 0
            for row in np.nonzero(need)[0].tolist():
                chosen = picked[row]
                # a space between words: an n-gram found in this string lies inside one word
                words = " ".join(docs[row].tokens) if chars and docs is not None else None
                for term in names[bounds[row]:bounds[row + 1]]:
                    if words is not None and term not in words:
                        continue
                    for p in chosen:  # not a part or a whole of a term already shown
                        if term in p or p in term:
                            break
                    else:
                        chosen.append(term)
                        if len(chosen) == limit:
                            break
        return picked

    @property
    def displayable(self) -> np.ndarray:
        """Which features may be shown as evidence: words of two or more characters, no punctuation,
        no mask placeholder nor piece of one."""
        displayable = getattr(self, "_displayable", None)
        if displayable is None:
            terms = (*self.char_vectorizer.terms_, *self.word_vectorizer.terms_)
            displayable = np.array([len(t) >= 2 and bool(_WORDLIKE.match(t)) and not _in_placeholder(t) for t in terms])
            self._displayable = displayable
        return displayable

    # ---- state ------------------------------------------------------------------
    def to_state(self) -> tuple[dict[str, object], dict[str, np.ndarray]]:
        """Everything a fitted model holds, as data: JSON-ready values and named arrays (the
        vocabularies and weights). ``models.persistence`` writes them; derived lookup tables are
        left out and rebuilt by ``from_state``."""
        arrays: dict[str, np.ndarray] = {}

        def part(prefix: str, state: tuple[dict[str, object], dict[str, np.ndarray]]) -> dict[str, object]:
            arrays.update({f"{prefix}.{name}": array for name, array in state[1].items()})
            return state[0]

        state = {
            # the encoder's keys are the cascade's recipe, kept in the cascade's own files
            "config": self.config.model_dump(mode="json", exclude={"model_type", "transformer"}),
            "taxonomy": self.taxonomy.to_state(),
            "preprocessor": self.preprocessor.to_state(),
            "char_vectorizer": part("char", self.char_vectorizer.to_state()),
            "word_vectorizer": part("word", self.word_vectorizer.to_state()),
            "topic_model": part("topics", self.topic_model.to_state()),
            "sub_models": {topic: part(f"subs.{topic}", scorer.to_state()) for topic, scorer in self.sub_models.items()},
            "temperature": float(self.temperature_),
            "review_threshold": float(self.review_threshold_),
            "heldout": self.heldout_,
            "training": self.training_summary_,
            "metadata": dict(self.metadata),
        }
        return state, arrays

    @classmethod
    def from_state(cls, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> ChuishaoClassifier:
        """The model ``to_state`` gave. KeyError names a missing part, ValueError a malformed one."""
        def part(prefix: str) -> dict[str, np.ndarray]:
            return {name.removeprefix(prefix + "."): a for name, a in arrays.items() if name.startswith(prefix + ".")}

        config = ChuishaoConfig.model_validate(state["config"])
        model = cls(config, Taxonomy.from_state(state["taxonomy"]),
                    TextPreprocessor.from_state(state["preprocessor"], config.text))
        model.char_vectorizer = NgramTfidf.from_state(state["char_vectorizer"], part("char"))
        model.word_vectorizer = NgramTfidf.from_state(state["word_vectorizer"], part("word"))
        model.topic_model = LinearScorer.from_state(state["topic_model"], part("topics"))
        model.sub_models = {topic: SparseScorer.from_state(s, part(f"subs.{topic}"))
                            for topic, s in state["sub_models"].items()}
        model.classes_ = model.topic_model.classes
        model.temperature_ = float(state["temperature"])
        model.review_threshold_ = float(state["review_threshold"])
        model.heldout_ = state["heldout"]
        model.training_summary_ = state["training"]
        model.metadata = dict(state["metadata"])
        model._displayable = None
        return model

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # an in-memory copy (Spark broadcasts the model) travels as the same data the model is saved as
        return type(self).from_state, self.to_state()

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", "unsaved"))
