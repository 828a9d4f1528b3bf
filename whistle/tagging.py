"""Batch tagging: stream a message file through the model, one output record per input row."""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from whistle.errors import DataError
from whistle.io.records import FieldMap, InputRecord, read_records
from whistle.models.answer import RoutingAnswer
from whistle.models.classifier import WhistleClassifier


@dataclass
class TagSummary:
    rows: int = 0
    tagged: int = 0
    errors: int = 0
    needs_review: int = 0
    topics: Counter = field(default_factory=Counter)

    def add(self, answer: RoutingAnswer) -> None:
        self.rows += 1
        if answer.error:
            self.errors += 1
            return
        self.tagged += 1
        self.needs_review += int(answer.needs_review)
        self.topics[answer.topic] += 1

    def as_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "tagged": self.tagged,
            "errors": self.errors,
            "needs_review_share": round(self.needs_review / self.tagged, 4) if self.tagged else 0.0,
            "topics": dict(sorted(self.topics.items())),
        }


def _batches(items: Iterable[InputRecord], size: int) -> Iterator[list[InputRecord]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def tag_records(model: WhistleClassifier, records: Iterable[InputRecord], batch_size: int = 1024) -> Iterator[tuple[InputRecord, RoutingAnswer]]:
    """Answers in input order; rows the reader already marked bad keep their reader error."""
    for batch in _batches(records, batch_size):
        ok = [r for r in batch if r.error is None]
        routed = iter(model.route([r.text for r in ok], [r.title for r in ok], [r.id for r in ok]))
        for rec in batch:
            if rec.error is None:
                answer = next(routed)
                if answer.error:
                    answer.error = f"row {rec.row}: {answer.error}"
            else:
                answer = RoutingAnswer(id=rec.id, error=rec.error, model_version=model.version)
            yield rec, answer


def output_record(rec: InputRecord, answer: RoutingAnswer) -> dict[str, object]:
    out = answer.model_dump()
    out["row"] = rec.row
    return out


def tag_file(
    model: WhistleClassifier,
    input_path: str | Path,
    output_path: str | Path,
    fields: FieldMap | None = None,
    batch_size: int = 1024,
) -> TagSummary:
    """Tag INPUT into OUTPUT (JSONL). Written to a temporary file and moved into place only when
    complete: a failure never leaves a half-written output."""
    output_path = Path(output_path)
    if output_path.resolve() == Path(input_path).resolve():
        raise DataError(f"output {output_path} would overwrite the input")
    output_path.parent.mkdir(parents=True, exist_ok=True)
    summary = TagSummary()
    fd, tmp_name = tempfile.mkstemp(dir=output_path.parent, prefix=f".{output_path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for rec, answer in tag_records(model, read_records(input_path, fields), batch_size):
                summary.add(answer)
                out.write(json.dumps(output_record(rec, answer), ensure_ascii=False))
                out.write("\n")
        os.replace(tmp_name, output_path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return summary
