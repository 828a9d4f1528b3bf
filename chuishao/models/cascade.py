"""CascadeModel: the classical model answers every message; the fine-tuned encoder re-scores the unsure ones.

For a message whose classical confidence is below ``gate`` the scores are mixed,
``p = (1 - w) · p_classical + w · p_transformer`` (otherwise ``p = p_classical``); then one calibration for
all: a temperature on ``log p`` and a review threshold chosen by the classical model's rule (the lowest
confidence where held-out accuracy reaches ``review.target_precision``). ``w``, the gate, the temperature and
the threshold are fitted on a dev split that neither part was trained on (``fit_cascade``). The sub-problem
and the evidence come from the classical model, for the topic the cascade chose: the classical
``route_dicts`` builds every answer (``rescore``).

The encoder runs with onnxruntime + tokenizers only (``models.onnx_encoder``); saving and loading the
directory are in ``models.persistence`` (``save_cascade``, ``load_model``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from chuishao.models.answer import RoutingAnswer
from chuishao.models.calibration import fit_temperature, macro_f1_from_predictions, review_threshold, softmax
from chuishao.models.classifier import WARM_UP_TEXTS, ChuishaoClassifier
from chuishao.models.onnx_encoder import EncoderEnsemble, OnnxClassifier
from chuishao.taxonomy import Taxonomy

ALL = 1.01  # a gate above any confidence: every message is re-scored
WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))
GATES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, ALL)
THREADS_ENV = "CHUISHAO_ONNX_THREADS"  # onnxruntime threads of a loaded cascade (default 1)


@runtime_checkable
class RoutingModel(Protocol):
    """What the CLI, the service, batch tagging and evaluation use of a model: a ChuishaoClassifier
    or a CascadeModel (``models.persistence.load_model`` gives either)."""

    metadata: dict[str, object]

    @property
    def review_threshold_(self) -> float: ...  # needs_review below this confidence

    @property
    def sub_models(self) -> Mapping[str, Any]: ...  # topic -> its sub-problem scorer (``.classes``)

    @property
    def version(self) -> str: ...

    @property
    def taxonomy(self) -> Taxonomy: ...

    @property
    def classes_(self) -> list[str]: ...

    @property
    def preprocessor(self) -> Any: ...  # its TextPreprocessor: .problem(text, title=...) says why a text is refused

    def predict_proba(self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None) -> np.ndarray: ...

    def predict(self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None) -> list[str]: ...

    def route(self, texts: Sequence[object], *, titles: Sequence[str | None] | None = None,
              ids: Sequence[str | None] | None = None) -> list[RoutingAnswer]: ...

    def route_dicts(self, texts: Sequence[object], *, titles: Sequence[str | None] | None = None,
                    ids: Sequence[str | None] | None = None) -> list[dict[str, object]]: ...

    def warm_up(self) -> None: ...


@dataclass
class CascadeParams:
    weight: float  # w of the transformer's probabilities in the mix
    gate: float  # re-score messages whose classical confidence is below this (> 1: all)
    temperature: float  # on the log of the mixed probabilities
    review_threshold: float
    dev: dict[str, Any] = field(default_factory=dict)  # figures on the dev split and the grid searched

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CascadeParams:
        return cls(float(state["weight"]), float(state["gate"]), float(state["temperature"]),
                   float(state["review_threshold"]), dict(state.get("dev") or {}))


def mix(p_classical: np.ndarray, p_transformer: np.ndarray | None, rescored: np.ndarray, weight: float) -> np.ndarray:
    """(1 - w) · p_classical + w · p_transformer on the ``rescored`` rows (``p_transformer`` holds those rows
    only, in classical class order); the classical probabilities elsewhere."""
    p = p_classical.astype(np.float64, copy=True)
    if p_transformer is not None and weight > 0 and rescored.any():
        p[rescored] = (1.0 - weight) * p[rescored] + weight * p_transformer
    return p


def calibrate(p: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): the mixed probabilities, sharpened or softened."""
    return softmax(np.log(np.clip(p, 1e-12, None)), temperature).astype(np.float32)


def scores(y: np.ndarray, pred: np.ndarray, n_classes: int) -> dict[str, float]:
    return {"macro_f1": round(macro_f1_from_predictions(pred, y, n_classes), 4),
            "accuracy": round(float((pred == y).mean()), 4)}


def fit_cascade(p_classical: np.ndarray, p_transformer: np.ndarray, y: np.ndarray, target_precision: float,
                weights: Sequence[float] = WEIGHTS, gates: Sequence[float] = GATES,
                max_share: float = 1.0) -> CascadeParams:
    """Choose w and the gate on dev rows (both probability matrices in the same class order, ``y`` class
    indices): the highest macro-F1 + accuracy (argmax does not depend on the temperature), ties to the
    smaller re-scored share then the smaller w; only gates re-scoring at most ``max_share`` of the rows.
    Then the temperature (NLL) and the review threshold on the same rows."""
    n_classes = p_classical.shape[1]
    confidence = p_classical.max(axis=1)
    grid: list[dict[str, float]] = []
    best: tuple[tuple[float, float, float], float, float] | None = None
    for gate in gates:
        rescored = confidence < gate
        share = float(rescored.mean())
        for w in weights:
            pred = mix(p_classical, p_transformer[rescored], rescored, w).argmax(axis=1)
            s = scores(y, pred, n_classes)
            grid.append({"gate": gate, "weight": w, "rescored": round(share, 4), **s})
            if share > max_share + 1e-9:
                continue
            key = (round(s["macro_f1"] + s["accuracy"], 6), -share, -w)
            if best is None or key > best[0]:
                best = (key, gate, w)
    if best is None:
        raise ValueError(f"no gate re-scores at most {max_share:.0%} of the dev rows")
    _, gate, w = best
    rescored = confidence < gate
    p = mix(p_classical, p_transformer[rescored], rescored, w)
    logp = np.log(np.clip(p, 1e-12, None))
    temperature = fit_temperature(logp, y)
    q = softmax(logp, temperature)
    conf, correct = q.max(axis=1), q.argmax(axis=1) == y
    threshold = review_threshold(conf, correct, target_precision)
    sure = conf >= threshold
    dev = {
        "rows": len(y),
        "classical": scores(y, p_classical.argmax(axis=1), n_classes),
        "transformer": scores(y, p_transformer.argmax(axis=1), n_classes),
        "cascade": scores(y, q.argmax(axis=1), n_classes),
        "rescored": round(float(rescored.mean()), 4),
        "review_share": round(float((~sure).mean()), 4),
        "accuracy_when_sure": round(float(correct[sure].mean()), 4) if sure.any() else None,
        "max_share": max_share,
        "grid": grid,
    }
    return CascadeParams(float(w), float(gate), float(temperature), float(threshold), dev)


