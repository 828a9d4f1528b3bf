"""The Spark engine (local[1], a few hundred rows) gives the same rows as the local engine."""

from __future__ import annotations

import json
import shutil

import pytest

from chuishao.models.persistence import load_model

pyspark = pytest.importorskip("pyspark", reason="pyspark not installed (pip install '.[spark]')")
pa = pytest.importorskip("pyarrow")
if shutil.which("java") is None:
    pytest.skip("java not found: Spark needs a JRE", allow_module_level=True)

pytestmark = pytest.mark.spark

from chuishao.batch import TagOptions, tag_file
from chuishao.batch.spark import spark_session, tag_spark
from chuishao.errors import DataError
from chuishao.io.records import FieldMap


@pytest.fixture(scope="module")
def spark():
    session = spark_session("local[1]")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _rows(path):
    import pyarrow.dataset as ds

    return sorted(ds.dataset(path, format="parquet").to_table().to_pylist(), key=lambda r: r["row"])


def test_spark_jsonl_matches_local(spark, tiny_model_dir, tiny_model, tmp_path):
    texts = ["小区停水三天没人管", "楼下烧烤店油烟很大", "路口下水道堵塞积水", "物业不管电梯坏了", "路灯坏了很黑"]
    lines = [json.dumps({"id": f"m{i}", "text": texts[i % 5] + str(i), "n": i}, ensure_ascii=False) for i in range(300)]
    lines[10], lines[20], lines[30] = "{broken", "", json.dumps({"id": "x", "text": "English only"})
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    local, dist = tmp_path / "local.parquet", tmp_path / "spark.parquet"
    # the saved model (half-precision weights), as the executors load it
    tag_file(load_model(tiny_model_dir), src, local, options=TagOptions(fields=FieldMap(), keep_columns=True, chunk_size=64))
    summary = tag_spark(src, dist, tiny_model_dir, FieldMap(), keep_columns=True, spark=spark)
    a, b = _rows(local), _rows(dist)
    assert len(b) == 300 and summary.rows == 300 and summary.errors == 3
    assert a == b
    assert [list(r) for r in a[:1]] == [list(r) for r in b[:1]]  # kept columns in the file's order, not A-Z
    assert list(b[0])[-3:] == ["input_id", "text", "n"]
    assert b[0]["lead_department"] == b[0]["departments"]["lead"] and "assist_departments" in b[0]


def test_spark_parquet_across_partitions_keeps_row_numbers(spark, tiny_model_dir, tiny_model, tmp_path):
    import pyarrow.parquet as pq

    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": [str(i) for i in range(400)], "text": ["路口下水道堵塞积水"] * 400}), src, row_group_size=50)
    local, dist = tmp_path / "local.parquet", tmp_path / "spark.parquet"
    tag_file(load_model(tiny_model_dir), src, local)
    tag_spark(src, dist, tiny_model_dir, FieldMap(), spark=spark.newSession())
    a, b = _rows(local), _rows(dist)
    assert [r["row"] for r in b] == list(range(1, 401)) and [r["id"] for r in b] == [str(i) for i in range(400)]
    assert a == b


@pytest.mark.parametrize("endings", ["mixed", "cr"])
def test_spark_csv_flags_bad_rows_as_the_local_engine_does(spark, tiny_model_dir, tmp_path, endings):
    """Short and long rows, an empty text, a quoted multi-line text, and line endings mixed \r\n / \n
    (files joined from several exports) or bare \r (old Mac exports): both engines give the same
    rows, none lost."""
    texts = ["小区停水三天没人管", "楼下烧烤店油烟很大", "路口下水道堵塞积水", "物业不管电梯坏了", "路灯坏了很黑"]
    rows = [f'm{i},"{texts[i % 5]}{i}",{i}' for i in range(60)]
    rows[5] = "m5,只有两列"  # short: 2 values for 3 columns
    rows[6] = "m6,四列太多,6,extra"  # long
    rows[7] = "m7,,7"  # empty text
    rows[8] = 'm8,"第一行\n第二行，路灯坏了",8'  # one record over two lines
    rows[9] = "m9"  # no text at all
    src = tmp_path / "in.csv"
    if endings == "mixed":
        rows[10] = "m10,路灯\r坏了,10"  # a bare \r inside an unquoted value: kept, as Spark keeps it
        body = "id,text,n\r\n" + "".join(r + ("\r\n" if i < 30 else "\n") for i, r in enumerate(rows))
    else:
        rows[8] = 'm8,"第一行\r第二行，路灯坏了",8'
        body = "id,text,n\r" + "".join(r + "\r" for r in rows)
    src.write_bytes(body.encode())
    local, dist = tmp_path / "local.parquet", tmp_path / "spark.parquet"
    tag_file(load_model(tiny_model_dir), src, local, options=TagOptions(fields=FieldMap(), keep_columns=True, chunk_size=16))
    summary = tag_spark(src, dist, tiny_model_dir, FieldMap(), keep_columns=True, spark=spark)
    a, b = _rows(local), _rows(dist)
    errors = {r["id"]: r["error"] for r in a if r["error"]}
    assert set(errors) == {"m5", "m6", "m7", "m9"}, errors
    assert "2 values for 3 columns" in errors["m5"] and "4 values for 3 columns" in errors["m6"]
    assert len(b) == 60 and summary.rows == 60 and summary.errors == 4
    assert a == b


