"""Excel (.xlsx, openpyxl) and Parquet (pyarrow) readers; both optional extras (the `batch` extra)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

from chuishao.errors import DataError
from chuishao.extras import need
from chuishao.io.record import FieldMap, InputRecord, check_columns, make_record

_PARQUET_BATCH = 2048  # rows decoded at a time: Python dicts of a batch cost ~1 KB a row


def _cell(value: object) -> object:
    # Excel stores every number as a float: an id typed as 1024 should read "1024", not "1024.0".
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def read_xlsx(path: Path, fields: FieldMap, sheet: str | None = None, need_text: bool = True) -> Iterator[InputRecord]:
    """The named worksheet (default: the first); its first row is the header. read_only mode
    streams rows (flat memory)."""
    openpyxl = need("openpyxl")
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .xlsx workbook ({exc or type(exc).__name__})") from None
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise DataError(f"{path}: no worksheet {sheet!r} (worksheets: {', '.join(wb.sheetnames)})")
        ws = wb[sheet] if sheet is not None else wb.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        header = next(rows, None)
        columns = [str(c) if c is not None else f"column{i + 1}" for i, c in enumerate(header or ())]
        if header is not None:
            check_columns(path, columns, fields, need_text)
    except BaseException:
        wb.close()
        raise
    return _xlsx_rows(path, wb, rows, columns, fields)


def _xlsx_rows(path: Path, wb, rows, columns: list[str], fields: FieldMap) -> Iterator[InputRecord]:
    try:
        for row, values in enumerate(rows, start=1):
            obj = {c: _cell(v) for c, v in zip(columns, values, strict=False)}  # a row may end early or run on
            # an error names the row as Excel shows it (the header is row 1); ``row`` stays the data row (ids row-N)
            yield make_record(row, obj, fields, f"{path.name} row {row + 1}")
    finally:
        wb.close()


def read_parquet(path: Path, fields: FieldMap, need_text: bool = True) -> Iterator[InputRecord]:
    pq = need("pyarrow.parquet")
    try:
        # pre_buffer=False: with it on, pyarrow keeps every column chunk it has read (memory grows with the file)
        pf = pq.ParquetFile(path, pre_buffer=False)
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
    check_columns(path, pf.schema_arrow.names, fields, need_text)
    return _parquet_rows(path, pf, fields)


def _parquet_rows(path: Path, pf, fields: FieldMap) -> Iterator[InputRecord]:
    import pyarrow as pa

    pool = pa.default_memory_pool()
    row = 0
    for i, batch in enumerate(pf.iter_batches(batch_size=_PARQUET_BATCH)):
        if i % 8 == 7:  # pyarrow's allocator keeps freed column chunks (~100 MB) unless asked
            pool.release_unused()
        for obj in batch.to_pylist():
            row += 1
            yield make_record(row, obj, fields, f"{path.name} row {row}")


def count_rows(path: Path) -> int | None:
    """Rows in an Excel or Parquet file from its metadata (for the progress bar), None if unknown."""
    if path.suffix.lower() in (".parquet", ".pq"):
        return need("pyarrow.parquet").ParquetFile(path).metadata.num_rows
    return None
