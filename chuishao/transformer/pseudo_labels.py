"""Self-training rows for a student encoder: unlabelled corpus messages labelled by a first cascade (the teacher).

The teacher is the dev-only classical model mixed half and half with the mean of the encoders fine-tuned so far, on
every message (no gate), so that nothing it learnt from the dev rows reaches the student through its labels. A corpus
message is a candidate when none of the given files (the encoder's training rows, the dev rows, the held-out test
files) holds its id, nor a copy or near-copy of its text (held-out messages must not come back as training rows).
Messages with our own labels that the encoder does not train on (``data.extra_labels`` beyond
``transformer.extra_labels``) are candidates too: the teacher's labels trained a better student on dev than those
labels did (docs/experiments.md). Only confident labels are kept, and OTHER, most of the research corpus, is capped
like the encoder's other extra rows.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chuishao.io.records import read_records
from chuishao.models.onnx_encoder import load_encoders
from chuishao.models.persistence import load_classical
from chuishao.transformer.cascade_build import in_class_order, near_copies

__all__ = ["TEACHER_WEIGHT", "pseudo_label", "unlabelled"]

TEACHER_WEIGHT = 0.5  # the encoders' share of the teacher's mix: the fixed value that scored best nested on dev


def _rows(path: str | Path) -> list[dict[str, Any]]:
    """A message file's rows (JSONL, CSV, Parquet, ...) as id, title, text; a row without usable text has text None
    (a held-out file may list ids only)."""
    return [{"id": rec.id, "title": rec.title, "text": None if rec.error else rec.text}
            for rec in read_records(path, need_text=False)]


def unlabelled(corpus: str | Path, known_files: Iterable[str | Path]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The corpus messages whose id is in none of ``known_files`` and whose text copies none of their messages' texts;
    with the counts of the corpus messages considered and of the near-copies left out."""
    known = [row for path in known_files for row in _rows(path)]
    known_ids = {str(r["id"]) for r in known}
    known = [r for r in known if r["text"]]
    seen: set[str] = set()
    fresh: list[dict[str, Any]] = []
    for row in _rows(corpus):
        rid = str(row["id"])
        if rid in known_ids or rid in seen or not row["text"]:  # a corpus row without usable text: nothing to learn
            continue
        seen.add(rid)
        fresh.append(row)
    copies = near_copies(known, fresh)
    kept = [r for r in fresh if str(r["id"]) not in copies]
    return kept, {"new_ids": len(fresh), "near_copies": len(copies)}


def pseudo_label(dev_classical: str | Path, onnx_dirs: Sequence[str | Path], messages: Sequence[dict[str, Any]],
                 out: str | Path, *, int8: bool, min_confidence: float = 0.8, max_other: int | None = 1500,
                 seed: int = 0, threads: int = 2) -> dict[str, Any]:
    """Write ``out`` (JSONL: id, title, text, label): the ``messages`` the teacher labels with at least
    ``min_confidence``, OTHER capped at ``max_other`` (a seeded sample); returns what was kept, by label."""
    scorer = load_classical(dev_classical)
    classes = list(scorer.classes_)
    texts = [str(r.get("text") or "") for r in messages]
    titles = [r.get("title") for r in messages]
    p = np.zeros((0, len(classes)))
    if messages:
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
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with Path(out).open("w", encoding="utf-8") as fh:
        for i in keep:
            row = {"id": str(messages[i]["id"]), "title": titles[i], "text": texts[i], "label": classes[best[i]]}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {"scored": len(messages), "confident": len(sure), "rows": len(keep),
            "labels": dict(Counter(classes[best[i]] for i in keep).most_common())}