# ---- parity: encodings, bad bytes, separators, headers, Parquet types, failures ---------------
TEXTS = ["小区停水三天没人管", "楼下烧烤店油烟很大", "路口下水道堵塞积水", "物业不管电梯坏了", "路灯坏了很黑"]


def _tag_both(spark, model_dir, src, tmp_path, fields=None, encoding="auto", keep_columns=False):
    """The same input through both engines: (local rows, spark rows)."""
    fields = fields or FieldMap()
    local, dist = tmp_path / "local.parquet", tmp_path / "spark.parquet"
    tag_file(load_model(model_dir), src, local,
             options=TagOptions(fields=fields, keep_columns=keep_columns, encoding=encoding, chunk_size=16))
    summary = tag_spark(src, dist, model_dir, fields, keep_columns=keep_columns, encoding=encoding, spark=spark)
    a, b = _rows(local), _rows(dist)
    assert summary.rows == len(b) and summary.errors == sum(1 for r in b if r["error"])
    return a, b


def _jsonl(i, text=None):
    return json.dumps({"id": f"m{i}", "text": text or f"{TEXTS[i % 5]}{i}"}, ensure_ascii=False)


def _csv_line(i, sep=","):
    return sep.join([f"m{i}", f"{TEXTS[i % 5]}{i}", str(i)])


def _text_case(case):
    """(file name, bytes, --encoding, {id: error} of the rows with an error)."""
    if case == "gbk-csv":  # item 1: --encoding reaches the spark engine (and a bad byte is "not valid gb18030")
        body = ("id,text,n\n" + "".join(_csv_line(i) + "\n" for i in range(12))).encode("gbk")
        body += b"m12,\x81 \xc2\xb7,12\n"
        return "in.csv", body, "gbk", {"m12": "bytes that are not valid gb18030"}
    if case == "gbk-csv-auto":  # auto detects GB18030 as the local engine does
        body = ("id,text,n\r\n" + "".join(_csv_line(i) + "\r\n" for i in range(12))).encode("gbk")
        return "in.csv", body, "auto", {}
    if case == "gbk-jsonl":
        return "in.jsonl", "".join(_jsonl(i) + "\n" for i in range(12)).encode("gb18030"), "gbk", {}
    if case == "bad-utf8-jsonl":  # item 2: one bad byte is that row's error, not a dead job
        lines = [_jsonl(i).encode() for i in range(12)]
        lines[3] = lines[3].replace(TEXTS[3][0].encode(), b"\xff\xfe")
        lines[7] = b'\xef\xbb\xbf' + lines[7]  # a BOM past line 1 is not stripped (broken JSON in both)
        bad = {"row-4": "line 4: bytes that are not valid utf-8", "row-8": "broken JSON"}
        return "in.jsonl", b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n", "utf-8", bad
    if case == "bad-utf8-csv":  # item 3: Spark's U+FFFD is the local engine's "not valid utf-8"
        lines = [_csv_line(i).encode() for i in range(12)]
        lines[2] = lines[2].replace(TEXTS[2][0].encode(), b"\xff")
        lines[5] = lines[5][:-1] + b"\xff,extra"  # a bad byte in a row that is also too long
        bad = {"m2": "row 3: bytes that are not valid utf-8", "m5": "row 6: bytes that are not valid utf-8"}
        return "in.csv", b"id,text,n\n" + b"\n".join(lines) + b"\n", "auto", bad
    if case == "tsv":  # item 4
        body = "id\ttext\tn\n" + "".join(_csv_line(i, "\t") + "\n" for i in range(12)) + "m12\t只有两列\n"
        return "in.tsv", body.encode(), "auto", {"m12": "2 values for 3 columns"}
    if case == "jsonl-cr-inside":  # item 7: a bare \r between JSON tokens does not split the line
        lines = [_jsonl(i) for i in range(12)]
        lines[4] = lines[4].replace(", ", ",\r")
        body = "".join(line + ("\r\n" if i % 2 else "\n") for i, line in enumerate(lines))
        return "in.jsonl", body.encode(), "auto", {}
    assert case == "jsonl-cr-only"  # lines that all end in a bare \r (old Mac exports)
    return "in.jsonl", "".join(_jsonl(i) + "\r" for i in range(12)).encode(), "auto", {}


