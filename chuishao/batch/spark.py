"""The distributed engine: the same per-row code as the local engine, run by Spark executors.

The model is loaded and verified once on the driver, broadcast to the executors, and applied to
Arrow batches with ``mapInArrow`` (mapInPandas' Arrow form: no pandas round trip, so nulls and the
nested answer fields keep exactly the types the local Parquet writer uses). Row numbers are those of
the input file: per-partition counts give each partition's offset, the position in the partition the rest.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from chuishao.batch.rows import (
    ASSIST_SEPARATOR,
    CHUISHAO_COLUMNS,
    FLAT_DEPARTMENTS,
    FLAT_JURISDICTION,
    JURISDICTION_PARTS,
    kept_name,
    output_record,
    tag_records,
)
from chuishao.batch.summary import TagSummary
from chuishao.batch.writers import arrow_schema
from chuishao.errors import DataError
from chuishao.extras import need
from chuishao.io.formats import delimiter_for, detect_format
from chuishao.io.records import (
    BARE_CR,
    FieldMap,
    InputRecord,
    check_columns,
    check_jsonl_fields,
    csv_record,
    make_record,
    parse_jsonl_line,
    refuse_json_array,
    swallowed_rows,
)
from chuishao.io.text import (
    AUTO,
    DecodedLines,
    check_encoding,
    ends_lines_with_bare_cr,
    head_bytes,
    open_binary,
    resolve_encoding,
)

_PID = "__chuishao_partition"
_CORRUPT = "__chuishao_malformed"  # Spark puts a CSV row whose value count is off here, whole
_REPLACEMENT = "\ufffd"  # what Spark's CSV decoder puts for bytes that are not valid in the encoding


def spark_session(master: str | None = None):
    """The active session (spark-submit's), or a local one; executors use this Python in local mode."""
    need("pyspark", "spark")
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("chuishao-tag")
    local = master is not None and master.startswith("local")
    if master:
        builder = builder.master(master)
        if local:
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    fresh = SparkSession.getActiveSession() is None
    session = builder.getOrCreate()
    if fresh and local:
        # Spark run by chuishao itself (not spark-submit's, whose logging is the user's to set): a failed
        # task would log its Java stack trace here, hundreds of lines; tag_spark reports it in one.
        session.sparkContext.setLogLevel("FATAL")
    return session


def _line_separator(path: str, sample_bytes: int = 1 << 20) -> str:
    """"\r" for a file whose lines end in a bare CR (old Mac exports), else "\n" (as the local
    reader splits lines: ``chuishao.io.text.physical_lines``).

    Spark's readers split on \r as well as \n unless told the separator, and with "\n" a CR-only
    file would be one line. Only a local file can be looked at here; a directory, glob or remote
    path is read with "\n" (\r\n lines are still fine)."""
    if not os.path.isfile(path):
        return "\n"
    return "\r" if ends_lines_with_bare_cr(head_bytes(Path(path), sample_bytes)) else "\n"


def _encoding(path: str, fmt: str, encoding: str) -> str:
    """The input encoding as the local engine resolves it (``auto``: UTF-8 or GB18030, judged on a
    local file's first lines; GBK read as GB18030). A folder or remote path cannot be looked at
    here: ``auto`` is UTF-8 there. Parquet takes no encoding (as locally, none is checked)."""
    if fmt not in ("jsonl", "csv"):
        return encoding
    check_encoding(encoding)
    if encoding == AUTO and not os.path.isfile(path):
        return "utf-8"
    return resolve_encoding(Path(path), encoding)


# Spark 4's CSV reader takes only these charsets unless the legacy switch lets it take any the JVM has.
_SPARK_CHARSETS = frozenset({"us-ascii", "iso-8859-1", "utf-8", "utf-16", "utf-16be", "utf-16le", "utf-32"})
_JAVA_CHARSETS = "spark.sql.legacy.javaCharsets"


def _java_charset(spark, path: str, encoding: str) -> str:
    """The JVM's name for the encoding, for Spark's CSV decoder (GBK and the like switched on for
    this session: ``_tag`` switches it back), or a DataError."""
    import codecs

    name = codecs.lookup(encoding).name
    if name == "utf-8-sig":  # the header, BOM and all, is read by our own code (see _csv_header)
        return "UTF-8"
    charset = spark._jvm.java.nio.charset.Charset
    for candidate in dict.fromkeys((encoding, name, name.replace("_", "-"))):
        try:
            java_name = str(charset.forName(candidate).name())
        except Exception:  # noqa: BLE001, S112 - unknown to the JVM, or an illegal name: the next spelling
            continue
        if java_name.lower() not in _SPARK_CHARSETS:
            spark.conf.set(_JAVA_CHARSETS, "true")
        return java_name
    raise DataError(f"{path}: the spark engine cannot read CSV in {encoding!r}; convert the file to UTF-8 "
                    f"(or use --engine local)")


def _csv_header(spark, path: str, encoding: str, reader) -> list[str] | None:
    """The header as the local CSV reader reads it (None: an empty file), so both engines check the
    same names (``check_columns``): Spark's own would rename a repeated name (text1, text2) and
    an empty one (_c0). A folder or remote path: its first record as Spark parses it."""
    if os.path.isfile(path):
        with open_binary(Path(path)) as fh:
            lines = DecodedLines(fh, encoding, bare_cr=BARE_CR)
            try:
                return next(csv.reader(lines, delimiter=delimiter_for(path)), None)
            except csv.Error as exc:
                raise DataError(f"{path}: unreadable header line ({exc})") from None
    first = reader().option("header", False).csv(path).limit(1).collect()
    return ["" if v is None else v for v in first[0]] if first else None


def _read(spark, path: str, fmt: str, fields: FieldMap, encoding: str):
    """The input as a DataFrame, and its columns (CSV: the header, None for an empty file).

    JSONL: one binary ``value`` per line, decoded and parsed by our own code. CSV: a string per
    header column, by position (``_c0``, ...: a header name need not be a valid Spark column name),
    and a malformed row whole in ``_CORRUPT``. Parquet: the file's own types, which reach the
    tagger as the same Python values the local reader gives (a list text is an error, not text)."""
    from pyspark.sql import functions as F

    if fmt == "jsonl":
        if os.path.isfile(path):
            refuse_json_array(Path(path))
            check_jsonl_fields(Path(path), fields, resolve_encoding(Path(path), encoding))
        df = spark.read.option("lineSep", _line_separator(path)).text(path)
        return df.select(F.col("value").cast("binary").alias("value")), ["value"]
    if fmt == "csv":
        from pyspark.sql.types import StringType, StructField, StructType

        charset = _java_charset(spark, path, encoding)
        line_sep = _line_separator(path)

        def reader():
            # lineSep given: left to detect it, Spark's multi-line parser takes the first line's ending
            # for the whole file, and in a file that mixes \r\n and \n it merges rows (lost rows).
            # A \r\n line's trailing \r is then part of its last value: the tagger strips it.
            return (spark.read.option("multiLine", True).option("escape", '"').option("sep", delimiter_for(path))
                    .option("encoding", charset).option("lineSep", line_sep))

        header = _csv_header(spark, path, encoding, reader)
        if header is None:
            return None, None
        check_columns(Path(path), header, fields)
        # Without a malformed-record column Spark pads a short row with nulls and drops a long row's
        # extra values without a word; with it, the row comes whole and the tagger flags it.
        schema = StructType([StructField(f"_c{i}", StringType()) for i in range(len(header))]
                            + [StructField(_CORRUPT, StringType())])
        df = (reader().option("header", True).schema(schema).option("mode", "PERMISSIVE")
              .option("columnNameOfCorruptRecord", _CORRUPT).csv(path))
        return df, header
    if fmt != "parquet":
        raise DataError(f"{path}: the spark engine reads .jsonl, .csv and .parquet (convert .xlsx first)")
    df = spark.read.parquet(path)
    check_columns(Path(path), df.columns, fields)
    native = df.select([_arrow_ready(F.col(_quoted(f.name)), f.dataType).alias(f.name) for f in df.schema.fields])
    return native, df.columns


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _arrow_ready(col, data_type):
    """A column as it is, unless Spark cannot hand its type to Python as Arrow (intervals, ...): as text."""
    from pyspark.sql.pandas.types import to_arrow_type

    try:
        to_arrow_type(data_type)
        return col
    except Exception:  # noqa: BLE001 - pyspark raises several types for an unsupported one
        return col.cast("string")


def _jsonl_record(row: int, raw: bytes | None, encoding: str, fields: FieldMap, where: str) -> InputRecord:
    """One JSONL line (its bytes, without the \n) to a record, as the local reader reads it."""
    try:
        line = (raw or b"").decode(encoding)
    except UnicodeDecodeError:
        return InputRecord(row=row, id=f"row-{row}", error=f"{where}: bytes that are not valid {encoding}")
    if row == 1 and line.startswith("\ufeff"):
        line = line[1:]
    return parse_jsonl_line(row, line.rstrip("\r\n"), fields, where)


def _jsonl_columns(df, encoding: str, fields: FieldMap) -> list[str]:
    """Input columns of a JSONL file, for --keep-columns (Spark needs the output schema up front):
    the keys of its objects in order of first appearance, as the local engine keeps them."""

    def keys(index: int, rows: Iterator) -> Iterator[list[str]]:
        seen: dict[str, None] = {}
        for n, row in enumerate(rows):
            rec = _jsonl_record(1 if index == 0 and n == 0 else 2, row.value, encoding, fields, "")
            seen.update(dict.fromkeys(rec.fields))
        yield list(seen)

    order: dict[str, None] = {}
    for part in df.rdd.mapPartitionsWithIndex(keys).collect():  # partitions in input order
        order.update(dict.fromkeys(part))
    return list(order)


def _csv_cells(obj: dict[str, str | None], header: list[str]) -> dict[str, object]:
    """A well-formed CSV row's cells as the local reader gives them: an empty cell is "" (Spark:
    null), and the last cell loses the \r of a \r\n line ending (see ``_read``)."""
    cells: dict[str, object] = {k: "" if v is None else v for k, v in obj.items()}
    last = cells.get(header[-1]) if header else None
    if isinstance(last, str) and last.endswith("\r"):
        cells[header[-1]] = last[:-1]
    return cells


def _malformed_csv_row(row: int, raw: str, header: list[str], fields: FieldMap, where: str,
                       delimiter: str = ",") -> InputRecord:
    """A CSV row Spark found malformed, read as the local CSV reader reads it (same error text)."""
    return csv_record(row, header, next(csv.reader(io.StringIO(raw), delimiter=delimiter), []), fields, where, delimiter)


def _csv_row(row: int, values: list[str | None], raw: str | None, header: list[str], fields: FieldMap,
             where: str, encoding: str, delimiter: str) -> InputRecord:
    if raw is not None:
        rec = _malformed_csv_row(row, raw, header, fields, where, delimiter)
    else:
        rec = make_record(row, _csv_cells(dict(zip(header, values, strict=True)), header), fields, where)
        rec.error = rec.error or swallowed_rows(values, len(header), where, delimiter)
    # Spark's decoder puts U+FFFD for undecodable bytes where the local reader flags the row
    if _REPLACEMENT in (raw or "") or any(v and _REPLACEMENT in v for v in values):
        rec.error = f"{where}: bytes that are not valid {encoding}"
    return rec


def _tagger(model_bc, offsets_bc, fields: FieldMap, fmt: str, where_name: str, keep: bool, schema,
            header: list[str], encoding: str, delimiter: str):
    """The function each executor runs over its partition's Arrow batches."""

    def run(batches: Iterator) -> Iterator:
        import pyarrow as pa

        model = model_bc.value
        offsets = offsets_bc.value
        position = 0
        for batch in batches:
            pids = batch.column(_PID).to_pylist()
            if fmt == "jsonl":
                data = batch.column("value").to_pylist()
            elif fmt == "csv":
                raws = batch.column(_CORRUPT).to_pylist()
                data = list(zip(*(batch.column(f"_c{i}").to_pylist() for i in range(len(header))), raws, strict=True))
            else:
                data = batch.drop_columns([_PID]).to_pylist()
            records = []
            for pid, obj in zip(pids, data, strict=True):
                position += 1
                row = offsets[pid] + position
                if fmt == "jsonl":
                    rec = _jsonl_record(row, obj, encoding, fields, f"{where_name} line {row}")
                elif fmt == "csv":
                    rec = _csv_row(row, list(obj[:-1]), obj[-1], header, fields, f"{where_name} row {row}",
                                   encoding, delimiter)
                else:
                    rec = make_record(row, obj, fields, f"{where_name} row {row}")
                records.append(rec)
            out = [output_record(rec, answer, keep, kept_as_text=True) for rec, answer in tag_records(model, records)]
            yield pa.RecordBatch.from_pylist(out, schema=schema)

    return run


def _spark_errors() -> tuple[type[BaseException], ...]:
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    return PySparkException, Py4JError


def _spark_problem(exc: BaseException) -> str:
    """The first line of what Spark says went wrong, without its stack trace."""
    java = getattr(exc, "java_exception", None)
    text = str(exc)
    if java is not None:  # a Py4JJavaError: "An error occurred while calling o45.parquet.\n: <message>..."
        with contextlib.suppress(Exception):  # the JVM may be gone: the Python side's text then
            text = str(java.getMessage() or java.toString())
    lines = text.strip().splitlines()
    marks = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last):")]
    if marks:  # a Python worker's exception: the line that names it, not the traceback
        lines = [line for line in lines[marks[-1] + 1:] if not line.startswith(" ")] or lines
    first = next((line.strip() for line in lines if line.strip()), type(exc).__name__)
    # "Job aborted due to stage failure: ... (TID 3) (host executor driver): <the task's error>"
    if first.startswith("Job aborted due to stage failure") and "): " in first:
        first = first.split("): ", 1)[1]
    return first


