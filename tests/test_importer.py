"""chuishao import: a city's files (CSV, XLSX, Parquet, JSONL, Hugging Face datasets) and its own categories
mapped to whistle topics; unmapped labels are never lost silently."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO
from typer.testing import CliRunner

from chuishao.analysis.importer import LabelMap, import_labelled
from chuishao.cli import app
from chuishao.errors import DataError
from chuishao.io.records import FieldMap
from chuishao.taxonomy import Taxonomy
from chuishao.training.data import read_labelled

runner = CliRunner()
TEDDY_MAP = REPO / "data" / "mappings" / "teddy7-to-whistle.csv"
# the fixture's messages given Teddy-style first-level classes, as a city's export would have them
TEDDY_OF = {"W05": "环境保护", "W06": "环境保护", "W01": "城乡建设", "W09": "交通运输", "W10": "商贸旅游",
            "W13": "城乡建设", "OTHER": "劳动和社会保障"}
FIELDS = ["--id-field", "编号", "--title-field", "标题", "--text-field", "留言详情", "--label-field", "一级分类"]


def fixture_rows() -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / "labelled-mini.jsonl").read_text(encoding="utf-8").splitlines()]


def city_rows(extra: list[tuple[str, str]] = ()) -> list[dict]:  # type: ignore[assignment]
    rows = [{"编号": r["id"], "标题": r["title"], "留言详情": r["text"], "一级分类": TEDDY_OF[r["label"]],
             "留言时间": f"2020-01-{i % 28 + 1:02d} 10:00:00"} for i, r in enumerate(fixture_rows())]
    rows[0]["留言详情"] += "联系电话13812345678"
    for n, (label, text) in enumerate(extra):
        rows.append({"编号": f"x{n}", "标题": "", "留言详情": text, "一级分类": label, "留言时间": ""})
    return rows


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_teddy_rows_import_with_the_bundled_mapping_and_train_reads_them(tmp_path):
    src = write_csv(tmp_path / "city.csv", city_rows())
    out = tmp_path / "city.jsonl"
    result = runner.invoke(app, ["import", str(src), "-o", str(out), "--mapping", str(TEDDY_MAP), *FIELDS,
                                 "--time-field", "留言时间"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    # 劳动和社会保障 maps to OTHER (the fixture's 8 OTHER rows); the broad classes are DROPped and counted
    assert summary["written"] == 8 and summary["labels"] == {"OTHER": 8} and summary["rows"] == 34
    assert summary["dropped_by_mapping"] == {"环境保护": 10, "城乡建设": 8, "交通运输": 4, "商贸旅游": 4}
    assert summary["unmapped_rows"] == 0 and "left out by the mapping (DROP)" in result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert set(rows[0]) == {"id", "title", "text", "label", "sub", "source_label", "time"}
    assert rows[0]["source_label"] == "劳动和社会保障" and rows[0]["time"].startswith("2020-01-")
    labelled = read_labelled(out)  # what chuishao train reads
    assert len(labelled) == 8 and set(labelled.labels) == {"OTHER"}


def test_unmapped_labels_are_an_error_listing_them_unless_told_what_to_do(tmp_path):
    src = write_csv(tmp_path / "city.csv", city_rows([("政法", "派出所办户口排队一上午"), ("政法", "邻居半夜吵架报警没人管"),
                                                      ("民政", "低保申请半年没有结果")]))
    out = tmp_path / "city.jsonl"
    base = ["import", str(src), "-o", str(out), "--mapping", str(TEDDY_MAP), *FIELDS]
    refused = runner.invoke(app, base)
    assert refused.exit_code == 2 and not out.exists() and not list(tmp_path.glob(".*part"))
    line = refused.stderr.strip()
    assert len(line.splitlines()) == 1 and "3 rows have labels the mapping" in line and "政法 (2), 民政 (1)" in line
    assert "--unmapped other|drop" in line
    dropped = runner.invoke(app, [*base, "--unmapped", "drop"])
    assert dropped.exit_code == 0, dropped.output
    summary = json.loads(dropped.stdout)
    assert summary["unmapped"] == {"政法": 2, "民政": 1} and summary["written"] == 8
    assert "3 rows with unmapped labels left out" in dropped.stderr
    other = runner.invoke(app, [*base, "--unmapped", "other"])
    assert other.exit_code == 0 and json.loads(other.stdout)["labels"] == {"OTHER": 11}
    bad = runner.invoke(app, [*base, "--unmapped", "keep"])
    assert bad.exit_code == 2 and "use other or drop" in bad.stderr


def test_without_a_mapping_codes_and_topic_names_pass_and_pii_is_masked(tmp_path):
    rows = city_rows()
    for r, f in zip(rows, fixture_rows(), strict=True):
        r["一级分类"] = f["label"]
    rows[1]["一级分类"] = "噪声扰民"  # a topic's name is its code
    out = tmp_path / "o.jsonl"
    summary = import_labelled(write_csv(tmp_path / "c.csv", rows), out, FieldMap("编号", "留言详情", "标题"), "一级分类",
                              taxonomy=Taxonomy.load())
    assert summary["written"] == 34 and summary["unmapped_rows"] == 0 and summary["pii_masked_rows"] == 1
    first, second = (json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()[:2])
    assert "13812345678" not in first["text"] and second["label"] == "W05"


def test_mapping_files_are_checked_line_by_line(tmp_path):
    tax = Taxonomy.load()
    cases = {
        "source,target\n城建,W99\n": "line 2: 'W99' is not a topic",
        "# c\nsource,target,sub\n供暖,W14,W13a\n": "line 3: sub-problem 'W13a' is not under W14",
        "source,target\na,W05\na,W06\n": "line 3: 'a' is mapped twice",
        "from,to\na,W05\n": "line 1: the header must be source,target",
        "source,target\na\n": "line 2: 1 values",
    }
    for n, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"m{n}.csv"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(DataError, match=message):
            LabelMap.load(path, tax)
    yml = tmp_path / "m.yaml"
    yml.write_text("供暖: {target: 供暖燃气供电, sub: W14a}\n'101': W05\n其他: 其它类\n劳动: DROP\n", encoding="utf-8")
    with pytest.raises(DataError, match="'其它类' is not a topic"):
        LabelMap.load(yml, tax)
    # codes in any case and sub-problem names, as labelling sheets take them
    yml.write_text("供暖: {target: 供暖燃气供电, sub: w14a}\n101: w05\n其他: other\n工地: {target: W05, sub: 施工噪声}\n"
                   "劳动: DROP\n", encoding="utf-8")
    m = LabelMap.load(yml, tax)
    assert m.get("供暖").label == "W14" and m.get("供暖").sub == "W14a" and m.get("101").label == "W05"  # type: ignore[union-attr]
    assert m.get("其他").label == "OTHER" and m.get("工地").sub == "W05a"  # type: ignore[union-attr]
    assert m.get("劳动").label == "DROP"  # type: ignore[union-attr]


def test_an_unreadable_row_is_an_error_and_nothing_is_written(tmp_path):
    src = tmp_path / "c.jsonl"
    src.write_text('{"id": "1", "text": "楼下噪音", "label": "W05"}\n{"id": "2", "label": "W05"}\n', encoding="utf-8")
    out = tmp_path / "o.jsonl"
    result = runner.invoke(app, ["import", str(src), "-o", str(out)])
    assert result.exit_code == 2 and "1 of 2 rows cannot be read (c.jsonl line 2: no 'text' field)" in result.stderr
    assert not out.exists()
    same = runner.invoke(app, ["import", str(src), "-o", str(src)])
    assert same.exit_code == 2 and "is the input" in same.stderr


def test_xlsx_parquet_and_hugging_face_sources(tmp_path):
    pytest.importorskip("pyarrow")
    pytest.importorskip("openpyxl")
    import openpyxl
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = city_rows()
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(list(rows[0]))
    for r in rows:
        ws.append(list(r.values()))
    wb.save(tmp_path / "c.xlsx")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "c.parquet")
    for name in ("c.xlsx", "c.parquet"):
        result = runner.invoke(app, ["import", str(tmp_path / name), "-o", str(tmp_path / f"{name}.jsonl"),
                                     "--mapping", str(TEDDY_MAP), *FIELDS])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["written"] == 8

    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list(rows)
    datasets.DatasetDict({"train": ds, "test": ds.select(range(5))}).save_to_disk(str(tmp_path / "hf"))
    base = ["import", str(tmp_path / "hf"), "--mapping", str(TEDDY_MAP), *FIELDS]
    two = runner.invoke(app, [*base, "-o", str(tmp_path / "hf.jsonl")])
    assert two.exit_code == 2 and "several splits; choose one with --split (train, test)" in two.stderr
    ok = runner.invoke(app, [*base, "-o", str(tmp_path / "hf.jsonl"), "--split", "train"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["written"] == 8
    ds.to_json(str(tmp_path / "files" / "train.jsonl"), force_ascii=False)  # a folder of data files
    files = runner.invoke(app, ["import", str(tmp_path / "files"), "--mapping", str(TEDDY_MAP), *FIELDS,
                                "-o", str(tmp_path / "files.jsonl")])
    assert files.exit_code == 0, files.output
    assert json.loads(files.stdout)["rows"] == 34


@pytest.mark.shared
def test_the_teddy_training_split_imports_with_the_bundled_mapping(shared_data, tmp_path):
    summary = import_labelled(shared_data / "teddy7" / "train.jsonl", tmp_path / "t.jsonl", mapping=LabelMap.load(
        TEDDY_MAP, Taxonomy.load()), taxonomy=Taxonomy.load())
    assert summary["rows"] == 4397 and summary["written"] == 951 + 421 + 763 and summary["unmapped_rows"] == 0
    assert sum(summary["dropped_by_mapping"].values()) == 972 + 564 + 446 + 280  # type: ignore[attr-defined]


def test_the_annotators_confidence_is_kept_so_train_weighs_low_rows_less(tmp_path):
    rows = [{"id": f"r{i}", "title": "", "text": f"小区门口第{i}次有人占道经营", "label": "W04",
             "conf": "low" if i % 2 else "high"} for i in range(4)]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    import_labelled(src, out, taxonomy=Taxonomy.load())
    assert [json.loads(line).get("conf") for line in out.read_text(encoding="utf-8").splitlines()] == ["high", "low"] * 2
    assert read_labelled(out, low_conf_weight=0.5).weights == [1.0, 0.5, 1.0, 0.5]


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_sub_problems_match_as_labels_do_and_the_rest_is_said(tmp_path):
    subs = ["施工噪声", "w05a", "W06a", "XYZ", "W05b"]
    rows = [{"id": f"n{i}", "text": f"工地晚上第{i}次施工，吵得睡不着", "label": "噪声扰民", "sub": sub}
            for i, sub in enumerate(subs)]
    rows.append({"id": "n9", "text": "楼上每天半夜拖椅子", "label": "w05", "sub": ""})  # a topic code in lower case
    out = tmp_path / "o.jsonl"
    result = runner.invoke(app, ["import", str(write_rows(tmp_path / "c.jsonl", rows)), "-o", str(out)])
    assert result.exit_code == 0, result.output
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["sub"] for r in written] == ["W05a", "W05a", None, None, "W05b", None]
    assert {r["label"] for r in written} == {"W05"}
    summary = json.loads(result.stdout)
    assert (summary["subs_unknown"], summary["subs_not_under_topic"]) == (1, 1)
    lines = result.stderr.strip().splitlines()
    assert any("1 rows have a sub-problem the taxonomy does not know" in x and "XYZ (1)" in x for x in lines), lines
    assert any("1 rows have a sub-problem of another topic" in x and "W06a under W05 (1)" in x for x in lines), lines


def test_a_named_time_or_sub_column_that_is_missing_is_an_error(tmp_path):
    row = {"id": "1", "title": "", "text": "楼下噪音很大", "label": "W05", "受理时间": "2024-05-01"}
    src = write_csv(tmp_path / "c.csv", [row])
    out = tmp_path / "o.jsonl"
    for option, column in (("--time-field", "时间"), ("--sub-field", "子类别")):
        result = runner.invoke(app, ["import", str(src), "-o", str(out), option, column])
        assert result.exit_code == 2 and not out.exists()
        line = result.stderr.strip()
        assert len(line.splitlines()) == 1 and f"no '{column}' column for {option}" in line
        assert "(columns: id, title, text, label, 受理时间)" in line
    ok = runner.invoke(app, ["import", str(src), "-o", str(out), "--time-field", "受理时间"])  # no sub column: fine
    assert ok.exit_code == 0, ok.output
    assert json.loads(out.read_text(encoding="utf-8"))["time"] == "2024-05-01"


def test_repeated_ids_are_warned_about(tmp_path):
    rows = [{"id": "a", "text": "楼下噪音很大", "label": "W05"}, {"id": "a", "text": "楼下噪音很大", "label": "W06"},
            {"id": "b", "text": "路灯坏了", "label": "W01"}, {"id": "b", "text": "路灯又坏了", "label": "W01"}]
    result = runner.invoke(app, ["import", str(write_rows(tmp_path / "c.jsonl", rows)), "-o", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["repeated_ids"], summary["ids_with_two_labels"], summary["ids_with_two_texts"]) == (2, 1, 1)
    line = next(x for x in result.stderr.splitlines() if "message id" in x)
    assert "2 rows repeat a message id" in line and "1 ids come with two different labels (train refuses them, e.g. a)" in line
    assert "1 with another text (train keeps the first row only, e.g. b)" in line


def _xlsx(path: Path, rows: list[list[object]]) -> Path:
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path


def test_an_empty_row_stops_csv_and_xlsx_alike_and_a_title_alone_is_kept(tmp_path):
    header = ["id", "title", "text", "label"]
    empty = [["1", "", "楼下噪音很大", "W05"], ["2", "", "", "W05"]]
    titled = [["1", "", "楼下噪音很大", "W05"], ["2", "路灯坏了一个月", "", "W01"]]
    for name, rows in (("empty", empty), ("titled", titled)):
        write_csv(tmp_path / f"{name}.csv", [dict(zip(header, r, strict=True)) for r in rows])
        _xlsx(tmp_path / f"{name}.xlsx", [header, *[[v or None for v in r] for r in rows]])  # an empty cell reads None
    for src, where in ((tmp_path / "empty.csv", "empty.csv row 2"), (tmp_path / "empty.xlsx", "empty.xlsx row 3")):
        out = tmp_path / f"{src.name}.jsonl"
        result = runner.invoke(app, ["import", str(src), "-o", str(out)])
        assert result.exit_code == 2 and not out.exists(), result.output
        assert f"1 of 2 rows cannot be read ({where}: 'text' is empty and there is no title)" in result.stderr
    for src in (tmp_path / "titled.csv", tmp_path / "titled.xlsx"):
        out = tmp_path / f"{src.name}.jsonl"
        result = runner.invoke(app, ["import", str(src), "-o", str(out)])
        assert result.exit_code == 0, result.output
        second = json.loads(out.read_text(encoding="utf-8").splitlines()[1])
        assert (second["title"], second["text"], second["label"]) == ("路灯坏了一个月", "", "W01")


def test_spreadsheet_errors_name_the_row_excel_shows(tmp_path):
    src = _xlsx(tmp_path / "c.xlsx", [["id", "text", "label"], ["1", "楼下噪音很大", "W05"], ["2", 42, "W05"]])
    result = runner.invoke(app, ["import", str(src), "-o", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2 and "c.xlsx row 3: 'text' must be a string" in result.stderr, result.output


def test_an_unknown_label_of_spaces_is_shown_quoted(tmp_path):
    rows = [{"id": "1", "text": "楼下噪音很大", "label": "   "}, {"id": "2", "text": "路灯坏了", "label": ""},
            {"id": "3", "text": "垃圾没人收", "label": "W08"}]
    result = runner.invoke(app, ["import", str(write_rows(tmp_path / "c.jsonl", rows)), "-o", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2 and "does not map: '   ' (1), (no label) (1)." in result.stderr, result.output


def test_a_sub_problem_name_is_looked_up_under_its_own_topic_first(tmp_path):
    import yaml

    from chuishao.resources import default_taxonomy_path
    from chuishao.taxonomy import OTHER_TOPIC_SUB, UNKNOWN_SUB, Codes

    raw = yaml.safe_load(default_taxonomy_path().read_text(encoding="utf-8"))
    for area in raw["areas"]:  # a city's taxonomy: a sub-problem named 其他 under two topics
        for topic in area["topics"]:
            if topic["code"] in ("W05", "W06"):
                topic["subs"][-1]["name"] = "其他"
    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    codes = Codes(Taxonomy.load(path))
    assert codes.sub("其他", "W05") == ("W05b", None) and codes.sub("其他", "W06") == ("W06b", None)
    assert codes.sub("w05a", "W05") == ("W05a", None) and codes.sub("W06a", "W05") == (None, OTHER_TOPIC_SUB)
    assert codes.sub("XYZ", "W05") == (None, UNKNOWN_SUB)
