"""The Spark engine (local[1], a few hundred rows) gives the same rows as the local engine."""

from __future__ import annotations

import json
import shutil

import pytest

from whistle.models.persistence import load_model

pyspark = pytest.importorskip("pyspark", reason="pyspark not installed (pip install 'whistle[spark]')")
pa = pytest.importorskip("pyarrow")
if shutil.which("java") is None:
    pytest.skip("java not found: Spark needs a JRE", allow_module_level=True)

pytestmark = pytest.mark.spark

from whistle.batch import TagOptions, tag_file
from whistle.batch.spark import spark_session, tag_spark
from whistle.io.records import FieldMap


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
