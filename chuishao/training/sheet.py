"""Labelling sheets: the CSV/XLSX files `chuishao suggest-labels` writes and annotators fill.

A sheet has the columns ``SHEET_COLUMNS``. Read back for training (``data.sheets``), a row whose
``label`` cell is empty is not labelled yet: it is skipped and counted, never an error (an
annotator labels part of a sheet). A filled cell must hold a code of the taxonomy; anything else
stops training with every bad cell named by its row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chuishao.errors import DataError
from chuishao.io.records import FieldMap, has_given_id, read_records
from chuishao.taxonomy import Taxonomy
from chuishao.training.data import LabelledSet, label_text

# id, title, text: the message; suggested: the model's top 3 (a hint); label, sub, note: the annotator's
SHEET_COLUMNS = ("id", "title", "text", "suggested", "label", "sub", "note")
SHEET_FIELDS = FieldMap(id="id", text="text", title="title")


@dataclass
class SheetRows:
    data: LabelledSet
    unlabelled: int  # rows whose label cell was left empty


def _cell(value: object) -> str:
    return "" if value is None else label_text(value).strip()


def _code(value: str, known: dict[str, str]) -> str:
    """A typed code as the taxonomy spells it: ``w05`` and ``W05`` are the same code."""
    return known.get(value.upper(), value)


def read_sheet(path: str | Path, taxonomy: Taxonomy | None) -> SheetRows:
    """The labelled rows of a filled sheet. Unknown codes, sub-problems of another topic, a sub-problem
    without a topic and unreadable rows with a label are errors listing their rows."""
    path = Path(path)
    data = LabelledSet()
    unlabelled = 0
    problems: list[str] = []
    topics = {c.upper(): c for c in taxonomy.labels} if taxonomy and not taxonomy.is_free else {}
    subs = {c.upper(): c for c in taxonomy.sub_codes} if taxonomy and not taxonomy.is_free else {}
    for rec in read_records(path, SHEET_FIELDS):
        where = f"{path.name} row {rec.row}"
        label, sub = _cell(rec.fields.get("label")), _cell(rec.fields.get("sub"))
        if not label:
            if sub:
                problems.append(f"{where}: sub-problem {sub!r} without a label")
            else:
                unlabelled += 1
            continue
        if rec.error:
            problems.append(rec.error)
            continue
        label, sub = _code(label, topics), _code(sub, subs) if sub else ""
        if topics and label not in topics.values():
            problems.append(f"{where}: unknown code {label!r}")
            continue
        if sub and taxonomy is not None and not taxonomy.is_free and sub not in taxonomy.subs_of(label):
            problems.append(f"{where}: sub-problem {sub!r} is not one of {label}'s ({', '.join(taxonomy.subs_of(label))})")
            continue
        data.ids.append(rec.id if has_given_id(rec, SHEET_FIELDS) else f"{path.name}:{rec.id}")
        data.titles.append(rec.title)
        data.texts.append(rec.text)  # type: ignore[arg-type]
        data.labels.append(label)
        data.subs.append(sub or None)
        data.weights.append(1.0)
    if problems:
        known = f"Known codes: {', '.join(taxonomy.labels)}." if topics and taxonomy is not None else ""
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise DataError(f"{path}: {len(problems)} sheet rows cannot be used:\n  {shown}{more}\n {known}".rstrip())
    return SheetRows(data, unlabelled)
