"""A routing model whose answers also carry the annotators' fields (the place, later urgency).

The model directory does not change: the annotators are data (a city's gazetteer) applied after
routing, so one trained model serves any city's places.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from chuishao.models.answer import RoutingAnswer
from chuishao.models.cascade import RoutingModel
from chuishao.pipeline.annotate import MessageAnnotator
from chuishao.taxonomy import Taxonomy


class AnnotatedModel:
    """``RoutingModel`` over another one: its answers, with ``annotator``'s fields filled in."""

    def __init__(self, model: RoutingModel, annotator: MessageAnnotator) -> None:
        self.model = model
        self.annotator = annotator

    def __getattr__(self, name: str) -> Any:
        # the rest of the wrapped model (config, preprocessor, heldout_ ...); never during unpickling,
        # when ``model`` is not set yet and asking for it would recurse
        if name.startswith("__") or name in ("model", "annotator"):
            raise AttributeError(name)
        return getattr(self.model, name)

    @property
    def metadata(self) -> dict[str, object]:
        return self.model.metadata

    @metadata.setter
    def metadata(self, value: dict[str, object]) -> None:
        self.model.metadata = value

    @property
    def review_threshold_(self) -> float:
        return self.model.review_threshold_

    @property
    def sub_models(self) -> Mapping[str, Any]:
        return self.model.sub_models

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def taxonomy(self) -> Taxonomy:
        return self.model.taxonomy

    @property
    def classes_(self) -> list[str]:
        return self.model.classes_

    def predict_proba(self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None) -> np.ndarray:
        return self.model.predict_proba(texts, titles=titles)

    def predict(self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None) -> list[str]:
        return self.model.predict(texts, titles=titles)

    def route_dicts(self, texts: Sequence[object], *, titles: Sequence[str | None] | None = None,
                    ids: Sequence[str | None] | None = None) -> list[dict[str, object]]:
        answers = self.model.route_dicts(texts, titles=titles, ids=ids)
        return self.annotator.fill(answers, texts, titles)

    def route(self, texts: Sequence[object], *, titles: Sequence[str | None] | None = None,
              ids: Sequence[str | None] | None = None) -> list[RoutingAnswer]:
        return [RoutingAnswer(**a) for a in self.route_dicts(texts, titles=titles, ids=ids)]

    def warm_up(self) -> None:
        self.model.warm_up()
        self.annotator.annotate("杭州市西湖区", "小区门口的路灯坏了")


def annotated(model: RoutingModel, annotator: MessageAnnotator | None) -> RoutingModel:
    """``model`` with the annotators' fields in its answers (itself when there are none)."""
    return AnnotatedModel(model, annotator) if annotator else model