@pytest.mark.parametrize("case", ["gbk-csv", "gbk-csv-auto", "gbk-jsonl", "bad-utf8-jsonl", "bad-utf8-csv", "tsv",
                                  "jsonl-cr-inside", "jsonl-cr-only"])
def test_spark_reads_text_files_as_the_local_engine_does(spark, tiny_model_dir, tmp_path, case):
    name, body, encoding, bad = _text_case(case)
    src = tmp_path / name
    src.write_bytes(body)
    a, b = _tag_both(spark, tiny_model_dir, src, tmp_path, encoding=encoding, keep_columns=True)
    errors = {r["id"]: r["error"] for r in a if r["error"]}
    assert errors.keys() == bad.keys() and all(bad[k] in errors[k] for k in bad), errors
    assert all("not Chinese" not in (r["error"] or "") for r in a)
    assert a == b
    assert len(b) == len(ids := [r["row"] for r in b]) and ids == list(range(1, len(b) + 1))


@pytest.mark.parametrize(("name", "body"), [
    ("in.csv", b"id,text,text\nm1,a,b\n"), ("in.csv", b"id,title\nm1,a\n"), ("in.csv", b""), ("in.csv", b"\n"),
    ("in.csv", b"id,text\n"), ("in.jsonl", b""), ("in.jsonl", b'[\n  {"id": "a", "text": "b"}\n]\n')],
    ids=["repeated-name", "no-text-column", "0-byte", "blank-line", "header-only", "0-byte-jsonl", "json-array"])
def test_spark_header_problems_match_local(spark, tiny_model_dir, tmp_path, name, body, request):
    """Item 5: the same check of the raw header (no Spark renaming, no internal column in the message);
    an empty file is no rows, as locally; a JSON array is refused as locally."""
    src = tmp_path / name
    src.write_bytes(body)
    try:
        a = _tag_both(spark, tiny_model_dir, src, tmp_path, keep_columns=True)
    except DataError as exc:
        local_error = str(exc)
        with pytest.raises(DataError) as dist_error:
            tag_spark(src, tmp_path / "spark.parquet", tiny_model_dir, FieldMap(), spark=spark)
        assert str(dist_error.value) == local_error and "__chuishao" not in local_error
        assert not (tmp_path / "spark.parquet").exists()
        expected = {"repeated-name": "column names used twice: text;", "json-array": "a JSON array, not JSON Lines",
                    "no-text-column": "no 'text' column (columns: id, title)",
                    "blank-line": "no 'text' column (columns: none)"}
        assert expected.get(request.node.callspec.id, "?") in local_error
    else:
        assert a == ([], []) and request.node.callspec.id in ("0-byte", "header-only", "0-byte-jsonl")


@pytest.mark.parametrize(("text", "title", "id_", "got"), [
    ("lst", None, "id", "list"), ("bin", None, "id", "bytes"), ("mp", None, "id", "list"), ("ts", None, "f", "datetime"),
    ("s", "i", "id", "int"), ("s", None, "dec", None)])
