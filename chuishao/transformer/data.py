"""Labelled JSONL -> model inputs: text formatting, stratified dev split, class weights, datasets.Dataset."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chuishao.errors import DataError
from chuishao.io.labels import read_id_label_file
from chuishao.io.records import read_records
from chuishao.models.onnx_encoder import TitleMode, format_text

__all__ = ["TitleMode", "build_dataset", "extra_rows", "format_text", "json_object", "read_jsonl", "sqrt_inverse_frequency",
           "stratified_split"]


def json_object(path: Path, n: int, line: str) -> dict[str, Any]:
    """Line ``n`` of the JSONL file ``path`` as an object, or a DataError naming the file and line."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, line {n}: not JSON ({exc.msg}); a JSONL file is expected") from None
    if not isinstance(row, dict):
        raise DataError(f"{path}, line {n}: not a JSON object")
    return row


def read_jsonl(path: str | Path, need: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Records of a JSONL file (blank lines skipped), or a DataError naming the file and line: missing, not UTF-8, a
    line not a JSON object, a row without one of the ``need`` fields."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    rows: list[dict[str, Any]] = []
    try:
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                row = json_object(path, n, line)
                lacking = [k for k in need if k not in row]
                if lacking:
                    raise DataError(f"{path}, line {n}: no {', '.join(lacking)} field")
                rows.append(row)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read as UTF-8 JSONL ({exc})") from None
    return rows


def stratified_split(labels: Sequence[str], dev_fraction: float = 0.15, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train indices, dev indices): per label, a seeded shuffle puts round(n * fraction) rows in dev
    (at least one when the label has two rows or more, none when it has one)."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        by_label.setdefault(lab, []).append(i)
    train: list[int] = []
    dev: list[int] = []
    for lab in sorted(by_label):
        idx = np.array(by_label[lab])
        rng.shuffle(idx)
        n_dev = round(len(idx) * dev_fraction)
        if len(idx) >= 2:
            n_dev = min(max(n_dev, 1), len(idx) - 1)
        else:
            n_dev = 0
        dev.extend(idx[:n_dev].tolist())
        train.extend(idx[n_dev:].tolist())
    return sorted(train), sorted(dev)


def sqrt_inverse_frequency(labels: Sequence[str], label_names: Sequence[str]) -> np.ndarray:
    """Class weights ∝ 1/sqrt(count), normalised to a count-weighted mean of 1; absent labels get 1."""
    counts = Counter(labels)
    n = np.array([counts.get(lab, 0) for lab in label_names], dtype=np.float64)
    w = np.where(n > 0, 1.0 / np.sqrt(np.maximum(n, 1)), 0.0)
    mean = (w * n).sum() / max(n.sum(), 1)
    w = np.where(n > 0, w / mean, 1.0)
    return w.astype(np.float32)


def build_dataset(records: Sequence[dict[str, Any]], tokenizer: Any, label2id: dict[str, int] | None,
                  max_length: int, title_mode: TitleMode = "prefix", prefix: str = "query: "):
    """A datasets.Dataset with input_ids, attention_mask (unpadded, truncated) and labels (when label2id given)."""
    from datasets import Dataset

    texts = [format_text(r, title_mode, prefix) for r in records]
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    cols: dict[str, Any] = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    if label2id is not None:
        cols["labels"] = [label2id[r["label"]] for r in records]
    return Dataset.from_dict(cols)


def extra_rows(corpus: str | Path | None, label_files: Iterable[str | Path], data_files: Iterable[str | Path] = (),
               exclude_ids: Iterable[str] = (), max_other: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """Training-only rows beyond the split file: our ``id,label,sub`` files joined with the corpus by id, plus
    labelled JSONL files (authored examples), minus ``exclude_ids`` (the dev split and its near-copies). Our corpus
    labels are mostly OTHER; ``max_other`` keeps a seeded sample of that many OTHER rows so the encoder's epochs go
    to the topics. An id of a label file that the corpus lacks is an error, as in classical training."""
    excluded = set(exclude_ids)
    records: dict[str, Any] = {}
    label_files = list(label_files)
    if label_files and corpus is None:
        raise DataError("id,label files need the corpus that holds their texts")
    for rec in read_records(corpus) if label_files and corpus is not None else ():
        if not rec.error:
            records.setdefault(rec.id, rec)  # an id the corpus repeats: its first message
    rows: list[dict[str, Any]] = []
    for path in label_files:
        wanted = read_id_label_file(path)
        missing = sorted(set(wanted) - set(records))
        if missing:
            raise DataError(f"{path}: {len(missing)} of its ids have no usable text in {corpus} "
                            f"(e.g. {', '.join(missing[:5])})")
        rows += [{"id": i, "title": rec.title, "text": rec.text, "label": wanted[i][0]}
                 for i, rec in records.items() if i in wanted and i not in excluded]
    for path in data_files:
        rows += [{k: r.get(k) for k in ("id", "title", "text", "label")}
                 for r in read_jsonl(path) if r.get("id") not in excluded]
    if max_other is not None:
        other = [r for r in rows if r["label"] == "OTHER"]
        random.Random(seed).shuffle(other)
        rows = [r for r in rows if r["label"] != "OTHER"] + other[:max_other]
    random.Random(seed + 1).shuffle(rows)
    return rows
