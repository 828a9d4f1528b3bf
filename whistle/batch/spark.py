"""The distributed engine: the same per-row code as the local engine, run by Spark executors.

The model is loaded and verified once on the driver, broadcast to the executors, and applied to
Arrow batches with ``mapInArrow`` (mapInPandas' Arrow form: no pandas round trip, so nulls and the
nested answer fields keep exactly the types the local Parquet writer uses). Row numbers are those of
the input file: per-partition counts give each partition's offset, the position in the partition the rest.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from whistle.batch.rows import WHISTLE_COLUMNS, kept_name, output_record, tag_records
from whistle.batch.summary import TagSummary
from whistle.errors import DataError
from whistle.io.formats import detect_format
from whistle.io.records import FieldMap, InputRecord, csv_record, make_record, parse_jsonl_line
from whistle.io.tabular import need
from whistle.io.writers import arrow_schema

_PID = "__whistle_partition"
_CORRUPT = "__whistle_malformed"  # Spark puts a CSV row whose value count is off here, whole


def spark_session(master: str | None = None):
    """The active session (spark-submit's), or a local one; executors use this Python in local mode."""
    need("pyspark", "spark")
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("whistle-tag")
    if master:
        builder = builder.master(master)
        if master.startswith("local"):
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return builder.getOrCreate()


def _csv_line_separator(path: str, sample_bytes: int = 1 << 20) -> str:
    """"\r" for a file whose lines end in a bare CR (old Mac exports), else "\n".

    Spark's CSV reader needs the separator given (see ``_read``), and with "\n" a CR-only file
    would be one line. Only a local file can be looked at here; a directory, glob or remote path
    is read with "\n" (\r\n lines are still fine)."""
    if not os.path.isfile(path):
        return "\n"
    with open(path, "rb") as fh:
        head = fh.read(sample_bytes)
    return "\r" if b"\r" in head and b"\n" not in head else "\n"


def _read(spark, path: str, fmt: str, fields: FieldMap, encoding: str):
    """The input as a DataFrame of strings (JSONL: one ``value`` per line, parsed by our own code)."""
    from pyspark.sql import functions as F

    if fmt == "jsonl":
        return spark.read.text(path)
    if fmt == "csv":
        from pyspark.sql.types import StringType, StructField, StructType

        line_sep = _csv_line_separator(path)

        def reader():
            # lineSep given: left to detect it, Spark's multi-line parser takes the first line's ending
            # for the whole file, and in a file that mixes \r\n and \n it merges rows (lost rows).
            # A \r\n line's trailing \r is then part of its last value: the tagger strips it.
            return (spark.read.option("header", True).option("multiLine", True).option("escape", '"')
                    .option("encoding", encoding).option("lineSep", line_sep))

        # Without a malformed-record column Spark pads a short row with nulls and drops a long row's
        # extra values without a word; with it, the row comes whole and the tagger flags it.
        header = [c.removesuffix("\r") for c in reader().csv(path).columns]
        schema = StructType([StructField(c, StringType()) for c in header] + [StructField(_CORRUPT, StringType())])
        df = reader().schema(schema).option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", _CORRUPT).csv(path)
    elif fmt == "parquet":
        df = spark.read.parquet(path)
    else:
        raise DataError(f"{path}: the spark engine reads .jsonl, .csv and .parquet (convert .xlsx first)")
    if fields.text not in df.columns:
        raise DataError(f"{path}: no {fields.text!r} column (columns: {', '.join(df.columns)}); "
                        f"name the text column with --text-field")
    return df.select([F.col(c).cast("string").alias(c) for c in df.columns])


def _jsonl_columns(spark, path: str, sample_lines: int = 10_000) -> list[str]:
    """Input columns of a JSONL file, for --keep-columns (Spark needs the output schema up front).

    Spark infers them in alphabetical order; the local engine keeps the file's order (first
    appearance), so the first lines give the order and Spark's inference the complete set.
    """
    inferred = [c for c in spark.read.option("mode", "PERMISSIVE").json(path).columns if c != "_corrupt_record"]
    order: dict[str, None] = {}
    for row in spark.read.text(path).limit(sample_lines).collect():
        try:
            obj = json.loads(row.value)
        except ValueError:
            continue
        if isinstance(obj, dict):
            order.update(dict.fromkeys(obj))
    known = set(inferred)
    return [c for c in order if c in known] + [c for c in inferred if c not in order]


def _csv_cells(obj: dict[str, str | None], header: list[str]) -> dict[str, str]:
    """A well-formed CSV row's cells as the local reader gives them: an empty cell is "" (Spark:
    null), and the last cell loses the \r of a \r\n line ending (see ``_read``)."""
    cells = {k: "" if v is None else v for k, v in obj.items()}
    if header and cells.get(header[-1], "").endswith("\r"):
        cells[header[-1]] = cells[header[-1]][:-1]
    return cells


def _malformed_csv_row(row: int, raw: str, header: list[str], fields: FieldMap, where: str) -> InputRecord:
    """A CSV row Spark found malformed, read as the local CSV reader reads it (same error text)."""
    return csv_record(row, header, next(csv.reader(io.StringIO(raw)), []), fields, where)


def _tagger(model_bc, offsets_bc, fields: FieldMap, fmt: str, where_name: str, keep: bool, schema,
            header: list[str]):
    """The function each executor runs over its partition's Arrow batches."""

    def run(batches: Iterator) -> Iterator:
        import pyarrow as pa

        model = model_bc.value
        offsets = offsets_bc.value
        position = 0
        for batch in batches:
            pids = batch.column(_PID).to_pylist()
            data = batch.drop_columns([_PID]).to_pylist()
            records = []
            for pid, obj in zip(pids, data):
                position += 1
                row = offsets[pid] + position
                raw = obj.pop(_CORRUPT, None)
                if fmt == "jsonl":
                    rec = parse_jsonl_line(row, obj["value"] or "", fields, f"{where_name} line {row}")
                elif raw is not None:
                    rec = _malformed_csv_row(row, raw, header, fields, f"{where_name} row {row}")
                elif fmt == "csv":
                    rec = make_record(row, _csv_cells(obj, header), fields, f"{where_name} row {row}")
                else:
                    rec = make_record(row, obj, fields, f"{where_name} row {row}")
                records.append(rec)
            out = [output_record(rec, answer, keep, kept_as_text=True) for rec, answer in tag_records(model, records)]
            yield pa.RecordBatch.from_pylist(out, schema=schema)

    return run


def tag_spark(input_path: str | Path, output_path: str | Path, model_dir: str | Path | None = None,
              fields: FieldMap | None = None, keep_columns: bool = False, master: str | None = None,
              encoding: str = "utf-8", spark=None) -> TagSummary:
    """Tag INPUT (a file or folder on any Spark path) into OUTPUT (a Spark output folder)."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    from whistle.models.persistence import load_model

    fields = fields or FieldMap()
    src, dst = str(input_path), str(output_path)
    in_fmt, out_fmt = detect_format(src), detect_format(dst)
    if out_fmt == "xlsx":
        raise DataError("the spark engine writes .parquet, .csv or .jsonl folders, not .xlsx")
    model = load_model(model_dir)
    spark = spark or spark_session(master)
    if in_fmt == "csv" and encoding == "auto":
        from whistle.io.text import detect_encoding

        encoding = detect_encoding(Path(src)) if Path(src).is_file() else "utf-8"
    df = _read(spark, src, in_fmt, fields, encoding)
    columns = [c for c in df.columns if c != _CORRUPT]  # the input's own columns (CSV: its header)
    df = df.withColumn(_PID, F.spark_partition_id())
    kept: list[str] = []
    if keep_columns:
        kept = [kept_name(c) for c in (_jsonl_columns(spark, src) if in_fmt == "jsonl" else columns)]
    # Each partition's first row number: rows before it in input order (file splits are read in order).
    counts = dict(df.groupBy(_PID).count().collect())
    offsets, start = {}, 0
    for pid in sorted(counts):
        offsets[pid] = start
        start += counts[pid]
    schema = arrow_schema(kept)
    sc = spark.sparkContext
    run = _tagger(sc.broadcast(model), sc.broadcast(offsets), fields, in_fmt, Path(src.rstrip("/")).name,
                  keep_columns, schema, columns)
    tagged = df.mapInArrow(run, from_arrow_schema(schema))
    _write(tagged, dst, out_fmt)
    return _summary(spark, dst, out_fmt, kept)


def _write(df, path: str, fmt: str) -> None:
    """Spark's commit protocol publishes the folder only when every task succeeded (_SUCCESS marks it)."""
    from pyspark.sql import functions as F

    if fmt == "parquet":
        df.write.mode("overwrite").option("compression", "zstd").parquet(path)
    elif fmt == "jsonl":
        df.write.mode("overwrite").option("ignoreNullFields", False).json(path)
    else:  # CSV cells are flat: nested answer fields as JSON text, as the local writer does
        flat = df.select([F.to_json(c).alias(c) if c in ("top", "departments", "evidence") else F.col(c)
                          for c in df.columns])
        flat.write.mode("overwrite").option("header", True).option("escape", '"').csv(path)


def _summary(spark, path: str, fmt: str, kept: list[str]) -> TagSummary:
    """Counts from the written output (cheap to read back; re-running the model would not be)."""
    from pyspark.sql import functions as F

    reader = spark.read.option("header", True) if fmt == "csv" else spark.read
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


__all__ = ["WHISTLE_COLUMNS", "spark_session", "tag_spark"]
