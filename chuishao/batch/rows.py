"""From input records to output rows: the one function both engines (local, Spark) apply."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice

from chuishao.io.records import InputRecord
from chuishao.models.answer import RoutingAnswer, error_answer
from chuishao.models.cascade import RoutingModel

# Output columns, in order: the routing answer, then the input row number; kept input columns follow.
CHUISHAO_COLUMNS: tuple[str, ...] = (*RoutingAnswer.model_fields, "row")
# Tabular outputs (CSV, TSV, Excel, Parquet) also carry the departments as two flat columns, after
# the nested one: a spreadsheet filter or a SQL query needs no JSON parsing to use them.
FLAT_DEPARTMENTS: tuple[str, str] = ("lead_department", "assist_departments")
ASSIST_SEPARATOR = "、"
_AFTER = CHUISHAO_COLUMNS.index("departments") + 1
# ... and the place as flat columns after the nested jurisdiction (its matched names and confidence stay there)
JURISDICTION_PARTS: tuple[str, ...] = ("province", "city", "district", "street", "community", "place", "office")
FLAT_JURISDICTION: tuple[str, ...] = tuple(f"jurisdiction_{part}" for part in JURISDICTION_PARTS)
_AFTER_PLACE = CHUISHAO_COLUMNS.index("jurisdiction") + 1
TABULAR_COLUMNS: tuple[str, ...] = (*CHUISHAO_COLUMNS[:_AFTER], *FLAT_DEPARTMENTS, *CHUISHAO_COLUMNS[_AFTER:_AFTER_PLACE],
                                    *FLAT_JURISDICTION, *CHUISHAO_COLUMNS[_AFTER_PLACE:])
KEPT_PREFIX = "input_"


def flat_departments(departments: object) -> tuple[str | None, str | None]:
    """(lead, assists joined by "、") of an answer's departments; (None, None) when it has none."""
    if not isinstance(departments, dict):
        return None, None
    assist = departments.get("assist")
    return departments.get("lead"), None if assist is None else ASSIST_SEPARATOR.join(assist)


def flat_jurisdiction(jurisdiction: object) -> tuple[object, ...]:
    """The FLAT_JURISDICTION values of an answer's jurisdiction; all None when it has none."""
    if not isinstance(jurisdiction, dict):
        return (None,) * len(JURISDICTION_PARTS)
    return tuple(jurisdiction.get(part) for part in JURISDICTION_PARTS)


def kept_name(column: str) -> str:
    """Output name of a carried-through input column: prefixed when it is one of ours, and when it
    already starts with the prefix. The second rule keeps the renaming one-to-one: an input with
    both ``id`` and ``input_id`` gives ``input_id`` and ``input_input_id``, and no value is lost."""
    return KEPT_PREFIX + column if column in TABULAR_COLUMNS or column.startswith(KEPT_PREFIX) else column


def as_text(value: object) -> str | None:
    """Kept values in typed outputs are text: one schema whatever the rows hold (JSON for non-strings)."""
    if value is None or isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:  # dates and the like from Excel/Parquet
        return str(value)


def batches(items: Iterable[InputRecord], size: int) -> Iterator[list[InputRecord]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def tag_records(model: RoutingModel, records: Iterable[InputRecord],
                batch_size: int = 1024) -> Iterator[tuple[InputRecord, dict[str, object]]]:
    """Answers (``RoutingAnswer`` fields as dicts) in input order; rows the reader already
    marked bad keep their reader error."""
    for batch in batches(records, batch_size):
        ok = [r for r in batch if r.error is None]
        routed = iter(_route(model, ok))
        for rec in batch:
            if rec.error is None:
                answer = next(routed)
                if answer["error"]:
                    answer["error"] = f"row {rec.row}: {answer['error']}"
            else:
                answer = error_answer(rec.id, rec.error, model.version)
            yield rec, answer


def _route(model: RoutingModel, records: list[InputRecord]) -> list[dict[str, object]]:
    """The model on a batch; if it raises, on each half in turn, so only the culprit gets an error."""
    try:
        return model.route_dicts([r.text for r in records], titles=[r.title for r in records], ids=[r.id for r in records])
    except Exception as exc:  # noqa: BLE001 - one odd message must not sink millions of rows
        if len(records) == 1:
            return [error_answer(records[0].id, f"model failed ({type(exc).__name__}: {exc})", model.version)]
        half = len(records) // 2
        return _route(model, records[:half]) + _route(model, records[half:])


def output_record(rec: InputRecord, answer: dict[str, object], keep_columns: bool = False,
                  kept_as_text: bool = False) -> dict[str, object]:
    out = {**answer, "row": rec.row}
    if keep_columns:
        for column, value in rec.fields.items():
            out[kept_name(column)] = as_text(value) if kept_as_text else value
    return out


def output_line(rec: InputRecord, answer: dict[str, object], keep_columns: bool = False,
                kept_as_text: bool = False) -> str:
    """``output_record`` as one JSONL line."""
    return json.dumps(output_record(rec, answer, keep_columns, kept_as_text), ensure_ascii=False,
                      separators=(",", ":")) + "\n"


def kept_columns(records: Sequence[InputRecord]) -> list[str]:
    """Output names of the input columns seen in these records, in order of first appearance."""
    seen: dict[str, None] = {}
    for rec in records:
        for column in rec.fields:
            seen.setdefault(kept_name(column), None)
    return list(seen)
