"""Readers: every input row comes out as one record, whatever the format or encoding."""

from __future__ import annotations

import csv
import json

import pytest

from chuishao.errors import DataError
from chuishao.io.formats import detect_format
from chuishao.io.records import FieldMap, read_records
from chuishao.io.text import detect_encoding

ROWS = [("1", "小区停水三天没人管"), ("2", "楼下烧烤店油烟很大"), ("3", "路口下水道堵塞")]


def _write_csv(path, encoding, rows=ROWS):
    with path.open("w", encoding=encoding, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["编号", "内容"])
        w.writerows(rows)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_csv_encodings_are_detected(tmp_path, encoding):
    src = tmp_path / "in.csv"
    _write_csv(src, encoding)
    recs = list(read_records(src, FieldMap(id="编号", text="内容", title=None)))
    assert [(r.id, r.text, r.error) for r in recs] == [(i, t, None) for i, t in ROWS]


def test_gbk_file_is_detected_as_gb18030(tmp_path):
    src = tmp_path / "in.csv"
    _write_csv(src, "gbk")
    assert detect_encoding(src) == "gb18030"


def test_undecodable_line_becomes_a_row_error_not_a_crash(tmp_path):
    src = tmp_path / "in.jsonl"
    good = [json.dumps({"id": i, "text": t}, ensure_ascii=False).encode() for i, t in ROWS]
    src.write_bytes(b"\n".join([good[0], b'{"id": "x", "text": "\xff\xfe bad"}', good[1]]) + b"\n")
    recs = list(read_records(src, encoding="utf-8"))
    assert [r.id for r in recs] == ["1", "row-2", "2"]
    assert recs[1].error and "not valid utf-8" in recs[1].error
    assert recs[0].error is None and recs[2].error is None


def test_csv_row_with_bad_bytes_keeps_its_place(tmp_path):
    src = tmp_path / "in.csv"
    src.write_bytes("编号,内容\n1,小区停水\n".encode() + b"2,\xff\xff\n" + "3,路灯不亮\n".encode())
    recs = list(read_records(src, FieldMap(id="编号", text="内容", title=None), encoding="utf-8"))
    assert [(r.id, r.error is None) for r in recs] == [("1", True), ("2", False), ("3", True)]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".csv.gz"])
def test_bare_cr_line_endings_are_lines(tmp_path, suffix):
    """Old Mac exports end lines in a bare \r: every row still comes out as its own record, and a
    quoted CSV value keeps its line break."""
    import gzip

    if ".csv" in suffix:
        rows = [*ROWS, ("4", "第一行\r第二行")]
        body = "id,text\r" + "".join(f'{i},"{t}"\r' for i, t in rows)
    else:
        rows = ROWS
        body = "".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\r" for i, t in rows)
    src = tmp_path / f"in{suffix}"
    src.write_bytes(gzip.compress(body.encode()) if suffix.endswith(".gz") else body.encode())
    recs = list(read_records(src))
    assert [(r.id, r.text, r.error) for r in recs] == [(i, t, None) for i, t in rows]


def test_csv_bare_cr_inside_an_unquoted_value_is_kept(tmp_path):
    """Python's csv module rejects it; the row is read as Spark reads it, \r and all."""
    src = tmp_path / "in.csv"
    src.write_bytes("id,text\r\n1,路灯坏了\r很黑\r\n2,小区停水\n".encode())
    recs = list(read_records(src))
    assert [(r.id, r.text, r.error) for r in recs] == [("1", "路灯坏了\r很黑", None), ("2", "小区停水", None)]


def test_unreadable_csv_row_becomes_its_error_and_reading_goes_on(tmp_path):
    """A stray \n inside an unquoted value of a \r-ended file, past the part looked at to find the
    line ending: that row gets an error, the rows after it are read."""
    filler = [(str(i), "小区楼下烧烤店油烟很大" * 5) for i in range(2000)]  # ~300 KB before the bad row
    body = "id,text\r" + "".join(f"{i},{t}\r" for i, t in filler) + "bad,路灯\n坏了\r" + "last,小区停水\r"
    src = tmp_path / "in.csv"
    src.write_bytes(body.encode())
    recs = list(read_records(src))
    assert len(recs) == 2002 and all(r.error is None for r in recs[:2000])
    assert recs[2000].id == "row-2001" and "line break inside an unquoted value" in recs[2000].error
    assert (recs[2001].id, recs[2001].text, recs[2001].error) == ("last", "小区停水", None)


