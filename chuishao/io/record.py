"""One input record: the columns to read, the record type, and how one row's values become a record.

The readers (records.py for JSONL and CSV, tabular.py for Excel and Parquet) and the Spark engine share these.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from chuishao.errors import DataError


@dataclass
class FieldMap:
    id: str = "id"
    text: str = "text"
    title: str | None = "title"


@dataclass
class InputRecord:
    row: int  # 1-based line (JSONL) or data row (CSV, Excel, Parquet) number
    id: str
    text: object = None
    title: str | None = None
    fields: dict[str, object] = field(default_factory=dict)
    error: str | None = None

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        # a plain tuple per record: half the pickling cost of the dataclass default when
        # chunks travel to and from worker processes
        return InputRecord, (self.row, self.id, self.text, self.title, self.fields, self.error)


def _id_text(value: object) -> str:
    """An id as text: a JSON value other than a string as JSON writes it (true, {"a": 1}), not as Python does."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def make_record(row: int, obj: dict[str, object], fields: FieldMap, where: str) -> InputRecord:
    raw_id = obj.get(fields.id)
    rec_id = _id_text(raw_id) if raw_id not in (None, "") else f"row-{row}"
    rec = InputRecord(row=row, id=rec_id, fields=obj)
    if fields.text not in obj:
        rec.error = f"{where}: no {fields.text!r} field"
        return rec
    rec.text = obj[fields.text]
    if rec.text is None:  # null in JSON, an empty cell (or a formula never calculated) in Excel
        rec.error = f"{where}: {fields.text!r} is empty"
        return rec
    if not isinstance(rec.text, str):
        rec.error = f"{where}: {fields.text!r} must be a string, got {type(rec.text).__name__}"
        return rec
    title = obj.get(fields.title) if fields.title else None
    if title is not None and not isinstance(title, str):
        rec.error = f"{where}: {fields.title!r} must be a string, got {type(title).__name__}"
        return rec
    rec.title = title
    return rec


def has_given_id(rec: InputRecord, fields: FieldMap | None = None) -> bool:
    """Whether the row had its own id (else ``make_record`` made one from the row number)."""
    return rec.fields.get((fields or FieldMap()).id) not in (None, "")


_WARNED: set[tuple[str, str]] = set()


def check_columns(path: Path, columns: list[str], fields: FieldMap, need_text: bool = True) -> None:
    """The text column is there and no column name repeats (the last one would silently win). A
    missing id or title column is not an error (ids become row numbers, titles are left out) but
    changes the answers, so it is said once per file on stderr. With ``need_text`` false (a file of
    held-out ids) the id column may stand in for the text column."""
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise DataError(f"{path}: column names used twice: {', '.join(repeated)}; rename them so each is unique")
    if not need_text and fields.text not in columns and fields.id in columns:
        _warn_once(path, fields.text, f"no {fields.text!r} column: held out by id alone, the file gives no texts to "
                                      f"compare for near-copies (columns: {', '.join(columns)}); name the text column with "
                                      f"--text-field if it has one")
        return
    if fields.text not in columns:
        hint = "name the text column with --text-field" if need_text else \
            "name the text column with --text-field, or the id column with --id-field for a file of ids"
        raise missing_column(path, fields.text, columns, hint)
    seen = ", ".join(columns)
    if fields.title is not None and fields.title not in columns:
        _warn_once(path, fields.title, f"no {fields.title!r} column, so no titles are used (columns: {seen}); "
                                       f"name the title column with --title-field, or --title-field '' for none")
    if fields.id and fields.id not in columns:
        _warn_once(path, fields.id, f"no {fields.id!r} column, so rows are identified by their row number "
                                    f"(columns: {seen}); name the id column with --id-field")


def missing_column(path: Path, column: str, columns: list[str], hint: str) -> DataError:
    """The one-line error for a column the input lacks, listing those it has (the text column, a named option's)."""
    return DataError(f"{path}: no {column!r} column (columns: {', '.join(columns) or 'none'}); {hint}")


def _warn_once(path: Path, column: str, message: str) -> None:
    key = (str(Path(path).resolve()), column)
    if key not in _WARNED:
        _WARNED.add(key)
        print(f"chuishao: warning: {path}: {message}", file=sys.stderr, flush=True)