def _hadoop_path(spark, path: str):
    jvm = spark._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark._jsc.hadoopConfiguration()), hpath


def _exists(spark, path: str) -> bool:
    try:
        fs, hpath = _hadoop_path(spark, path)
        return bool(fs.exists(hpath))
    except Exception:  # noqa: BLE001 - no JVM to ask (Spark Connect): a local path then
        return os.path.exists(path)


def _remove(spark, path: str) -> None:
    """Best effort: a failed run leaves no output (what Spark's writer left: _temporary, parts)."""
    try:
        fs, hpath = _hadoop_path(spark, path)
        fs.delete(hpath, True)
    except Exception:  # noqa: BLE001
        import shutil

        shutil.rmtree(path, ignore_errors=True)


def tag_spark(input_path: str | Path, output_path: str | Path, model_dir: str | Path | None = None,
              fields: FieldMap | None = None, keep_columns: bool = False, master: str | None = None,
              encoding: str = AUTO, spark=None, taxonomy=None, annotator=None) -> TagSummary:
    """Tag INPUT (a file or folder on any Spark path) into OUTPUT (a Spark output folder).

    ``encoding`` (JSONL, CSV) as the local engine takes it: ``auto`` or a codec name. A failure
    inside Spark (an unreadable file, a lost executor) is a DataError naming the input, with the
    first line of Spark's message; the output is then removed. ``taxonomy``: route with an edited
    taxonomy (see ``load_model``). ``annotator``: fills the answers' jurisdiction (``build_annotator``)."""
    from chuishao.models.annotated import annotated
    from chuishao.models.persistence import load_model

    fields = fields or FieldMap()
    src, dst = str(input_path), str(output_path)
    in_fmt, out_fmt = detect_format(src), detect_format(dst)
    if out_fmt == "xlsx":
        raise DataError("the spark engine writes .parquet, .csv or .jsonl folders, not .xlsx")
    encoding = _encoding(src, in_fmt, encoding)
    model = annotated(load_model(model_dir, taxonomy=taxonomy), annotator)
    try:
        spark = spark or spark_session(master)
        return _tag(spark, src, dst, in_fmt, out_fmt, model, fields, keep_columns, encoding)
    except _spark_errors() as exc:
        raise DataError(f"{src}: {_spark_problem(exc)}") from None


