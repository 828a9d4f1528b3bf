"""Streaming readers for message files (JSONL, CSV, Excel, Parquet): one record per input row, never fewer.

A row that cannot be read (broken JSON, undecodable bytes, missing text column, wrong type) still
comes out, with ``error`` set, so downstream counts reconcile with the input.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from chuishao.errors import DataError
from chuishao.io.formats import delimiter_for, detect_format
from chuishao.io.record import FieldMap, InputRecord, check_columns, has_given_id, make_record
from chuishao.io.text import AUTO, DecodedLines, head_bytes, open_binary, resolve_encoding

csv.field_size_limit(sys.maxsize)

# FieldMap, InputRecord and the row helpers live in io/record.py (tabular.py uses them too) and are re-exported here.
__all__ = ["FieldMap", "InputRecord", "check_columns", "check_jsonl_fields", "csv_record", "detect_format", "has_given_id",
           "make_record", "parse_jsonl_line", "read_records"]


def read_records(path: str | Path, fields: FieldMap | None = None, encoding: str = AUTO,
                 sheet: str | None = None, need_text: bool = True) -> Iterator[InputRecord]:
    """Yield one InputRecord per input row, streaming (memory does not grow with the file).

    ``encoding`` applies to JSONL and CSV: ``auto`` (UTF-8, else GB18030), or any Python codec name.
    ``sheet`` names the Excel worksheet to read (default: the first).
    Raises DataError before the first record when the file, its sheet or its text column is missing;
    with ``need_text`` false (held-out files, which may list ids only) a file with an id column and no
    text column reads as records that carry their id and a "no text" error.
    """
    path = Path(path)
    fields = fields or FieldMap()
    if path.is_dir():
        raise DataError(f"{path}: is a directory; give a file (the spark engine reads folders: --engine spark)")
    if not path.is_file():
        raise DataError(f"input file not found: {path}")
    fmt = detect_format(path)
    if sheet is not None and fmt != "xlsx":
        raise DataError(f"{path}: --sheet applies to Excel (.xlsx) input only")
    if fmt == "jsonl":
        refuse_json_array(path)
        encoding = resolve_encoding(path, encoding)
        check_jsonl_fields(path, fields, encoding, need_text)
        return _read_jsonl(path, fields, encoding)
    if fmt == "csv":
        return _read_csv(path, fields, resolve_encoding(path, encoding), need_text)
    from chuishao.io import tabular  # pyarrow / openpyxl are optional: import only when needed

    if fmt == "xlsx":
        return tabular.read_xlsx(path, fields, sheet, need_text)
    return tabular.read_parquet(path, fields, need_text)


def csv_record(row: int, header: list[str], values: list[str], fields: FieldMap, where: str,
               delimiter: str = ",") -> InputRecord:
    """One CSV row to a record; a row with more or fewer values than the header is an error (shared
    with the Spark engine so both paths agree row for row)."""
    rec = make_record(row, dict(zip(header, values, strict=False)), fields, where)
    if len(values) != len(header):
        rec.error = rec.error or f"{where}: {len(values)} values for {len(header)} columns"
    rec.error = rec.error or swallowed_rows(values, len(header), where, delimiter)
    return rec


def _shape(cell: str) -> str:
    """An id's shape: digits as 9, Latin letters as a ("A1-0203" and "B7-1145" alike, a sentence not)."""
    return re.sub(r"[A-Za-z]", "a", re.sub(r"\d", "9", cell.strip()))


def swallowed_rows(values: Sequence[str | None], width: int, where: str, delimiter: str = ",") -> str | None:
    """The error of a row whose values hold lines that read as rows of the file: ``width`` values by its
    delimiter, the first shaped like this row's first value (an id column: shared with the Spark engine). A
    double quote opened by mistake and closed by one some lines further on makes a CSV reader take those lines,
    whole rows, into one value without a word (one never closed, at the end of the file: _unclosed_quote_check).
    A real multi-line value seldom has a line of exactly that many cells that starts like an id."""
    first = (values[0] or "") if values else ""
    if width < 2 or not first.strip():
        return None
    n = 0
    for value in values:
        for line in (value or "").split("\n")[1:]:
            if line.count(delimiter) >= width - 1:
                cells = next(csv.reader([line], delimiter=delimiter), [])
                n += len(cells) == width and _shape(cells[0]) == _shape(first)
    if not n:
        return None
    # the count in brackets: chuishao events counts its rows per reason, the text before them
    return (f"{where}: a quoted value holds lines that read as rows of their own ({n} lines of {width} values): a stray "
            f"double quote? they were read into this row, not tagged as rows; close or remove that quote")


def parse_jsonl_line(row: int, line: str, fields: FieldMap, where: str) -> InputRecord:
    """One JSONL line to a record (shared with the Spark engine so both paths agree row for row)."""
    if not line.strip():
        return InputRecord(row=row, id=f"row-{row}", error=f"{where}: empty line")
    try:
        obj = json.loads(line)
    except ValueError as exc:
        msg = f"{exc.msg}: column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
        return InputRecord(row=row, id=f"row-{row}", error=f"{where}: broken JSON ({msg})")
    if not isinstance(obj, dict):
        return InputRecord(row=row, id=f"row-{row}", error=f"{where}: expected a JSON object, got {type(obj).__name__}")
    return make_record(row, obj, fields, where)


