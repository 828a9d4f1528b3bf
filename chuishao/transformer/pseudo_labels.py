"""Self-training rows for a student encoder: corpus messages the encoders do not train on, labelled by a first
cascade (the teacher).

The teacher is the dev-only classical model mixed half and half with the mean of the encoders fine-tuned so far, on
every message (no gate), so that nothing it learnt from the dev rows reaches the student through its labels. The
candidates are the recipe's to choose (``cascade_build.messages_not_held``: no held-out or training file holds their
id, nor a copy or near-copy of their text). Messages with our own labels that the encoders do not train on
(``data.extra_labels`` beyond ``transformer.extra_labels``) are candidates too: all our corpus labels as encoder rows
lowered the cascade, while the teacher's labels on the same messages raised the student on dev (docs/experiments.md;
not compared side by side). Only confident labels are kept, and OTHER, most of the research corpus, is capped.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chuishao.errors import DataError
from chuishao.models.onnx_encoder import load_encoders
from chuishao.models.persistence import load_classical
from chuishao.transformer.cascade_build import in_class_order

__all__ = ["TEACHER_WEIGHT", "pseudo_label"]

TEACHER_WEIGHT = 0.5  # the encoders' share of the teacher's mix: on every message it scored above fitted cascades, nested on dev


def pseudo_label(dev_classical: str | Path, onnx_dirs: Sequence[str | Path], messages: Sequence[dict[str, Any]],
                 out: str | Path, *, int8: bool, min_confidence: float = 0.8, max_other: int | None = 1500,
                 seed: int = 0, threads: int = 2) -> dict[str, Any]:
    """Write ``out`` (JSONL: id, title, text, label): the ``messages`` (``cascade_build.messages_not_held``) that the
    teacher labels with at least ``min_confidence``, OTHER capped at ``max_other`` pseudo-labelled rows (a seeded
    sample); returns what was kept, by label. Messages the classical model refuses (too long, too little Chinese) are
    left out, as its own self-training does. A DataError when no message is kept: a student would learn nothing that
    the encoder of its seed did not."""
    scorer = load_classical(dev_classical)
    classes = list(scorer.classes_)
    usable = [r for r in messages if scorer.preprocessor.problem(r.get("text"), title=r.get("title")) is None]
    refused, messages = len(messages) - len(usable), usable
    if not messages:
        raise DataError(f"no corpus message for the students to learn from: every message of data.corpus is held out, "
                        f"trains the encoders already, or is refused by the classical model ({refused}); give "
                        f"data.corpus unlabelled messages")
    texts = [str(r.get("text") or "") for r in messages]
    titles = [r.get("title") for r in messages]
    encoder = load_encoders(onnx_dirs, int8=int8, threads=threads)
    records = [{"title": ti, "text": te} for ti, te in zip(titles, texts, strict=True)]
    p_encoders = in_class_order(encoder.predict_proba(records), encoder.labels, classes)
    p = (1 - TEACHER_WEIGHT) * scorer.predict_proba(texts, titles=titles) + TEACHER_WEIGHT * p_encoders
    best, confidence = p.argmax(axis=1), p.max(axis=1)
    sure = [i for i in range(len(messages)) if confidence[i] >= min_confidence]
    other = [i for i in sure if classes[best[i]] == "OTHER"]
    random.Random(seed).shuffle(other)
    keep = [i for i in sure if classes[best[i]] != "OTHER"] + (other if max_other is None else other[:max_other])
    random.Random(seed + 1).shuffle(keep)
    if not keep:
        raise DataError(f"no corpus message for the students: of {len(messages)} scored, none labelled with at least "
                        f"{min_confidence:g} (transformer.student_confidence) or all OTHER with max_other 0; lower "
                        f"transformer.student_confidence or give data.corpus more unlabelled messages")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with Path(out).open("w", encoding="utf-8") as fh:
        for i in keep:
            row = {"id": str(messages[i]["id"]), "title": titles[i], "text": texts[i], "label": classes[best[i]]}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {"scored": len(messages), "refused": refused, "confident": len(sure), "rows": len(keep),
            "labels": dict(Counter(classes[best[i]] for i in keep).most_common())}