class CascadeModel:
    """The ``RoutingModel`` interface over a classical model and an ONNX encoder (see the module doc)."""

    def __init__(self, classical: ChuishaoClassifier, encoder: OnnxClassifier | EncoderEnsemble, params: CascadeParams,
                 metadata: dict[str, object] | None = None) -> None:
        self.classical = classical
        self.encoder = encoder
        self.params = params
        self.metadata: dict[str, object] = dict(metadata or {})
        index = {c: i for i, c in enumerate(encoder.labels)}
        missing = [c for c in classical.classes_ if c not in index]
        if missing:
            raise ValueError(f"the encoder does not predict {', '.join(missing)}, which the classical model does")
        # encoder columns in the classical order (labels only the encoder knows are dropped, then renormalised)
        self._columns = np.array([index[c] for c in classical.classes_])

    # ---- what the classical model holds ---------------------------------------------------------
    @property
    def classes_(self) -> list[str]:
        return list(self.classical.classes_)

    @property
    def taxonomy(self) -> Taxonomy:
        return self.classical.taxonomy

    @taxonomy.setter
    def taxonomy(self, taxonomy: Taxonomy) -> None:
        self.classical.taxonomy = taxonomy

    @property
    def config(self) -> Any:
        return self.classical.config

    @property
    def preprocessor(self) -> Any:
        return self.classical.preprocessor

    @property
    def sub_models(self) -> Any:
        return self.classical.sub_models

    @property
    def training_rows_(self) -> Any:
        """The classical part's prints of its training rows: the encoder trained on a subset of the same rows."""
        return getattr(self.classical, "training_rows_", None)

    @property
    def heldout_(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.dev.items() if k != "grid"}

    @property
    def review_threshold_(self) -> float:
        return self.params.review_threshold

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", "unsaved"))

    # ---- scores --------------------------------------------------------------------------------
    def transformer_proba(self, texts: Sequence[object], titles: Sequence[str | None]) -> np.ndarray:
        """The encoder's probabilities in the classical class order."""
        records = [{"title": ti, "text": te} for te, ti in zip(texts, titles, strict=True)]
        p = self.encoder.predict_proba(records)[:, self._columns]
        return p / p.sum(axis=1, keepdims=True)

    def combine(self, p_classical: np.ndarray, texts: Sequence[object], titles: Sequence[str | None]) -> np.ndarray:
        """The calibrated cascade probabilities of messages with these classical probabilities."""
        rescored = p_classical.max(axis=1) < self.params.gate
        pt = None
        if self.params.weight > 0 and rescored.any():
            rows = np.nonzero(rescored)[0].tolist()
            pt = self.transformer_proba([texts[i] for i in rows], [titles[i] for i in rows])
        return calibrate(mix(p_classical, pt, rescored, self.params.weight), self.params.temperature)

    def predict_proba(self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None) -> np.ndarray:
        titles = titles if titles is not None else [None] * len(texts)
        return self.combine(self.classical.predict_proba(texts, titles=titles), texts, titles)

    def predict(self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None) -> list[str]:
        return [self.classes_[i] for i in self.predict_proba(texts, titles=titles).argmax(axis=1)]

    # ---- answers -------------------------------------------------------------------------------
    def route_dicts(self, texts: Sequence[object], *, titles: Sequence[str | None] | None = None,
                    ids: Sequence[str | None] | None = None) -> list[dict[str, object]]:
        """As ``ChuishaoClassifier.route_dicts``, with the cascade's probabilities and review threshold."""
        all_titles = titles if titles is not None else [None] * len(texts)

        def rescore(good: list[int], p_classical: np.ndarray) -> tuple[np.ndarray, float]:
            p = self.combine(p_classical, [texts[i] for i in good], [all_titles[i] for i in good])
            return p, self.params.review_threshold

        return self.classical.route_dicts(texts, titles=titles, ids=ids, rescore=rescore, version=self.version)

    def route(self, texts: Sequence[object], *, titles: Sequence[str | None] | None = None,
              ids: Sequence[str | None] | None = None) -> list[RoutingAnswer]:
        return [RoutingAnswer(**a) for a in self.route_dicts(texts, titles=titles, ids=ids)]

    def warm_up(self) -> None:
        self.classical.warm_up()
        self.encoder.predict_proba([{"title": None, "text": t} for t in WARM_UP_TEXTS])


def onnx_threads() -> int:
    """onnxruntime intra-op threads for a loaded cascade: ``CHUISHAO_ONNX_THREADS`` (default 1: one per
    worker process, as the service and ``tag --workers`` run)."""
    try:
        return max(1, int(os.environ.get(THREADS_ENV, "1")))
    except ValueError:
        return 1
