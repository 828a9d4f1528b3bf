"""Annotators: what a message says besides its topic (where it is, how urgent), as answer fields.

An annotator has a ``name`` (the answer field it fills) and ``annotate(title, text) -> dict`` (that
field's value). ``MessageAnnotator`` runs a list of them over routed answers; ``build_annotator``
makes the list the CLI and the service use. Adding one (e.g. urgency) is: the model of its field in
``models/answer.py`` (``RoutingAnswer`` and ``answer_dict``), and one line in ``build_annotator``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from chuishao.gazetteer import Gazetteer

NONE = "none"  # --gazetteer none: no place extraction


@runtime_checkable
class Annotator(Protocol):
    name: str

    @property
    def fingerprint(self) -> str:
        """What the annotator's answers depend on (its data, its settings): a resumed batch run checks it."""

    def annotate(self, title: str | None, text: str) -> Mapping[str, object]: ...


class MessageAnnotator:
    """Runs annotators over messages and fills each one's field in the answers."""

    def __init__(self, annotators: Sequence[Annotator] = ()) -> None:
        names = [a.name for a in annotators]
        if len(set(names)) != len(names):
            raise ValueError(f"two annotators fill the same answer field: {names}")
        self.annotators = list(annotators)

    def __bool__(self) -> bool:
        return bool(self.annotators)

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.annotators]

    @property
    def fingerprints(self) -> dict[str, str]:
        # an annotator of a city's own without a fingerprint is known by its class
        return {a.name: getattr(a, "fingerprint", type(a).__qualname__) for a in self.annotators}

    def annotate(self, title: str | None, text: str) -> dict[str, Mapping[str, object]]:
        """Each annotator's field for one message."""
        return {a.name: a.annotate(title, text) for a in self.annotators}

    def fill(self, answers: list[dict[str, object]], texts: Sequence[object],
             titles: Sequence[str | None] | None = None) -> list[dict[str, object]]:
        """Fill the answers (``answer_dict`` shapes) in place; answers with an ``error`` keep their empty fields."""
        titles = titles if titles is not None else [None] * len(texts)
        for answer, text, title in zip(answers, texts, titles, strict=True):
            if answer.get("error") or not isinstance(text, str):
                continue
            answer.update(self.annotate(title if isinstance(title, str) else None, text))
        return answers


def load_gazetteer(gazetteer: str | Path | None) -> Gazetteer | None:
    """``--gazetteer``: None for the bundled example, "none" for no gazetteer, else a YAML file."""
    if gazetteer is not None and str(gazetteer).strip().lower() == NONE:
        return None
    return Gazetteer.load(gazetteer)


def build_annotator(gazetteer: str | Path | Gazetteer | None = None,
                    urgency_rules: str | Path | None = None) -> MessageAnnotator:
    """The annotators every routing answer gets: the place (unless ``gazetteer`` is "none") and the urgency
    (``urgency_rules``: None the bundled rules, "none" off, else a rules YAML)."""
    from chuishao.pipeline.places import PlaceExtractor
    from chuishao.pipeline.urgency import UrgencyDetector

    gz = gazetteer if isinstance(gazetteer, Gazetteer) else load_gazetteer(gazetteer)
    if urgency_rules is None:  # a city's own rules for every command and the service
        urgency_rules = os.environ.get("CHUISHAO_URGENCY_RULES") or None
    annotators: list[Annotator] = []
    if gz is not None:
        annotators.append(PlaceExtractor(gz))
    if urgency_rules is None or str(urgency_rules).strip().lower() != NONE:
        annotators.append(UrgencyDetector.from_file(urgency_rules))
    return MessageAnnotator(annotators)
