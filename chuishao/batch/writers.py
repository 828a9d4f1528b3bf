"""Output writers: a run's JSONL chunk files, in order, into one JSONL, CSV, Excel or Parquet file.

The chunks are the checkpoint of a resumable run; joining them is the last step, streamed chunk
by chunk so memory stays flat whatever the row count.
"""

from __future__ import annotations

import codecs
import csv
import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from chuishao.batch.rows import (
    ASSIST_SEPARATOR,
    FLAT_DEPARTMENTS,
    FLAT_JURISDICTION,
    JURISDICTION_PARTS,
    TABULAR_COLUMNS,
    flat_departments,
    flat_jurisdiction,
)
from chuishao.errors import DataError

XLSX_MAX_ROWS = 1_048_576 - 1  # Excel's limit, less the header row
_NESTED = ("top", "departments", "evidence", "jurisdiction", "urgency")

# Characters the CSV output encoding cannot hold (an emoji in GBK) become "?", counted so that the
# run can say how many: silently changed ids or texts would go unnoticed.
_REPLACED = [0]


def _count_and_replace(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    _REPLACED[0] += exc.end - exc.start
    return "?" * (exc.end - exc.start), exc.end


codecs.register_error("chuishao-count-replace", _count_and_replace)


def arrow_schema(kept: Sequence[str] = ()):
    """The typed output schema (Parquet, Spark): nested answer fields stay nested; kept columns are text."""
    import pyarrow as pa

    topic_score = pa.struct([("topic", pa.string()), ("topic_name", pa.string()), ("score", pa.float64())])
    fields = [
        ("id", pa.string()), ("topic", pa.string()), ("topic_name", pa.string()), ("area", pa.string()),
        ("sub", pa.string()), ("sub_name", pa.string()), ("confidence", pa.float64()), ("needs_review", pa.bool_()),
        ("top", pa.list_(topic_score)),
        ("departments", pa.struct([("lead", pa.string()), ("assist", pa.list_(pa.string()))])),
        ("evidence", pa.list_(pa.string())),
        ("jurisdiction", pa.struct([*((part, pa.string()) for part in JURISDICTION_PARTS),
                                    ("matched", pa.list_(pa.string())), ("confidence", pa.float64()),
                                    ("candidates", pa.int64()), ("unlisted", pa.list_(pa.string()))])),
        ("urgency", pa.struct([("level", pa.string()), ("triggers", pa.list_(pa.string()))])),
        ("model_version", pa.string()), ("error", pa.string()),
        ("row", pa.int64()),
    ]
    return pa.schema(fields + [(name, pa.string()) for name in kept])


def _flat(value: object) -> object:
    """A cell for CSV/Excel: nested values as compact JSON text, booleans as true/false."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def tabular_arrow_schema(kept: Sequence[str] = ()):
    """``arrow_schema`` with the flat department and place columns after the nested ones (Parquet output)."""
    import pyarrow as pa

    schema = arrow_schema(kept)
    for nested, flat in (("departments", FLAT_DEPARTMENTS), ("jurisdiction", FLAT_JURISDICTION)):
        at = schema.get_field_index(nested) + 1
        for offset, name in enumerate(flat):
            schema = schema.insert(at + offset, pa.field(name, pa.string()))
    return schema


def _chunk_dicts(chunks: Sequence[Path]) -> Iterator[dict]:
    """The rows of the chunks, with the flat department columns filled in."""
    for chunk in chunks:
        with chunk.open("r", encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                rec[FLAT_DEPARTMENTS[0]], rec[FLAT_DEPARTMENTS[1]] = flat_departments(rec.get("departments"))
                rec.update(zip(FLAT_JURISDICTION, flat_jurisdiction(rec.get("jurisdiction")), strict=True))
                yield rec


def write_jsonl(chunks: Sequence[Path], out: BinaryIO, kept: Sequence[str]) -> None:
    for chunk in chunks:  # chunks are already JSONL: a byte copy
        with chunk.open("rb") as fh:
            shutil.copyfileobj(fh, out, 1 << 20)


def write_csv(chunks: Sequence[Path], out: BinaryIO, kept: Sequence[str], encoding: str = "utf-8",
              delimiter: str = ",") -> int:
    """Returns how many characters the encoding could not hold (written as "?")."""
    import io

    columns = [*TABULAR_COLUMNS, *kept]
    _REPLACED[0] = 0
    text = io.TextIOWrapper(out, encoding=encoding, errors="chuishao-count-replace", newline="", write_through=False)
    writer = csv.writer(text, delimiter=delimiter)
    writer.writerow(columns)
    for rec in _chunk_dicts(chunks):
        writer.writerow([_flat(rec.get(c)) for c in columns])
    text.flush()
    text.detach()
    return _REPLACED[0]


def write_parquet(chunks: Sequence[Path], out: BinaryIO, kept: Sequence[str]) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    schema, written = arrow_schema(kept), tabular_arrow_schema(kept)
    parse = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    with pq.ParquetWriter(out, written, compression="zstd") as writer:
        for chunk in chunks:  # one chunk at a time: one row group each, flat memory
            table = pj.read_json(chunk, parse_options=parse, read_options=pj.ReadOptions(block_size=1 << 24))
            table = table.select(schema.names).cast(schema)
            departments = table.column("departments")
            place = table.column("jurisdiction")
            flat = {FLAT_DEPARTMENTS[0]: pc.struct_field(departments, "lead"),
                    FLAT_DEPARTMENTS[1]: pc.binary_join(pc.struct_field(departments, "assist"), ASSIST_SEPARATOR),
                    **{name: pc.struct_field(place, part) for name, part in zip(FLAT_JURISDICTION, JURISDICTION_PARTS,
                                                                                 strict=True)}}
            writer.write_table(pa.table({name: flat[name] if name in flat else table.column(name)
                                         for name in written.names}, schema=written))
            del table
            pa.default_memory_pool().release_unused()  # else the pool keeps every chunk's peak


def write_xlsx(chunks: Sequence[Path], out: BinaryIO, kept: Sequence[str], rows: int) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    def cell(value: object) -> object:
        if not isinstance(value, str) or not value:
            return value
        if ILLEGAL_CHARACTERS_RE.search(value):  # control characters: Excel files cannot hold them
            value = str(ILLEGAL_CHARACTERS_RE.sub("\ufffd", value))
        if value[0] != "=":
            return value
        # kept as text: openpyxl would write "=1+1" as a formula (the id lost; formula injection)
        c = WriteOnlyCell(ws, value=value)
        c.data_type = "s"
        return c

    if rows > XLSX_MAX_ROWS:
        raise DataError(f"{rows} rows do not fit in an Excel sheet ({XLSX_MAX_ROWS} at most): write .parquet or .csv")
    columns = [*TABULAR_COLUMNS, *kept]
    wb = Workbook(write_only=True)  # streams rows to disk instead of holding cells in memory
    ws = wb.create_sheet("chuishao")
    ws.append(columns)
    for rec in _chunk_dicts(chunks):
        # needs_review as an Excel boolean, so a filter on it works (CSV has no booleans: true/false)
        ws.append([value if isinstance(value := rec.get(c), bool) else cell(_flat(value)) for c in columns])
    wb.save(out)


def write_output(fmt: str, chunks: Sequence[Path], out: BinaryIO, kept: Sequence[str], rows: int,
                 csv_encoding: str = "utf-8", delimiter: str = ",") -> int:
    """Write the output; returns how many characters the CSV encoding could not hold (else 0)."""
    if fmt == "csv":
        return write_csv(chunks, out, kept, csv_encoding, delimiter)
    if fmt == "jsonl":
        write_jsonl(chunks, out, kept)
    elif fmt == "parquet":
        write_parquet(chunks, out, kept)
    elif fmt == "xlsx":
        write_xlsx(chunks, out, kept, rows)
    else:  # pragma: no cover - detect_format only returns the four above
        raise DataError(f"cannot write {fmt}")
    return 0