PEEK_LINES = 1000  # lines of a JSONL file whose fields stand for its columns


def check_jsonl_fields(path: Path, fields: FieldMap, encoding: str, need_text: bool = True) -> None:
    """The text field is in the file and the title/id fields are said once when missing, as for a tabular
    file's header (check_columns), judged by the objects of the first PEEK_LINES lines: a misspelt
    --text-field stops the run before it makes an error row of every message."""
    keys: dict[str, None] = {}
    objects = 0
    with open_binary(path) as fh:
        for n, line in enumerate(DecodedLines(fh, encoding), start=1):
            if n > PEEK_LINES:
                break
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                objects += 1
                keys.update(dict.fromkeys(map(str, obj)))
    if objects:
        check_columns(path, list(keys), fields, need_text)


def refuse_json_array(path: Path) -> None:
    """A file that is one JSON array (pretty-printed or on one line) is not JSON Lines: read line by line
    it would be a row error per line, or all its messages one error row. A JSONL file whose first line is
    an array of anything but objects is still JSONL (that line is a row error)."""
    stripped = head_bytes(path, 1 << 20, line=True).strip().lstrip(b"\xef\xbb\xbf")
    if not stripped.startswith(b"["):
        return
    try:
        first = json.loads(stripped)
        if not (isinstance(first, list) and first and all(isinstance(x, dict) for x in first)):
            return
    except ValueError:
        pass
    raise DataError(f"{path}: a JSON array, not JSON Lines (one object per line); "
                    f"convert it first, e.g. jq -c '.[]' {path.name} > {path.stem}.lines.jsonl")  # never onto itself


def _read_jsonl(path: Path, fields: FieldMap, encoding: str) -> Iterator[InputRecord]:
    with open_binary(path) as fh:
        lines = DecodedLines(fh, encoding)
        for row, line in enumerate(lines, start=1):
            where = f"{path.name} line {row}"
            if row in lines.bad_lines:
                yield InputRecord(row=row, id=f"row-{row}", error=f"{where}: bytes that are not valid {encoding}")
                continue
            yield parse_jsonl_line(row, line.rstrip("\r\n"), fields, where)


def _read_csv(path: Path, fields: FieldMap, encoding: str, need_text: bool = True) -> Iterator[InputRecord]:
    # Validate the header eagerly (a wrong --text-field is a usage error, not a million row errors).
    fh = open_binary(path)
    lines = DecodedLines(fh, encoding, bare_cr=BARE_CR, count_quotes=True)
    reader = csv.reader(lines, delimiter=delimiter_for(path))
    try:
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise DataError(f"{path}: unreadable header line ({exc})") from None
        if header is not None:
            check_columns(path, header, fields, need_text)
    except BaseException:
        fh.close()
        raise
    return _csv_rows(path, fh, lines, reader, header, fields)


# A Unicode noncharacter: never in real text, so it can stand in for a \r inside a line.
BARE_CR = "\ufdd0"


def _csv_problem(exc: csv.Error) -> str:
    message = str(exc)
    if "new-line character seen in unquoted field" in message:  # the csv module's wording is for programmers
        return "a line break inside an unquoted value; values with line breaks must be in double quotes"
    return message


def _csv_rows(path: Path, fh, lines: DecodedLines, reader, header: list[str] | None,
              fields: FieldMap) -> Iterator[InputRecord]:
    delimiter = delimiter_for(path)
    with fh:
        if header is None:
            return
        first_line = reader.line_num + 1
        row = 0
        held: tuple[InputRecord, str, int, int, int] | None = None  # the previous row, its lines and quotes
        while True:
            row += 1
            where = f"{path.name} row {row}"
            lines.quotes = 0
            try:
                values = next(reader)
            except StopIteration:
                if held is not None:
                    yield _unclosed_quote_check(*held)
                return
            except csv.Error as exc:
                # the reader goes on with the next line
                rec = InputRecord(row=row, id=f"row-{row}", error=f"{where}: unreadable CSV row ({_csv_problem(exc)})")
            else:
                if not values:  # a blank line is no row (Spark and pandas skip it too): not counted
                    row -= 1
                    first_line = reader.line_num + 1
                    continue
                if lines.any_cr(first_line, reader.line_num):
                    values = [v.replace(BARE_CR, "\r") for v in values]
                rec = csv_record(row, header, values, fields, where, delimiter)
                if lines.any_bad(first_line, reader.line_num):
                    rec.error = f"{where}: bytes that are not valid {lines.encoding}"
            if held is not None:  # a row is yielded once the next one shows it was not the last
                yield held[0]
            held = (rec, where, first_line, reader.line_num, lines.quotes)
            first_line = reader.line_num + 1


def _unclosed_quote_check(rec: InputRecord, where: str, first_line: int, last_line: int, quotes: int) -> InputRecord:
    """The last row, with an error if a quote opened in it is never closed. The csv module then
    reads the rest of the file into that one value without a word, and the rows after it would
    vanish. In a well-formed row quotes come in pairs (an escaped one is doubled), so an odd count
    in a last row that spans several lines is that case."""
    if last_line > first_line and quotes % 2:
        rec.error = (f"{where} (line {first_line}): a quote opened here is never closed, so the "
                     f"{last_line - first_line} lines after it were read into this row; close or remove that quote")
    return rec
