"""Write the labelling sheet of `chuishao suggest-labels`: CSV (UTF-8 with BOM, so Excel reads the
Chinese right) or XLSX (drop-down lists of the guide's codes, the codes' names on a second sheet).

The columns are ``training.sheet.SHEET_COLUMNS``; ``chuishao train --sheets SHEET`` reads the file back.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

from chuishao.analysis.suggest import Pick
from chuishao.errors import DataError
from chuishao.extras import need
from chuishao.taxonomy import Taxonomy
from chuishao.training.sheet import SHEET_COLUMNS

LABELS_SHEET = "labels"
CODES_SHEET = "codes"
_WIDTHS = {"id": 14, "title": 24, "text": 80, "suggested": 36, "label": 9, "sub": 9, "note": 24}


def hint(pick: Pick, taxonomy: Taxonomy) -> str:
    """The model's top 3 as one cell: ``W05 噪声扰民 0.41 | W03 违法群租 0.30 | ...``."""
    return " | ".join(f"{code} {taxonomy.name_of(code)} {p:.2f}" for code, p in pick.top)


def _rows(picks: Sequence[Pick], taxonomy: Taxonomy, hints: bool) -> list[list[str]]:
    return [[p.id, p.title or "", p.text, hint(p, taxonomy) if hints else "", "", "", ""] for p in picks]


def write_sheet(path: Path, picks: Sequence[Pick], taxonomy: Taxonomy, *, hints: bool = True, hide_hints: bool = False) -> None:
    """Write atomically (a partial file never takes the sheet's name). ``hints`` False leaves the
    suggested column empty; ``hide_hints`` hides it in XLSX (the annotator can show it again)."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise DataError(f"{path}: a labelling sheet is .csv or .xlsx")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    try:
        if suffix == ".csv":
            _write_csv(tmp, _rows(picks, taxonomy, hints))
        else:
            _write_xlsx(tmp, _rows(picks, taxonomy, hints), taxonomy, hide_hints)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(SHEET_COLUMNS)
        writer.writerows(rows)


def _write_xlsx(path: Path, rows: list[list[str]], taxonomy: Taxonomy, hide_hints: bool) -> None:
    openpyxl = need("openpyxl")
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Alignment, Font
    from openpyxl.worksheet.datavalidation import DataValidation

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = LABELS_SHEET
    ws.append(list(SHEET_COLUMNS))
    for values in rows:
        ws.append([ILLEGAL_CHARACTERS_RE.sub("\ufffd", v) for v in values])
    for row in ws.iter_rows(min_row=2):
        for cell in row:
            cell.data_type = "s"  # text, never a formula: a message starting with "=" stays a message
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    for cell in ws[1]:
        cell.font = Font(bold=True)
    letters = {name: openpyxl.utils.get_column_letter(i + 1) for i, name in enumerate(SHEET_COLUMNS)}
    for name, letter in letters.items():
        ws.column_dimensions[letter].width = _WIDTHS[name]
    ws.column_dimensions[letters["suggested"]].hidden = hide_hints
    ws.freeze_panes = "A2"

    codes = wb.create_sheet(CODES_SHEET)
    codes.append(["topic", "name", "sub", "sub_name", "sub_of"])
    topics, subs = list(taxonomy.labels), [(s, t) for t in taxonomy.labels for s in taxonomy.subs_of(t)]
    for i in range(max(len(topics), len(subs))):
        topic = topics[i] if i < len(topics) else None
        sub = subs[i] if i < len(subs) else None
        codes.append([topic, taxonomy.name_of(topic) if topic else None,
                      sub[0] if sub else None, taxonomy.name_of(sub[0]) if sub else None, sub[1] if sub else None])
    for letter, width in zip("ABCDE", (8, 16, 8, 20, 8), strict=True):
        codes.column_dimensions[letter].width = width

    last = len(rows) + 1
    for column, source, what in (("label", f"$A$2:$A${len(topics) + 1}", "a topic code"),
                                 ("sub", f"$C$2:$C${len(subs) + 1}", "a sub-problem code")):
        if column == "sub" and not subs:
            continue
        check = DataValidation(type="list", formula1=f"={CODES_SHEET}!{source}", allow_blank=True,
                               showErrorMessage=True, errorTitle="not a code",
                               error=f"Choose {what} from the list (sheet '{CODES_SHEET}' names them).")
        check.add(f"{letters[column]}2:{letters[column]}{max(last, 2)}")
        ws.add_data_validation(check)
    wb.save(path)