def test_xlsx_reader(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    src = tmp_path / "in.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["id", "title", "text", "区"])
    ws.append([1024, "停水", "小区停水三天", "朝阳"])
    ws.append([None, None, None, "海淀"])
    wb.save(src)
    recs = list(read_records(src))
    assert [(r.row, r.id, r.text) for r in recs] == [(1, "1024", "小区停水三天"), (2, "row-2", None)]
    assert recs[0].fields["区"] == "朝阳" and "'text' is empty" in recs[1].error


def test_xlsx_sheet_by_name(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    src = tmp_path / "two-sheets.xlsx"
    wb = openpyxl.Workbook()
    wb.active.title = "说明"
    wb.active.append(["这一页是导出说明，不是数据"])
    data = wb.create_sheet("工单")
    data.append(["id", "text"])
    data.append(["w1", "小区停水三天没人管"])
    wb.save(src)
    assert [(r.id, r.text) for r in read_records(src, sheet="工单")] == [("w1", "小区停水三天没人管")]
    with pytest.raises(DataError, match="no 'text' column"):  # the first sheet by default
        list(read_records(src))
    with pytest.raises(DataError, match="worksheets: 说明, 工单"):
        read_records(src, sheet="Sheet9")
    csv_src = tmp_path / "in.csv"
    _write_csv(csv_src, "utf-8")
    with pytest.raises(DataError, match="--sheet applies to Excel"):
        read_records(csv_src, sheet="工单")


def test_parquet_reader_and_missing_column(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": [1, 2], "text": ["小区停水", None]}), src)
    recs = list(read_records(src))
    assert [(r.id, r.error is None) for r in recs] == [("1", True), ("2", False)]
    with pytest.raises(DataError, match="no 'body' column"):
        read_records(src, FieldMap(text="body"))


def test_unknown_extension_is_a_clear_error():
    assert detect_format("x.csv.gz") == "csv" and detect_format("y.PARQUET") == "parquet"
    with pytest.raises(DataError, match="unknown file type"):
        detect_format("data.txt")


def test_one_bad_byte_does_not_turn_a_utf8_file_into_gb18030(tmp_path):
    src = tmp_path / "in.csv"
    src.write_bytes("id,text\n1,小区停水三天".encode() + b"\xff\n" + "".join(f"{i},{t}\n" for i, t in ROWS[1:]).encode())
    assert detect_encoding(src) == "utf-8"
    recs = list(read_records(src))
    assert "not valid utf-8" in recs[0].error
    assert [(r.id, r.text, r.error) for r in recs[1:]] == [(i, t, None) for i, t in ROWS[1:]]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_utf16_files_are_refused_clearly(tmp_path, encoding):
    src = tmp_path / "in.csv"
    src.write_bytes("\ufeffid,text\n1,小区停水\n".encode(encoding))
    with pytest.raises(DataError, match="UTF-16"):
        read_records(src)


def test_unknown_or_unsupported_encodings_are_refused(tmp_path):
    src = tmp_path / "in.csv"
    _write_csv(src, "utf-8")
    with pytest.raises(DataError, match="unknown encoding"):
        read_records(src, encoding="bogus")
    with pytest.raises(DataError, match="not supported"):
        read_records(src, encoding="utf-16")


def test_a_column_name_used_twice_is_an_error(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,text,text\n1,小区停水,hello\n", encoding="utf-8")
    with pytest.raises(DataError, match="used twice: text"):
        read_records(src)


def test_a_json_array_file_is_not_read_as_json_lines(tmp_path):
    src = tmp_path / "in.json"
    src.write_text(json.dumps([{"id": i, "text": t} for i, t in ROWS], ensure_ascii=False, indent=2), encoding="utf-8")
    with pytest.raises(DataError, match="JSON array, not JSON Lines"):
        read_records(src)
    src.write_text(json.dumps([{"id": i, "text": t} for i, t in ROWS], ensure_ascii=False), encoding="utf-8")  # one line
    with pytest.raises(DataError, match="JSON array, not JSON Lines"):
        read_records(src)
    src.write_text('[1, 2]\n{"id": "a", "text": "小区停水"}\n', encoding="utf-8")  # JSONL whose first row is an array
    assert [r.error is None for r in read_records(src)] == [False, True]


def test_damaged_gzip_and_folders_are_errors_that_name_the_file(tmp_path):
    import gzip

    whole = gzip.compress("".join(json.dumps({"id": str(i), "text": "小区停水" * 50}) + "\n" for i in range(2000)).encode())
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"cut\.jsonl\.gz: damaged or incomplete gzip"):
        list(read_records(cut))
    fake = tmp_path / "fake.jsonl.gz"
    fake.write_text('{"id": "1"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"fake\.jsonl\.gz: damaged or incomplete gzip"):
        list(read_records(fake))
    with pytest.raises(DataError, match="is a directory"):
        read_records(tmp_path)


def test_a_file_that_is_not_a_workbook_is_a_clear_error(tmp_path):
    pytest.importorskip("openpyxl")
    src = tmp_path / "in.xlsx"
    src.write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match=r"not a readable \.xlsx workbook"):
        read_records(src)


def test_a_quote_never_closed_is_an_error_not_a_silent_loss_of_the_rows_after_it(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text('id,text\n1,小区停水\n2,"楼下很吵\n3,路灯坏了\n4,物业不管\n', encoding="utf-8")
    recs = list(read_records(src))
    assert [r.id for r in recs] == ["1", "2"] and recs[0].error is None
    assert "in.csv row 2 (line 3): a quote opened here is never closed" in recs[1].error
    assert "the 2 lines after it" in recs[1].error
    # a quoted value over several lines, properly closed, at the end of the file is fine
    src.write_text('id,text\n1,小区停水\n2,"楼下很吵\n晚上也吵"\n', encoding="utf-8")
    assert [(r.id, r.text, r.error) for r in read_records(src)] == [("1", "小区停水", None), ("2", "楼下很吵\n晚上也吵", None)]


def test_blank_lines_in_a_csv_are_not_rows(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,text\n1,小区停水\n\n2,路灯坏了\n\n", encoding="utf-8")
    assert [(r.row, r.id, r.error) for r in read_records(src)] == [(1, "1", None), (2, "2", None)]


def test_a_jsonl_field_that_no_row_has_is_refused_before_any_row(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "内容": "小区停水三天了"}\nnot json\n{"id": "b", "内容": "路灯坏了"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"no 'content' column \(columns: id, 内容\)"):
        read_records(src, FieldMap(text="content"))
    assert [r.text for r in read_records(src, FieldMap(text="内容"))] == ["小区停水三天了", None, "路灯坏了"]
    assert "no 'title' column, so no titles are used" in capsys.readouterr().err  # said once, as for a CSV header


def test_rows_a_stray_quote_swallowed_are_not_silent(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text('id,title,text\na1,标题,"楼下烧烤店油烟很大\nb1,标题,路灯坏了很久没人修\nc1,标题,"小区门口垃圾成堆"\n'
                   'd1,标题,楼下烧烤店油烟很大\ne1,标题,"第一行\n第二行，路灯坏了"\n', encoding="utf-8")
    recs = list(read_records(src))
    assert [r.id for r in recs] == ["a1", "d1", "e1"]
    assert "in.csv row 1: a quoted value holds lines that read as rows of their own (2 lines of 3 values)" in recs[0].error
    assert recs[1].error is None and recs[2].error is None  # a real value over two lines is fine


def test_json_ids_and_broken_json_are_said_as_json_says_them(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": true, "text": "小区停水"}\n{"id": {"a": 1}, "text": "路灯坏了"}\n{"id": 7, "text": "路灯坏了"}\n'
                   '{"id": "x", "text": "没有结尾\n', encoding="utf-8")
    recs = list(read_records(src))
    assert [r.id for r in recs[:3]] == ["true", '{"a":1}', "7"]
    assert "broken JSON (Unterminated string starting at: column 21)" in recs[3].error


def test_a_real_multi_line_value_with_commas_is_not_taken_for_swallowed_rows(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text('id,text\nm17,"投诉如下：\n1, 夜里施工\n2, 噪音很大"\n', encoding="utf-8")
    assert [r.error for r in read_records(src)] == [None]
    tsv = tmp_path / "in.tsv"
    tsv.write_text('id\ttext\nm1\t"地址：\n幸福路12号, 3单元"\nm2\t"开了引号\nm3\t路灯坏了"\n', encoding="utf-8")
    recs = list(read_records(tsv))
    assert recs[0].error is None and "a stray double quote?" in recs[1].error  # m3 reads as a row of its own