def test_spark_parquet_types_match_local(spark, tiny_model_dir, tmp_path, text, title, id_, got):
    """Item 6: a text, title or id column that is not a string reaches the rows as the local reader
    gives it ("'text' must be a string, got list", ids as str() of the value), not cast to text."""
    import datetime
    import decimal

    import pyarrow.parquet as pq

    n = 6
    nulls = [None if i == 4 else i for i in range(n)]  # a null in every column: "is empty"
    table = pa.table({
        "id": pa.array(nulls, pa.int64()),
        "s": [None if i == 4 else TEXTS[i % 5] for i in range(n)],
        "lst": [None if i == 4 else [TEXTS[i % 5]] for i in range(n)],
        "bin": [None if i == 4 else TEXTS[i % 5].encode() for i in range(n)],
        "i": pa.array(nulls, pa.int32()),
        "f": [None if i == 4 else i + 0.5 for i in range(n)],
        "b": [None if i == 4 else bool(i % 2) for i in range(n)],
        "st": [None if i == 4 else {"a": i} for i in range(n)],
        "mp": pa.array([None if i == 4 else [("k", i)] for i in range(n)], pa.map_(pa.string(), pa.int64())),
        "dec": pa.array([None if i == 4 else decimal.Decimal(f"{i}.50") for i in range(n)], pa.decimal128(10, 2)),
        "d": [None if i == 4 else datetime.date(2024, 1, i + 1) for i in range(n)],
        "ts": pa.array([None if i == 4 else datetime.datetime(2024, 1, 1, i) for i in range(n)], pa.timestamp("us")),
    })
    src = tmp_path / "in.parquet"
    pq.write_table(table, src)
    a, b = _tag_both(spark, tiny_model_dir, src, tmp_path, FieldMap(id=id_, text=text, title=title), keep_columns=True)
    expected = [f"in.parquet row {i}: {title or text!r} must be a string, got {got}" if got else None
                for i in (1, 2, 3, 4, 6)]
    assert [r["error"] for r in a if r["row"] != 5] == expected
    assert a[4]["id"] == "row-5" and a[4]["error"].endswith(f"{text!r} is empty")
    assert a == b


def test_spark_failure_is_one_line_naming_the_input(spark, tiny_model_dir, tmp_path, monkeypatch):
    """Item 8: a corrupt Parquet file, or a task that fails, is a DataError naming the input with the
    first line of Spark's message (the CLI: one line, exit 2), and no output is left behind."""
    from typer.testing import CliRunner

    import chuishao.batch.spark as spark_engine
    from chuishao.cli import app

    bad, out = tmp_path / "bad.parquet", tmp_path / "out.parquet"
    bad.write_bytes(b"PAR1garbage")
    result = CliRunner().invoke(app, ["tag", str(bad), "-o", str(out), "-m", str(tiny_model_dir), "--engine", "spark",
                                      "--spark-master", "local[1]"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"chuishao: error: {bad}: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Parquet" in result.stderr and not out.exists()

    def broken_tagger(*args, **kwargs):
        def run(batches):
            for _ in batches:
                raise ValueError("tagger broke")
            yield from ()
        return run

    good = tmp_path / "in.jsonl"
    good.write_text("".join(_jsonl(i) + "\n" for i in range(5)), encoding="utf-8")
    monkeypatch.setattr(spark_engine, "_tagger", broken_tagger)
    with pytest.raises(DataError) as err:  # a task failing while the output is written: the output goes
        tag_spark(good, out, tiny_model_dir, FieldMap(), spark=spark)
    assert str(err.value) == f"{good}: ValueError: tagger broke"
    assert not out.exists()


def test_spark_tsv_output_is_tab_separated_like_the_local_engine(spark, tiny_model_dir, tmp_path):
    import csv

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps({"id": f"m{i}", "text": f"小区停水三天没人管{i}"}, ensure_ascii=False)
                             for i in range(20)) + "\n", encoding="utf-8")
    local, dist = tmp_path / "local.tsv", tmp_path / "spark.tsv"
    tag_file(load_model(tiny_model_dir), src, local, options=TagOptions(fields=FieldMap()))
    summary = tag_spark(src, dist, tiny_model_dir, FieldMap(), spark=spark)
    assert summary.rows == 20 and summary.errors == 0
    with local.open(encoding="utf-8", newline="") as fh:
        want = sorted(csv.DictReader(fh, delimiter="\t"), key=lambda r: int(r["row"]))
    got = []
    for part in sorted(dist.glob("part-*.csv")):
        with part.open(encoding="utf-8", newline="") as fh:
            got += list(csv.DictReader(fh, delimiter="\t"))
    got.sort(key=lambda r: int(r["row"]))
    assert [r["topic"] for r in got] == [r["topic"] for r in want] and len(got) == 20


def test_spark_flags_rows_a_stray_quote_swallowed_as_the_local_engine_does(spark, tiny_model_dir, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text('id,text,n\nm1,"楼下烧烤店油烟很大,1\nm2,路灯坏了很黑,2\nm3,"小区停水三天没人管",3\nm4,物业不管电梯坏了,4\n',
                   encoding="utf-8")
    local, dist = tmp_path / "local.parquet", tmp_path / "spark.parquet"
    tag_file(load_model(tiny_model_dir), src, local, options=TagOptions(fields=FieldMap()))
    tag_spark(src, dist, tiny_model_dir, FieldMap(), spark=spark)  # the swallowed text itself: each parser its own
    a, b = _rows(local), _rows(dist)
    assert "a stray double quote?" in a[0]["error"] and [r["id"] for r in a] == ["m1", "m4"]
    assert a == b