def _tag(spark, src: str, dst: str, in_fmt: str, out_fmt: str, model, fields: FieldMap, keep_columns: bool,
         encoding: str) -> TagSummary:
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    existed = _exists(spark, dst)
    writing = False
    java_charsets = spark.conf.get(_JAVA_CHARSETS, None)
    try:
        df, columns = _read(spark, src, in_fmt, fields, encoding)
        kept: list[str] = []
        if df is None:  # an empty CSV file: no rows, as the local engine gives none
            schema = arrow_schema(kept)
            writing = True
            _write(spark.createDataFrame([], from_arrow_schema(schema)), dst, out_fmt)
            return TagSummary(columns=kept)
        if keep_columns:
            kept = [kept_name(c) for c in (_jsonl_columns(df, encoding, fields) if in_fmt == "jsonl" else columns)]
        df = df.withColumn(_PID, F.spark_partition_id())
        # Each partition's first row number: rows before it in input order (file splits are read in order).
        counts = dict(df.groupBy(_PID).count().collect())
        offsets, start = {}, 0
        for pid in sorted(counts):
            offsets[pid] = start
            start += counts[pid]
        schema = arrow_schema(kept)
        sc = spark.sparkContext
        run = _tagger(sc.broadcast(model), sc.broadcast(offsets), fields, in_fmt, Path(src.rstrip("/")).name,
                      keep_columns, schema, columns, encoding, delimiter_for(src))
        tagged = df.mapInArrow(run, from_arrow_schema(schema))
        writing = True
        _write(tagged, dst, out_fmt)
        return _summary(spark, dst, out_fmt, kept) if start else TagSummary(columns=kept)
    except BaseException:
        # Spark's overwrite removed an earlier output before the write failed; one that was there
        # before a failed read is left alone.
        if (writing or not existed) and _exists(spark, dst):
            _remove(spark, dst)
        raise
    finally:
        _restore_conf(spark, _JAVA_CHARSETS, java_charsets)


