"""Streaming readers for message files (JSONL, CSV): one record per input row, never fewer.

A row that cannot be read (broken JSON, missing text column, wrong type) still comes out, with
``error`` set, so downstream counts reconcile with the input.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from whistle.errors import DataError

csv.field_size_limit(sys.maxsize)


@dataclass
class FieldMap:
    id: str = "id"
    text: str = "text"
    title: str | None = "title"


@dataclass
class InputRecord:
    row: int  # 1-based line (JSONL) or data row (CSV) number
    id: str
    text: object = None
    title: str | None = None
    fields: dict[str, object] = field(default_factory=dict)
    error: str | None = None


def detect_format(path: str | Path) -> str:
    name = str(path).lower()
    for suffix, fmt in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl"), (".csv", "csv")):
        if name.endswith(suffix) or name.endswith(suffix + ".gz"):
            return fmt
    raise DataError(f"{path}: unknown file type; use .jsonl or .csv")


def _open_text(path: Path, encoding: str = "utf-8-sig"):  # noqa: ANN202
    if str(path).endswith(".gz"):
        import gzip

        return gzip.open(path, "rt", encoding=encoding, newline="")
    return path.open("r", encoding=encoding, newline="")


def read_records(path: str | Path, fields: FieldMap | None = None, encoding: str = "utf-8-sig") -> Iterator[InputRecord]:
    """Yield one InputRecord per input row, streaming (memory does not grow with the file)."""
    path = Path(path)
    fields = fields or FieldMap()
    if not path.is_file():
        raise DataError(f"input file not found: {path}")
    fmt = detect_format(path)
    if fmt == "jsonl":
        yield from _read_jsonl(path, fields, encoding)
    else:
        yield from _read_csv(path, fields, encoding)


def _record(row: int, obj: dict[str, object], fields: FieldMap, where: str) -> InputRecord:
    raw_id = obj.get(fields.id)
    rec_id = str(raw_id) if raw_id not in (None, "") else f"row-{row}"
    rec = InputRecord(row=row, id=rec_id, fields=obj)
    if fields.text not in obj:
        rec.error = f"{where}: no {fields.text!r} field"
        return rec
    rec.text = obj[fields.text]
    if not isinstance(rec.text, str):
        rec.error = f"{where}: {fields.text!r} must be a string, got {type(rec.text).__name__}"
        return rec
    title = obj.get(fields.title) if fields.title else None
    if title is not None and not isinstance(title, str):
        rec.error = f"{where}: {fields.title!r} must be a string, got {type(title).__name__}"
        return rec
    rec.title = title
    return rec


def _read_jsonl(path: Path, fields: FieldMap, encoding: str) -> Iterator[InputRecord]:
    with _open_text(path, encoding) as fh:
        row = 0
        for row, line in enumerate(fh, start=1):
            where = f"{path.name} line {row}"
            if not line.strip():
                yield InputRecord(row=row, id=f"row-{row}", error=f"{where}: empty line")
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                yield InputRecord(row=row, id=f"row-{row}", error=f"{where}: broken JSON ({exc.msg} at column {exc.colno})")
                continue
            if not isinstance(obj, dict):
                yield InputRecord(row=row, id=f"row-{row}", error=f"{where}: expected a JSON object, got {type(obj).__name__}")
                continue
            yield _record(row, obj, fields, where)


def _read_csv(path: Path, fields: FieldMap, encoding: str) -> Iterator[InputRecord]:
    with _open_text(path, encoding) as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            return
        if fields.text not in header:
            raise DataError(
                f"{path}: no {fields.text!r} column (columns: {', '.join(header) or 'none'}); "
                f"name the text column with --text-field"
            )
        width = len(header)
        for row, values in enumerate(reader, start=1):
            where = f"{path.name} row {row}"
            if len(values) != width:
                obj = dict(zip(header, values))
                rec = _record(row, obj, fields, where)
                rec.error = rec.error or f"{where}: {len(values)} values for {width} columns"
                yield rec
                continue
            yield _record(row, dict(zip(header, values)), fields, where)
