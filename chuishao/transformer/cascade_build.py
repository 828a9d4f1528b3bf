"""Building a cascade directory (``models.cascade``) honestly: every weight is chosen on a dev split that
neither scoring model was trained on.

1. ``dev_exclusion``: the dev rows of the training file (the fine-tuning's stratified split: same fraction,
   same seed) plus the corpus messages that are copies or near-copies of them (extra id-label files and
   self-training draw on the corpus), as an ``--exclude`` file for ``chuishao train``;
2. ``chuishao train ... --exclude THAT -o DEV_CLASSICAL``: a classical model that has not seen the dev rows;
3. ``build_cascade``: dev probabilities of that model and of the encoder (fine-tuned without the dev rows),
   ``fit_cascade`` (w, gate, temperature, review threshold), then the directory with the *full* classical
   model beside the encoder (several encoders fine-tuned on the same split: their mean).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chuishao.errors import DataError, ModelLoadError
from chuishao.io.record import FieldMap, has_given_id
from chuishao.io.records import read_records
from chuishao.models.cascade import ALL, GATES, WEIGHTS, CascadeParams, fit_cascade
from chuishao.models.onnx_encoder import META_FILE, load_encoders
from chuishao.models.persistence import load_classical, read_manifest, require_exports, save_cascade
from chuishao.pipeline.near_copies import copies_of_held, near_copies
from chuishao.transformer.data import read_jsonl, stratified_split


def dev_rows(train: str | Path, fraction: float = 0.15, seed: int = 0) -> list[dict[str, Any]]:
    """The fine-tuning's dev rows (``stratified_split`` on the file's labels, in file order)."""
    rows = read_jsonl(train, need=("id", "label"))
    _, dev = stratified_split([r["label"] for r in rows], fraction, seed)
    return [rows[i] for i in dev]


def messages_not_held(texts: Sequence[str | Path], exclude: Sequence[str | Path], fields: FieldMap | None = None
                      ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The messages of ``texts`` (files of any input format; ``fields`` names their columns) that no held-out file of
    ``exclude`` holds, and counts. A message id repeated across files is read once. Left out: the held-out ids (a row
    of an exclude file without text still names its id), and the messages that copy or nearly copy a held-out text,
    including the text that a message with a held-out id has here (a held-out file may list ids only). Rows without an
    id of their own are neither matched by id nor merged."""
    held_ids: set[str] = set()
    held_texts: list[dict[str, Any]] = []
    for path in exclude:
        for rec in read_records(path, fields, need_text=False):
            own_id = has_given_id(rec, fields)
            if own_id:
                held_ids.add(rec.id)
            if rec.error is None:
                held_texts.append({"id": rec.id if own_id else f"held:{path}#{rec.row}", "title": rec.title,
                                   "text": rec.text})
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    skipped = 0  # rows with an error or nothing to read
    for path in texts:
        for rec in read_records(path, fields):
            if rec.error is not None or not (str(rec.text or "").strip() or (rec.title or "").strip()):
                skipped += 1
                continue
            own_id = has_given_id(rec, fields)
            if own_id and rec.id in seen:
                continue
            if own_id:
                seen.add(rec.id)
            rows.append({"id": rec.id if own_id else f"{path}#{rec.row}", "own_id": own_id, "title": rec.title,
                         "text": rec.text})
    by_id = [r for r in rows if not (r["own_id"] and r["id"] in held_ids)]
    copies = copies_of_held(held_texts, held_ids, [r for r in rows if r["own_id"] or r["id"] not in held_ids])
    kept = [r for r in by_id if r["id"] not in copies]
    return kept, {"messages": len(rows), "skipped": skipped, "held_out_ids": len(rows) - len(by_id),
                  "near_copies": len(copies)}