def _restore_conf(spark, key: str, value: str | None) -> None:
    try:
        if spark.conf.get(key, None) == value:
            return
        if value is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, value)
    except Exception:  # noqa: BLE001, S110 - the JVM is gone (the error being raised says why)
        pass


def _write(df, path: str, fmt: str) -> None:
    """Spark's commit protocol publishes the folder only when every task succeeded (_SUCCESS marks it)."""
    from pyspark.sql import functions as F

    if fmt != "jsonl":  # tabular outputs carry the departments flat too, after the nested column (as locally)
        flat = [F.col("departments.lead").alias(FLAT_DEPARTMENTS[0]),
                F.array_join(F.col("departments.assist"), ASSIST_SEPARATOR).alias(FLAT_DEPARTMENTS[1])]
        place = [F.col(f"jurisdiction.{part}").alias(name) for name, part in zip(FLAT_JURISDICTION, JURISDICTION_PARTS,
                                                                                 strict=True)]
        after = {"departments": flat, "jurisdiction": place}
        df = df.select([c for name in df.columns for c in [F.col(name), *after.get(name, [])]])
    if fmt == "parquet":
        df.write.mode("overwrite").option("compression", "zstd").parquet(path)
    elif fmt == "jsonl":
        df.write.mode("overwrite").option("ignoreNullFields", False).json(path)
    else:  # CSV cells are flat: nested answer fields as JSON text, as the local writer does
        nested = ("top", "departments", "evidence", "jurisdiction", "urgency")
        flat = df.select([F.to_json(c).alias(c) if c in nested else F.col(c) for c in df.columns])
        flat.write.mode("overwrite").option("header", True).option("escape", '"').option("sep", delimiter_for(path)).csv(path)


def _summary(spark, path: str, fmt: str, kept: list[str]) -> TagSummary:
    """Counts from the written output (cheap to read back; re-running the model would not be)."""
    from pyspark.sql import functions as F

    reader = spark.read.option("header", True).option("sep", delimiter_for(path)) if fmt == "csv" else spark.read
    out = reader.format("json" if fmt == "jsonl" else fmt).load(path)
    ok = F.col("error").isNull()
    review = F.col("needs_review").cast("boolean")
    rows = out.groupBy(ok.alias("ok"), review.alias("review"), F.col("topic")).count().collect()
    summary = TagSummary(columns=kept)
    for r in rows:
        summary.rows += r["count"]
        if r["ok"]:
            summary.tagged += r["count"]
            summary.needs_review += r["count"] if r["review"] else 0
            summary.topics[r["topic"]] += r["count"]
        else:
            summary.errors += r["count"]
    summary.topics = Counter(summary.topics)
    return summary


__all__ = ["CHUISHAO_COLUMNS", "spark_session", "tag_spark"]
