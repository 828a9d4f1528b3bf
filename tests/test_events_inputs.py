"""`chuishao events` input checks: times as numbers or text alike (CSV = Excel), implausible epochs are row errors,
naive times in --timezone, a misspelt --time-field / --place-field is an error, the page's labels and error reasons."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from chuishao.batch.events import error_reason, parse_time, time_zone
from chuishao.cli import app
from chuishao.errors import DataError

# Authored for these tests: three paraphrases of one complaint about a night market's noise.
NOISE = ["夜市噪音扰民 光明路夜市每天晚上摊贩用喇叭叫卖到凌晨一点，声音很大，楼上住户没法休息，请城管处理。",
         "夜市太吵 光明路夜市每天晚上摊贩用喇叭叫卖一直到凌晨一点，声音特别大，楼上住户无法休息，请城管管一管。",
         "夜市喇叭扰民 光明路夜市每晚摊贩用喇叭叫卖到凌晨一点多，声音很大，楼上的住户没法休息，请城管来处理。"]
T0 = 1793491200  # 2026-11-01T00:00:00Z
DAY = 86400


def _epoch(day: float) -> int:
    return int(T0 + day * DAY)


# ---- parse_time -------------------------------------------------------------------------------------------
def test_digit_text_reads_as_the_same_number():
    assert parse_time(str(T0)) == parse_time(T0) == float(T0)
    assert parse_time(f" {T0 * 1000} ") == parse_time(T0 * 1000) == float(T0)  # milliseconds
    assert parse_time(f"{T0}.0") == float(T0)  # a float column written as text
    assert parse_time("20261101") == parse_time(20261101) == float(T0)  # YYYYMMDD: no epoch in range has 8 digits


@pytest.mark.parametrize("value", [46000, "46000", 46000.25])
def test_excel_serial_is_an_error_that_says_so(value):
    with pytest.raises(ValueError, match=r"1970-01-01.*before 2000-01-01.*Excel date serial\? format the column"):
        parse_time(value)


@pytest.mark.parametrize("value", [123456789, -5, 9_999_999_999, 1e300])
def test_implausible_epochs_are_errors(value):
    with pytest.raises(ValueError, match="not a plausible time"):
        parse_time(value)


def test_naive_times_are_in_the_given_zone():
    beijing = time_zone("Asia/Shanghai")
    zoned = parse_time("2026-12-01T08:30:00+08:00")
    assert parse_time("2026-12-01 08:30", beijing) == zoned == parse_time(datetime(2026, 12, 1, 8, 30), beijing)
    assert parse_time("2026-12-01T08:30:00+08:00", beijing) == zoned  # a zone written in the value wins
    assert parse_time("2026-12-01 08:30") == zoned + 8 * 3600  # default: UTC, as before
    assert parse_time(T0, beijing) == T0  # an epoch has no zone
    assert time_zone("utc") is UTC
    for bad in ("Asia/Shanghaii", "Asia", "", "../etc"):
        with pytest.raises(DataError, match="--timezone"):
            time_zone(bad)


def test_error_reason_drops_place_and_value():
    assert error_reason("row 7: not a time: 'yesterday' (expected e.g. 2026-12-01 08:30:00)") == "not a time"
    assert error_reason("in.jsonl line 3: broken JSON (Expecting value: column 1)") == "broken JSON"
    assert error_reason("row 4: not a plausible time: 46000 read as epoch seconds is …") == "not a plausible time"
    assert error_reason("a b.csv row 5 (line 9): a quote opened here is never closed, so …") == \
        "a quote opened here is never closed"


# ---- the command -------------------------------------------------------------------------------------------
ROWS = [("a0", NOISE[0], _epoch(0)), ("a1", NOISE[1], _epoch(1)), ("a2", NOISE[2], _epoch(40))]


def _run(tmp_path, src, *args, out_name="out.csv"):
    out = tmp_path / out_name
    result = CliRunner().invoke(app, ["events", str(src), "-o", str(out), "--gazetteer", "none", *args])
    return result, out


def _rows(out):
    return {r["id"]: r for r in csv.DictReader(out.open(encoding="utf-8-sig"))}


def test_csv_and_xlsx_epochs_give_the_same_events(tiny_model_dir, tmp_path):
    import openpyxl

    src_csv = tmp_path / "in.csv"
    with src_csv.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([("id", "text", "受理时间"), *ROWS])  # every CSV cell is text
    src_xlsx = tmp_path / "in.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["id", "text", "受理时间"])
    for row in ROWS:
        wb.active.append(list(row))  # number cells
    wb.save(src_xlsx)
    outs = []
    for src, name in ((src_csv, "from-csv.csv"), (src_xlsx, "from-xlsx.csv")):
        result, out = _run(tmp_path, src, "--model", str(tiny_model_dir), "--time-field", "受理时间", out_name=name)
        assert result.exit_code == 0, result.output
        outs.append(_rows(out))
    for rows in outs:
        assert not any(r["error"] for r in rows.values())
        assert rows["a0"]["event_id"] == rows["a1"]["event_id"] != rows["a2"]["event_id"]  # 40 days apart
        assert rows["a0"]["time"] == "2026-11-01T00:00:00Z"
    assert [(r["event_id"], r["time"]) for r in outs[0].values()] == [(r["event_id"], r["time"]) for r in outs[1].values()]


def test_excel_serial_cell_is_a_row_error(tiny_model_dir, tmp_path):
    import openpyxl

    src = tmp_path / "serial.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["id", "text", "time"])
    wb.active.append(["s0", NOISE[0], 46000])  # a date serial in a cell formatted as a number
    wb.active.append(["s1", NOISE[1], _epoch(0)])
    wb.save(src)
    result, out = _run(tmp_path, src, "--model", str(tiny_model_dir), "--time-field", "time")
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    assert "Excel date serial" in rows["s0"]["error"] and not rows["s0"]["event_id"] and not rows["s0"]["time"]
    assert rows["s1"]["event_id"] and not rows["s1"]["error"]


def test_timezone_puts_naive_and_zoned_times_together(tiny_model_dir, tmp_path):
    src = tmp_path / "tz.jsonl"
    rows = [{"id": "naive", "text": NOISE[0], "time": "2026-12-01 08:30"},
            {"id": "zoned", "text": NOISE[1], "time": "2026-12-01T08:40:00+08:00"}]
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    common = ["--model", str(tiny_model_dir), "--time-field", "time", "--window-days", "0.25"]  # 6 hours
    result, out = _run(tmp_path, src, *common, "--timezone", "Asia/Shanghai")
    assert result.exit_code == 0, result.output
    local = _rows(out)
    assert local["naive"]["time"] == "2026-12-01T00:30:00Z" and local["zoned"]["time"] == "2026-12-01T00:40:00Z"
    assert local["naive"]["event_id"] == local["zoned"]["event_id"]
    result, out = _run(tmp_path, src, *common, out_name="utc.csv")  # default: naive times are UTC, 8 hours later
    assert result.exit_code == 0, result.output
    utc = _rows(out)
    assert utc["naive"]["time"] == "2026-12-01T08:30:00Z" and utc["naive"]["event_id"] != utc["zoned"]["event_id"]
    result, out = _run(tmp_path, src, *common, "--timezone", "Beijing", out_name="bad.csv")
    assert result.exit_code == 2 and "--timezone 'Beijing'" in result.output and not out.exists()


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
@pytest.mark.parametrize("option", ["--time-field", "--place-field"])
def test_misspelt_column_is_a_one_line_error(tiny_model_dir, tmp_path, suffix, option):
    src = tmp_path / f"in.{suffix}"
    if suffix == "csv":
        with src.open("w", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerows([("id", "text", "受理时间", "街道"), ("x0", NOISE[0], T0, "和平街道")])
    else:
        src.write_text(json.dumps({"id": "x0", "text": NOISE[0], "受理时间": T0, "街道": "和平街道"},
                                  ensure_ascii=False) + "\n", encoding="utf-8")
    result, out = _run(tmp_path, src, "--model", str(tiny_model_dir), option, "受理日期")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if "error" in line]  # (a warning: no title column)
    assert len(errors) == 1
    line = errors[0]
    assert "no '受理日期' column (columns: id, text, 受理时间, 街道)" in line and option in line
    assert not out.exists()
    result, out = _run(tmp_path, src, "--model", str(tiny_model_dir), option, "受理时间" if option == "--time-field" else "街道")
    assert result.exit_code == 0, result.output  # the right name works


def test_page_labels_counts_and_says_why_rows_failed(tiny_model_dir, tmp_path):
    src = tmp_path / "page.jsonl"
    good = [json.dumps({"id": f"g{i}", "text": t, "time": str(_epoch(i))}, ensure_ascii=False) for i, t in enumerate(NOISE)]
    bad = [json.dumps({"id": "b0", "text": NOISE[0], "time": "昨天"}, ensure_ascii=False),
           json.dumps({"id": "b1", "text": NOISE[1], "time": "前天晚上"}, ensure_ascii=False),
           json.dumps({"id": "b2", "text": NOISE[2], "time": 46000}, ensure_ascii=False), "{broken"]
    src.write_text("\n".join(good + bad) + "\n", encoding="utf-8")
    page = tmp_path / "page.html"
    result, _ = _run(tmp_path, src, "--model", str(tiny_model_dir), "--time-field", "time", "--html", str(page))
    assert result.exit_code == 0, result.output
    text = page.read_text(encoding="utf-8")
    for raw in ("events_of_2_or_more", "reports_in_them", "whistle_candidates", "seconds_grouping", "error_reasons"):
        assert raw not in text, raw
    assert "<b>1</b><span>events of 2+ reports</span>" in text and "<b>3</b><span>reports in those events</span>" in text
    assert "<b>4</b><span>rows with errors</span>" in text
    errors = text[text.index("Rows with errors (4)"):text.index("Whistle candidates")]
    assert '<td>not a time</td><td class="num">2</td>' in errors
    assert '<td>not a plausible time</td><td class="num">1</td>' in errors and "<td>broken JSON</td>" in errors
    counts = json.loads(result.output.strip().splitlines()[-1])  # stderr's counts say the same
    assert counts["error_reasons"] == {"not a time": 2, "not a plausible time": 1, "broken JSON": 1}