def dev_exclusion(train: str | Path, out: str | Path, corpus: str | Path | None = None, fraction: float = 0.15,
                  seed: int = 0) -> dict[str, int]:
    """Write ``out``, a held-out file for ``chuishao train --exclude``: the dev rows, then the corpus near-copies of
    them (JSONL: id, title, text, and the label of the dev row each copies), so that the training data check reads
    it like any test file and also drops training rows that copy these texts."""
    dev = dev_rows(train, fraction, seed)
    corpus_rows = read_jsonl(corpus) if corpus is not None else []
    copies = near_copies(dev, corpus_rows)
    label_of = {str(r["id"]): r.get("label") for r in dev}
    by_id = {str(r.get("id")): r for r in corpus_rows}
    rows = [{"id": str(r["id"]), "title": r.get("title"), "text": r.get("text"), "label": r.get("label")} for r in dev]
    rows += [{"id": cid, "title": by_id[cid].get("title"), "text": by_id[cid].get("text"), "label": label_of[copies[cid]]}
             for cid in sorted(copies)]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with Path(out).open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {"dev_rows": len(dev), "corpus_near_copies": len(copies), "ids": len(rows)}


def in_class_order(p: np.ndarray, labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Columns of ``p`` (in ``labels`` order) in ``classes`` order; absent classes get 0; rows renormalised."""
    index = {c: i for i, c in enumerate(labels)}
    out = np.zeros((p.shape[0], len(classes)), dtype=np.float64)
    for j, c in enumerate(classes):
        if c in index:
            out[:, j] = p[:, index[c]]
    return out / np.clip(out.sum(axis=1, keepdims=True), 1e-12, None)


def label_differences(classical: Iterable[str], other: Iterable[str], *, plural: bool = False) -> str:
    """How ``other`` (an encoder's labels, or those of its training rows) differs from the classical model's labels,
    as the predicate of the caller's subject: "lacks the classical model's A, B; it has C, which the classical model
    does not" (with ``plural``: "lack ...; they have ..."), either half left out where there is no such difference;
    "" when the two are the same."""
    want, have = {str(x) for x in classical}, {str(x) for x in other}
    lacks, extra = sorted(want - have), sorted(have - want)
    lack, has, pronoun = ("lack", "have", "they") if plural else ("lacks", "has", "it")
    parts = ([f"{lack} the classical model's {', '.join(lacks)}"] if lacks else []) + (
        [f"{has} {', '.join(extra)}, which the classical model does not"] if extra else [])
    return f"; {pronoun} ".join(parts)


def check_labels(onnx_dirs: Sequence[str | Path], classes: Sequence[str], classical: str | Path) -> None:
    """A DataError unless every encoder answers exactly the classical model's labels: a class the encoder lacks would
    get probability 0 from it (and the dev fit fall back to the classical model alone), one it adds would be dropped."""
    for d in onnx_dirs:
        try:
            labels = json.loads((Path(d) / META_FILE).read_text(encoding="utf-8"))["labels"]
            have = list(labels)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"{d}: {META_FILE} has no label list ({exc}); export the fine-tuned model again "
                                 f"(chuishao transformer export-onnx)") from None
        if diff := label_differences(classes, have):  # the test is the wording's: the two never disagree
            raise DataError(f"{d}: the encoder's labels are not those of {classical}: it {diff}. "
                            f"Fine-tune the encoder on the classical model's training labels")


TWIN_FIELDS = ("labels", "max_length", "title_mode", "prefix", "pooling", "temperature")


def check_twins(fitted: Sequence[str | Path], ship: Sequence[str | Path], int8: bool) -> None:
    """An error unless each encoder shipped in place of a fitted one reads and answers the same way: its export is
    there (``require_exports``) and its labels, input format and temperature are the fitted one's (a DataError): the
    weights fitted on dev hold for it."""
    if len(ship) != len(fitted):
        raise DataError(f"{len(ship)} encoders to ship for {len(fitted)} fitted on dev: one for each, in order")
    require_exports(ship, int8=int8)
    for fit, sent in zip(fitted, ship, strict=True):
        ours, theirs = (json.loads((Path(d) / META_FILE).read_text(encoding="utf-8")) for d in (fit, sent))
        for key in TWIN_FIELDS:
            if ours.get(key) != theirs.get(key):
                raise DataError(f"{sent}: {key} {theirs.get(key)!r} is not that of {fit} ({ours.get(key)!r}); the "
                                f"encoder shipped in its place must share it (finetune --dev-fraction 0 --temperature "
                                f"{ours.get('temperature')})")


def build_cascade(classical: str | Path, dev_classical: str | Path, onnx_dir: str | Path | Sequence[str | Path],
                  train: str | Path,
                  out: str | Path, *, int8: bool = False, fraction: float = 0.15, seed: int = 0,
                  max_share: float = 1.0, weights: Sequence[float] = WEIGHTS,
                  gates: Sequence[float] = GATES, metadata: dict[str, object] | None = None,
                  ship: Sequence[str | Path] | None = None) -> CascadeParams:
    """Fit the cascade on the dev rows with ``dev_classical`` and the encoder, write it with ``classical``;
    ``ship``: the encoders written instead (the same encoders refitted on every row, dev included)."""
    onnx_dirs = [onnx_dir] if isinstance(onnx_dir, str | Path) else list(onnx_dir)
    require_exports(onnx_dirs, int8=int8)
    if ship is not None:
        check_twins(onnx_dirs, ship, int8)
    dev = dev_rows(train, fraction, seed)
    dev_ids = {str(r["id"]) for r in dev}
    shipped = load_classical(classical)
    scorer = load_classical(dev_classical)
    classes = list(shipped.classes_)
    check_labels(onnx_dirs, classes, classical)
    dropped = read_manifest(dev_classical).get("dropped_rows")
    held_out = int(dropped.get("held_out", 0)) if isinstance(dropped, dict) else 0
    if held_out < len(dev):
        raise DataError(f"{dev_classical}: dropped {held_out} held-out rows, fewer than the {len(dev)} dev rows: it "
                        f"must be trained with --exclude of the dev ids (chuishao transformer dev-exclude)")
    index = {c: i for i, c in enumerate(classes)}
    keep = [r for r in dev if r["label"] in index]
    texts = [str(r.get("text") or "") for r in keep]
    titles = [r.get("title") for r in keep]
    y = np.array([index[r["label"]] for r in keep])
    p_classical = in_class_order(scorer.predict_proba(texts, titles=titles), scorer.classes_, classes)
    encoder = load_encoders(onnx_dirs, int8=int8, threads=2)
    p_transformer = in_class_order(encoder.predict_proba(keep), encoder.labels, classes)
    params = fit_cascade(p_classical, p_transformer, y, shipped.config.review.target_precision, weights, gates, max_share)
    params.dev.update({"split": {"file": Path(train).name, "fraction": fraction, "seed": seed, "ids_in_split": len(dev_ids)},
                       "dev_classical": scorer.version, "int8": int8, "encoders": len(onnx_dirs),
                       "refit": ship is not None})
    save_cascade(classical, onnx_dirs if ship is None else ship, params, out, int8=int8, metadata=metadata)
    return params


def summary(params: CascadeParams) -> str:
    gate = "all" if params.gate >= ALL else f"{params.gate:g}"
    d = params.dev
    return (f"w {params.weight:g}, gate {gate} (re-scores {d['rescored']:.0%} of dev), T {params.temperature:.3f}, "
            f"review below {params.review_threshold:.3f}; dev macro-F1 / accuracy: classical "
            f"{d['classical']['macro_f1']:.4f} / {d['classical']['accuracy']:.4f}, transformer "
            f"{d['transformer']['macro_f1']:.4f} / {d['transformer']['accuracy']:.4f}, cascade "
            f"{d['cascade']['macro_f1']:.4f} / {d['cascade']['accuracy']:.4f}")


if __name__ == "__main__":  # pragma: no cover - python -m chuishao.transformer.cascade_build TRAIN OUT [CORPUS]
    print(dev_exclusion(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
