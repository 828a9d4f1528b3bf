import csv
import json
from pathlib import Path

import pytest
from conftest import FIXTURES
from typer.testing import CliRunner

from chuishao.cli import app

runner = CliRunner()
MINI = FIXTURES / "labelled-mini.jsonl"


@pytest.fixture(scope="module")
def tiny_config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text("features: {min_df: 1, max_features: null}\nclassifier: {calibration_folds: 2}\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory, tiny_config_file) -> Path:
    out = tmp_path_factory.mktemp("cli") / "model"
    result = runner.invoke(app, ["train", str(MINI), "-o", str(out), "--config", str(tiny_config_file)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["training_rows"] == 34 and "review_threshold" in summary
    return out


def test_test_verb_prints_figures_and_writes_report(trained_dir, tmp_path):
    result = runner.invoke(app, ["test", str(trained_dir), str(MINI), "-o", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    for key in ("macro_f1", "accuracy", "top3_accuracy", "per_class"):
        assert key in figures
    assert figures["n"] == 34 and figures["per_class"]["W05"]["support"] == 5
    assert figures["accuracy"] > 0.9  # its own training data
    for name in ("report.md", "per_class.csv", "confusion.png", "metrics.json"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    assert (tmp_path / "rep" / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_predict_verb(trained_dir):
    result = runner.invoke(app, ["predict", "--model", str(trained_dir), "小区已经停水三天了，自来水公司电话打不通"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["topic"] == "W13" and answer["departments"]["lead"] == "水务局"


def test_predict_bad_text_exits_nonzero_with_reason(trained_dir):
    result = runner.invoke(app, ["predict", "--model", str(trained_dir), "   "])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"] == "empty text"


def test_tag_never_drops_a_row(trained_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    lines = [
        json.dumps({"id": "a", "text": "楼下烧烤店油烟很大"}, ensure_ascii=False),
        "{broken json",
        json.dumps({"id": "c", "title": "停水", "text": "小区停水三天"}, ensure_ascii=False),
        json.dumps({"id": "d", "body": "no text field"}),
        json.dumps({"id": "e", "text": ""}),
        json.dumps({"id": "f", "text": "Only English here, nothing to route"}),
        json.dumps({"id": "g", "text": 42}),
        json.dumps(["not", "an", "object"]),
    ]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["tag", str(src), "-o", str(out), "--model", str(trained_dir)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(lines)
    assert [r["id"] for r in rows] == ["a", "row-2", "c", "d", "e", "f", "g", "row-8"]
    assert [r["error"] is None for r in rows] == [True, False, True, False, False, False, False, False]
    assert "line 2" in rows[1]["error"] and "broken JSON" in rows[1]["error"]
    assert "'text'" in rows[3]["error"] and "empty text" in rows[4]["error"] and "not Chinese" in rows[5]["error"]
    for r in rows:
        assert set(r) >= {"id", "topic", "topic_name", "sub", "confidence", "needs_review", "top", "departments", "evidence",
                          "error"}


def test_tag_csv_and_missing_text_column(trained_dir, tmp_path):
    src = tmp_path / "in.csv"
    with src.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["编号", "内容"])
        w.writerow(["1", "物业公司不管事，电梯坏了一个月"])
        w.writerow(["2", "路口下水道堵塞，一下雨就积水"])
    out = tmp_path / "out.jsonl"
    ok = runner.invoke(app, ["tag", str(src), "-o", str(out), "--model", str(trained_dir),
                             "--id-field", "编号", "--text-field", "内容", "--title-field", ""])
    assert ok.exit_code == 0, ok.output
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["topic"]) for r in rows] == [("1", "W10"), ("2", "W13")]
    out2 = tmp_path / "out2.jsonl"
    bad = runner.invoke(app, ["tag", str(src), "-o", str(out2), "--model", str(trained_dir)])
    assert bad.exit_code == 2 and "no 'text' column" in bad.output
    assert not out2.exists() and not list(tmp_path.glob(".out2*"))


def test_missing_model_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["predict", "--model", str(tmp_path / "nope"), "小区停水"])
    assert result.exit_code == 2 and "model directory not found" in result.output


def test_labels_outside_the_taxonomy_suggest_taxonomy_none(tmp_path, tiny_config_file):
    src = tmp_path / "teddy.jsonl"
    rows = [("城乡建设", "小区物业不作为电梯坏了"), ("城乡建设", "楼上违建加盖"), ("教育文体", "孩子入学难"),
            ("教育文体", "学校收费不合理"), ("城乡建设", "小区停水三天"), ("教育文体", "幼儿园学位紧张")]
    src.write_text("\n".join(json.dumps({"text": t, "label": lab}, ensure_ascii=False) for lab, t in rows), encoding="utf-8")
    refused = runner.invoke(app, ["train", str(src), "-o", str(tmp_path / "m1")])
    assert refused.exit_code == 2 and "--taxonomy none" in refused.output and "城乡建设" in refused.output
    ok = runner.invoke(app, ["train", str(src), "-o", str(tmp_path / "m2"), "--taxonomy", "none",
                             "--config", str(tiny_config_file)])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["labels"] == ["城乡建设", "教育文体"]
    pred = runner.invoke(app, ["predict", "--model", str(tmp_path / "m2"), "孩子上学的学校收费问题"])
    answer = json.loads(pred.stdout)
    assert answer["topic"] == "教育文体" and answer["departments"]["lead"] is None and answer["sub"] is None


def test_predict_from_stdin_writes_one_json_line_per_input_line(trained_dir):
    for lines in (["楼下烧烤店油烟很大"], ["楼下烧烤店油烟很大", "物业不管电梯"]):
        result = runner.invoke(app, ["predict", "-m", str(trained_dir)], input="\n".join(lines) + "\n")
        assert result.exit_code == 0, result.output
        out = result.stdout.splitlines()
        assert len(out) == len(lines) and all(json.loads(line)["topic"] for line in out)


def test_mistakes_in_output_paths_and_encodings_are_refused_before_the_work(trained_dir, tmp_path):
    a_file = tmp_path / "afile"
    a_file.write_text("x", encoding="utf-8")
    result = runner.invoke(app, ["train", str(MINI), "-o", str(a_file)])
    assert result.exit_code == 2 and "is not a directory" in result.output
    result = runner.invoke(app, ["test", str(trained_dir), str(MINI), "-o", str(a_file)])
    assert result.exit_code == 2 and "is not a directory" in result.output
    result = runner.invoke(app, ["tag", str(MINI), "-o", str(tmp_path), "-m", str(trained_dir)])
    assert result.exit_code == 2 and "is a directory" in result.output
    result = runner.invoke(app, ["tag", str(MINI), "-o", str(tmp_path / "o.csv"), "-m", str(trained_dir),
                                 "--output-encoding", "bogus"])
    assert result.exit_code == 2 and "unknown --output-encoding" in result.output
    for out in ("o.jsonl", "o.parquet"):  # JSONL is UTF-8 by definition, Parquet binary: not silently ignored
        result = runner.invoke(app, ["tag", str(MINI), "-o", str(tmp_path / out), "-m", str(trained_dir),
                                     "--output-encoding", "gbk"])
        assert result.exit_code == 2 and "--output-encoding applies to CSV/TSV output only" in result.output
    result = runner.invoke(app, ["tag", str(MINI), "-o", str(tmp_path / "o.txt"), "-m", str(trained_dir)])
    assert result.exit_code == 2 and ".tsv" in result.output and ".ndjson" in result.output  # every type it reads
    result = runner.invoke(app, ["tag", str(MINI), "-o", str(tmp_path / "o.jsonl"), "-m", str(trained_dir),
                                 "--encoding", "bogus"])
    assert result.exit_code == 2 and "unknown encoding" in result.output
    assert not list(tmp_path.glob("o.*")) and not list(tmp_path.glob(".o.*"))


def test_excel_output_keeps_formula_like_ids_as_text_and_drops_control_characters(trained_dir, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    src = tmp_path / "in.jsonl"
    rows = [{"id": "=1+1", "text": "楼下烧烤店油烟很大"}, {"id": "a\x01b", "text": "物业不管电梯\x0b坏了"}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out.xlsx"
    result = runner.invoke(app, ["tag", str(src), "-o", str(out), "-m", str(trained_dir), "--keep-columns"])
    assert result.exit_code == 0, result.output
    sheet = openpyxl.load_workbook(out).active
    header = [c.value for c in sheet[1]]
    ids = [sheet.cell(row=r, column=header.index("id") + 1) for r in (2, 3)]
    assert [(c.value, c.data_type) for c in ids] == [("=1+1", "s"), ("a\ufffdb", "s")]
    assert sheet.cell(row=3, column=header.index("text") + 1).value == "物业不管电梯\ufffd坏了"


def test_macro_f1_counts_only_classes_the_data_has_or_the_model_predicts(trained_dir, tmp_path):
    rows = [json.loads(line) for line in MINI.read_text(encoding="utf-8").splitlines()]
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(rows[0], ensure_ascii=False) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["test", str(trained_dir), str(one)])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["accuracy"] == 1.0 and figures["macro_f1"] == 1.0  # not 1/16 for 15 absent classes


def test_training_on_a_single_label_is_a_clear_error(tmp_path):
    src = tmp_path / "one_label.jsonl"
    src.write_text("".join(json.dumps({"id": str(i), "text": "楼下烧烤店油烟很大", "label": "W06"}) + "\n" for i in range(5)),
                   encoding="utf-8")
    result = runner.invoke(app, ["train", str(src), "-o", str(tmp_path / "m")])
    assert result.exit_code == 2 and "at least two labels" in result.output and "one_label.jsonl" in result.output
    assert "np.str_" not in result.output


def test_characters_the_output_encoding_cannot_hold_are_counted_and_reported(trained_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a\U0001F600", "text": "楼下烧烤店油烟很大"}, ensure_ascii=False) + "\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["tag", str(src), "-o", str(out), "-m", str(trained_dir), "--output-encoding", "gbk"])
    assert result.exit_code == 0, result.output
    assert '"unwritable_characters": 1' in result.stderr and "became '?'" in result.stderr
    with out.open(encoding="gbk", newline="") as fh:
        assert next(csv.DictReader(fh))["id"] == "a?"


def test_predict_reads_gbk_from_stdin(trained_dir):
    result = runner.invoke(app, ["predict", "-m", str(trained_dir)], input="楼下烧烤店油烟很大\n".encode("gbk"))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["error"] is None


def test_a_bad_config_is_one_line_naming_each_bad_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("classifier:\n  C: abc\n  bogus: 1\n", encoding="utf-8")
    result = runner.invoke(app, ["train", str(MINI), "-o", str(tmp_path / "m"), "--config", str(bad)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "classifier.C:" in lines[0] and "classifier.bogus:" in lines[0] and "http" not in lines[0]


def test_training_data_without_any_usable_text_is_a_clear_error(tmp_path):
    src = tmp_path / "empty_texts.jsonl"
    src.write_text("".join(json.dumps({"id": str(i), "text": "  ", "label": lab}) + "\n"
                           for i, lab in enumerate(["W05", "W06", "OTHER"])), encoding="utf-8")
    result = runner.invoke(app, ["train", str(src), "-o", str(tmp_path / "m")])
    assert result.exit_code == 2 and "no row has a text the model can learn from" in result.output
    assert "empty_texts.jsonl" in result.output and "empty text" in result.output


def test_whole_number_labels_are_one_class_however_they_are_stored(tmp_path, tiny_config_file):
    # Excel and pandas keep numbers as floats: 1.0 in one row and 1 in another are the same class
    src = tmp_path / "numbered.jsonl"
    rows = [(1, "小区物业不作为电梯坏了"), (1.0, "楼上违建加盖"), (2, "孩子入学难"),
            (2.0, "学校收费不合理"), (1, "小区停水三天"), (2, "幼儿园学位紧张")]
    src.write_text("\n".join(json.dumps({"text": t, "label": lab}, ensure_ascii=False) for lab, t in rows), encoding="utf-8")
    result = runner.invoke(app, ["train", str(src), "-o", str(tmp_path / "m"), "--taxonomy", "none",
                                 "--config", str(tiny_config_file)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["labels"] == ["1", "2"]
    scored = runner.invoke(app, ["test", str(tmp_path / "m"), str(src)])
    assert scored.exit_code == 0, scored.output
    assert set(json.loads(scored.stdout)["per_class"]) <= {"1", "2"}


def test_a_damaged_utf8_line_on_stdin_is_an_error_not_mojibake_answered_with_confidence(trained_dir):
    good = "小区楼下烧烤店每天营业到凌晨，油烟很大。".encode()
    lines = good + b"\n" + good[:-2] + b"\n" + "楼下烧烤店油烟很大".encode("gbk") + b"\n"  # the middle one cut mid-character
    result = runner.invoke(app, ["predict", "--model", str(trained_dir)], input=lines)
    first, cut, gbk = (json.loads(line) for line in result.stdout.splitlines())
    assert first["error"] is None and gbk["error"] is None and gbk["topic"] == first["topic"]
    assert cut["topic"] is None and "line 2" in cut["error"] and "not valid UTF-8" in cut["error"]


def test_predict_and_tag_route_with_an_edited_taxonomy_file(trained_dir, tmp_path):
    import yaml

    from chuishao.resources import default_taxonomy_path

    raw = yaml.safe_load(default_taxonomy_path().read_text(encoding="utf-8"))
    for area in raw["areas"]:
        for topic in area["topics"]:
            topic["lead"] = f"{topic['code']}责任科室"
    city = tmp_path / "city.yaml"
    city.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    text = "楼下烧烤店油烟很大，晚上吵得睡不着"
    answer = json.loads(runner.invoke(app, ["predict", "--model", str(trained_dir), "--taxonomy", str(city), text]).stdout)
    assert answer["departments"]["lead"] == f"{answer['topic']}责任科室"
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"id": "a", "text": text}, ensure_ascii=False) + "\n", encoding="utf-8")
    tagged = runner.invoke(app, ["tag", str(src), "-o", str(out), "--model", str(trained_dir), "--taxonomy", str(city)])
    assert tagged.exit_code == 0, tagged.output
    assert json.loads(out.read_text(encoding="utf-8"))["departments"]["lead"] == answer["departments"]["lead"]
    raw["areas"][0]["topics"] = raw["areas"][0]["topics"][1:]  # a topic the model predicts is gone
    city.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    refused = runner.invoke(app, ["predict", "--model", str(trained_dir), "--taxonomy", str(city), text])
    assert refused.exit_code == 2 and "retrain" in refused.output


def test_places_train_and_test_cannot_write_are_refused_before_the_work(trained_dir, tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x", encoding="utf-8")
    trained = runner.invoke(app, ["train", str(MINI), "-o", str(a_file / "model")])
    assert trained.exit_code == 2 and "is a file" in trained.output and "Traceback" not in trained.output
    tested = runner.invoke(app, ["test", str(trained_dir), str(MINI), "-o", str(a_file / "report")])
    assert tested.exit_code == 2 and "is a file" in tested.output and tested.stdout == ""


def test_training_names_the_taxonomy_codes_it_had_no_example_of(tmp_path, tiny_config_file):
    from chuishao.taxonomy import Taxonomy

    result = runner.invoke(app, ["train", str(MINI), "-o", str(tmp_path / "m"), "--config", str(tiny_config_file)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in MINI.read_text(encoding="utf-8").splitlines() if line.strip()]
    seen = {r["label"] for r in rows} | {r.get("sub") for r in rows}
    tax = Taxonomy.load()
    expected = [c for t in tax.labels for c in (t, *tax.subs_of(t)) if c not in seen]
    assert expected and json.loads(result.stdout)["not_learned"] == expected
    assert f"no training examples for {expected[0]} ({tax.name_of(expected[0])})" in result.stderr


def test_spark_paths_keep_their_scheme_and_host(monkeypatch):
    from chuishao.batch.summary import TagSummary

    seen: dict[str, object] = {}

    def fake_tag_spark(input_path, output_path, *args, **kwargs):
        seen.update(input=input_path, output=output_path)
        return TagSummary()

    monkeypatch.setattr("chuishao.batch.spark.tag_spark", fake_tag_spark)
    result = runner.invoke(app, ["tag", "hdfs://namenode:8020/complaints/in.parquet", "-o", "s3a://bucket/tagged.parquet",
                                 "--engine", "spark"])
    assert result.exit_code == 0, result.output
    assert seen == {"input": "hdfs://namenode:8020/complaints/in.parquet", "output": "s3a://bucket/tagged.parquet"}


def test_spark_may_write_over_its_previous_output_folder(monkeypatch, tmp_path):
    from chuishao.batch.summary import TagSummary

    calls: list[str] = []
    monkeypatch.setattr("chuishao.batch.spark.tag_spark", lambda src, dst, *a, **k: calls.append(dst) or TagSummary())
    previous = tmp_path / "tagged.parquet"
    previous.mkdir()  # what a first Spark run leaves: a folder of part files
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "小区停水"}\n', encoding="utf-8")
    result = runner.invoke(app, ["tag", str(src), "-o", str(previous), "--engine", "spark"])
    assert result.exit_code == 0, result.output
    assert calls == [str(previous)]
    local = runner.invoke(app, ["tag", str(src), "-o", str(previous)])  # the local engine writes a file: refused
    assert local.exit_code == 2 and "is a directory" in local.output


@pytest.mark.parametrize("where", ["same", "parent", "inside"])
def test_spark_output_never_replaces_its_input_folder(monkeypatch, tmp_path, where):
    monkeypatch.setattr("chuishao.batch.spark.tag_spark", lambda *a, **k: pytest.fail("must be refused first"))
    folder = tmp_path / "msgs.parquet"
    folder.mkdir()
    (folder / "part-0.parquet").write_bytes(b"PAR1")
    src, dst = {"same": (folder, folder), "parent": (folder / "part-0.parquet", folder),
                "inside": (folder, folder / "tagged.parquet")}[where]
    result = runner.invoke(app, ["tag", str(src), "-o", str(dst), "--engine", "spark"])
    assert result.exit_code == 2 and "would overwrite the input" in result.output
    assert (folder / "part-0.parquet").read_bytes() == b"PAR1"


# ---- the config as the whole recipe (chuishao train --config, --KEY VALUE) ----------------------

def _ids_file(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def test_version():
    from chuishao.version import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"chuishao {__version__}"


def test_train_from_a_config_with_a_data_section_and_overrides(tmp_path):
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text("paths: {fixtures: null}\n"
                   "data: {train: ['${paths.fixtures}/labelled-mini.jsonl']}\n"
                   "features: {min_df: 1, max_features: null}\nclassifier: {calibration_folds: 2}\n", encoding="utf-8")
    out = tmp_path / "m"
    result = runner.invoke(app, ["train", "--config", str(cfg), "--paths.fixtures", str(FIXTURES), "-o", str(out),
                                 "--classifier.C", "1.0", "--features.char_ngrams", "1,4", "--seed", "3",
                                 "--features.max_df=0.9"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["training_rows"] == 34
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["training_files"] == [str(MINI)]
    recipe = manifest["config"]  # the whole recipe, data included; the variable keeps its name, not this machine's value
    assert recipe["data"]["train"] == ["${paths.fixtures}/labelled-mini.jsonl"] and recipe["paths"] == {"fixtures": None}
    assert recipe["classifier"]["C"] == 1.0 and recipe["features"]["char_ngrams"] == [1, 4] and recipe["seed"] == 3
    assert recipe["features"]["max_df"] == 0.9 and recipe["features"]["min_df"] == 1
    unset = runner.invoke(app, ["train", "--config", str(cfg), "-o", str(tmp_path / "m2")])
    assert unset.exit_code == 2 and "${paths.fixtures} is not set; give --paths.fixtures DIR" in unset.output


def test_the_old_data_flags_add_to_the_configs_lists_and_data_keys_replace_them(tmp_path, tiny_config_file):
    rows = [json.loads(line) for line in MINI.read_text(encoding="utf-8").splitlines() if line.strip()]
    first, second = _ids_file(tmp_path / "held1.jsonl", rows[:3]), _ids_file(tmp_path / "held2.jsonl", rows[3:5])
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text(tiny_config_file.read_text(encoding="utf-8") + f"data: {{train: ['{MINI}'], exclude: ['{first}']}}\n",
                   encoding="utf-8")

    def dropped(*args: str) -> tuple[dict[str, int], list[str]]:
        out = tmp_path / f"m{len(list(tmp_path.iterdir()))}"
        result = runner.invoke(app, ["train", "--config", str(cfg), "-o", str(out), *args])
        assert result.exit_code == 0, result.output
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        return json.loads(result.stdout)["dropped_rows"], manifest["config"]["data"]["exclude"]

    assert dropped() == ({"held_out": 3, "repeated": 0}, [str(first)])
    assert dropped("--exclude", str(second)) == ({"held_out": 5, "repeated": 0}, [str(first), str(second)])  # as EXTRA=...
    assert dropped("--data.exclude", str(second)) == ({"held_out": 2, "repeated": 0}, [str(second)])
    assert dropped(str(MINI)) == ({"held_out": 6, "repeated": 31}, [str(first)])  # DATA adds to data.train: MINI twice


def test_a_held_out_file_may_list_ids_only(tmp_path, tiny_config_file):
    """A city's held-out list is often ids alone (JSONL or CSV): its rows leave training; a file with neither
    the text nor the id column is still refused in one line."""
    rows = [json.loads(line) for line in MINI.read_text(encoding="utf-8").splitlines() if line.strip()]
    ids_jsonl = tmp_path / "held.jsonl"
    ids_jsonl.write_text("".join(json.dumps({"id": r["id"]}) + "\n" for r in rows[:2]), encoding="utf-8")
    ids_csv = tmp_path / "held.csv"
    ids_csv.write_text("id\n" + "".join(r["id"] + "\n" for r in rows[2:5]), encoding="utf-8")
    result = runner.invoke(app, ["train", str(MINI), "--config", str(tiny_config_file), "--exclude", str(ids_jsonl),
                                 "--exclude", str(ids_csv), "-o", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dropped_rows"]["held_out"] == 5
    neither = tmp_path / "neither.csv"
    neither.write_text("key\nm000\n", encoding="utf-8")
    refused = runner.invoke(app, ["train", str(MINI), "--config", str(tiny_config_file), "--exclude", str(neither),
                                  "-o", str(tmp_path / "m2")])
    assert refused.exit_code != 0 and "no 'text' column" in refused.output and "--id-field" in refused.output


def test_train_refuses_a_bad_key_or_value_in_one_line(tmp_path):
    for args, expected in [
        (["--classifier.c", "1"], "unknown config key classifier.c (did you mean classifier.C"),
        (["--featurs.min_df", "1"], "did you mean features.min_df"),
        (["--text.segmenter", "pkuseg"], "text.segmenter: Input should be 'auto', 'rjieba' or 'jieba' (got 'pkuseg')"),
        (["--features.char_ngrams", "3,1"], "features.char_ngrams: needs 1 <= lo <= hi <= 10, got 3,1"),
        (["--classifier.class_weight", "equal"], "classifier.class_weight: Input should be 'balanced'"),
        (["--features.min_df", "1", "--paths.shard"], "unknown config key paths.shard (did you mean paths.shared"),
        (["--features.min_df", "1", "--paths.city"], "unknown config key paths.city"),
        (["--features.mindf"], "unknown config key features.mindf (did you mean features.min_df"),
    ]:
        result = runner.invoke(app, ["train", str(MINI), "-o", str(tmp_path / "m"), *args])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and expected in lines[0], (args, result.output)
    assert not (tmp_path / "m").exists()


def test_train_help_lists_the_config_keys():
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0
    for option in ("--classifier.C", "--features.char_ngrams", "LO,HI", "auto|rjieba|jieba", "balanced|null",
                   "--data.exclude", "--paths.shared", "--seed", "--corpus", "--extra-data", "--config"):
        assert option in result.stdout, option


def test_config_show_writes_a_config_that_reads_back(tmp_path):
    from chuishao.config import ChuishaoConfig

    shown = runner.invoke(app, ["config", "show", "--features.char_ngrams", "1,4", "--data.train", "a.jsonl"])
    assert shown.exit_code == 0, shown.output
    path = tmp_path / "c.yaml"
    path.write_text(shown.stdout, encoding="utf-8")
    cfg = ChuishaoConfig.load(path)
    assert cfg.features.char_ngrams == (1, 4) and cfg.data.train == ["a.jsonl"] and cfg.classifier.C == 0.5
    default = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"
    again = runner.invoke(app, ["config", "show", "--config", str(default)])
    assert again.stdout == default.read_text(encoding="utf-8")  # what make config writes
    resolved = runner.invoke(app, ["config", "show", "--config", str(default), "--resolve", "--paths.shared", "/srv/d"])
    assert "    - /srv/d/whistle/train.jsonl" in resolved.stdout


def test_a_missing_title_or_id_column_is_said_once_for_tag_test_and_train(trained_dir, tmp_path, tiny_config_file):
    import csv

    rows = [json.loads(line) for line in MINI.read_text(encoding="utf-8").splitlines()]
    commands = {"tag": ["-o", str(tmp_path / "out.csv"), "--model", str(trained_dir)],
                "test": ["-o", str(tmp_path / "rep")], "train": ["-o", str(tmp_path / "m"), "--config", str(tiny_config_file)]}
    for command, rest in commands.items():
        src = tmp_path / f"{command}.csv"  # the title and id under other names, as exported from a hotline system
        with src.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["编号", "标题", "text", "label"])
            writer.writerows([r["id"], r["title"], r["text"], r["label"]] for r in rows)
        args = [command, str(trained_dir), str(src), *rest] if command == "test" else [command, str(src), *rest]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        for column in ("'title'", "'id'"):
            assert result.stderr.count(f"no {column} column") == 1, (command, result.stderr)
        assert "(columns: 编号, 标题, text, label)" in result.stderr and "--title-field" in result.stderr
    named = runner.invoke(app, ["tag", str(tmp_path / "tag.csv"), "-o", str(tmp_path / "o2.jsonl"), "--model",
                                str(trained_dir), "--title-field", "标题", "--id-field", "编号"])
    assert named.exit_code == 0 and "warning" not in named.stderr


def test_a_relabel_file_replaces_the_labels_of_the_rows_it_names(tmp_path, tiny_config_file):
    relabel = tmp_path / "relabel.csv"
    relabel.write_text("id,label,sub\nm000,W05,W05a\nm001,OTHER,\n", encoding="utf-8")  # m000 keeps its topic
    out = tmp_path / "m"
    result = runner.invoke(app, ["train", str(MINI), "--config", str(tiny_config_file), "--data.relabel", str(relabel),
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["relabelled_rows"] == 1 and summary["training_rows"] == 34
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["data"]["relabel"] == [str(relabel)] and str(relabel) in manifest["training_files"]
    plain = tmp_path / "plain"
    assert runner.invoke(app, ["train", str(MINI), "--config", str(tiny_config_file), "-o", str(plain)]).exit_code == 0
    assert json.loads((plain / "manifest.json").read_text(encoding="utf-8"))["data_fingerprint"] != manifest["data_fingerprint"]

    unknown = tmp_path / "unknown.csv"
    unknown.write_text("id,label,sub\nnot-a-row,W05,W05a\n", encoding="utf-8")
    refused = runner.invoke(app, ["train", str(MINI), "--config", str(tiny_config_file), "--data.relabel", str(unknown),
                                  "-o", str(tmp_path / "m2")])
    assert refused.exit_code == 2 and "1 ids are not in the training data (e.g. not-a-row)" in refused.output
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label,sub\nm000,W99,\n", encoding="utf-8")
    refused = runner.invoke(app, ["train", str(MINI), "--config", str(tiny_config_file), "--data.relabel", str(bad),
                                  "-o", str(tmp_path / "m3")])
    assert refused.exit_code == 2 and "W99" in refused.output


def test_a_relabel_file_may_name_held_out_rows(tmp_path, tiny_config_file):
    held = _ids_file(tmp_path / "held.jsonl", [{"id": "m001", "text": "held out"}])
    relabel = tmp_path / "relabel.csv"
    relabel.write_text("id,label,sub\nm000,W05,W05a\nm001,OTHER,\n", encoding="utf-8")
    result = runner.invoke(app, ["train", str(MINI), "--config", str(tiny_config_file), "--data.relabel", str(relabel),
                                 "--exclude", str(held), "-o", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["training_rows"] == 33 and summary["relabelled_rows"] == 0 and summary["dropped_rows"]["held_out"] == 1


def test_transformer_commands_without_the_extra_name_it(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    result = runner.invoke(app, ["transformer", "finetune", str(tmp_path), str(MINI), str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "needs torch: pip install '.[transformer]'" in result.output


def test_a_cascade_recipe_without_the_extra_or_an_encoder_says_what_is_missing(tmp_path, monkeypatch):
    import importlib.util

    result = runner.invoke(app, ["train", str(MINI), "-o", str(tmp_path / "m"), "--model-type", "cascade"])
    assert result.exit_code != 0 and "transformer.base" in result.output
    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "config.json").write_text("{}", encoding="utf-8")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    result = runner.invoke(app, ["train", str(MINI), "-o", str(tmp_path / "m"), "--model-type", "cascade",
                                 "--base", str(tmp_path / "enc")])
    assert result.exit_code != 0 and "model_type cascade needs torch" in result.output
    assert not (tmp_path / "m").exists()


def test_a_cascade_without_onnxruntime_is_a_clear_load_error(tmp_path, monkeypatch):
    import builtins

    from chuishao.errors import ModelLoadError
    from chuishao.models.onnx_encoder import OnnxClassifier

    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'", name="onnxruntime")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    with pytest.raises(ModelLoadError, match=r"needs onnxruntime: pip install '\.\[transformer\]'"):
        OnnxClassifier.load(tmp_path)


def test_tag_says_what_is_wrong_with_the_paths_before_tagging(tiny_model_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "1", "text": "路口下水道堵塞，一下雨就积水"}\n', encoding="utf-8")
    (tmp_path / "folder").mkdir()
    for args, said in [((str(tmp_path / "folder"), "-o", str(tmp_path / "x.jsonl")), "folder: is a directory; give a file"),
                       ((str(src), "-o", str(src / "x.jsonl")), f"{src} is a file, not a folder"),
                       ((str(src), "-o", "/proc/x.jsonl"), "cannot write in /proc")]:
        r = runner.invoke(app, ["tag", *args, "--model", str(tiny_model_dir)])
        assert r.exit_code == 2 and said in r.output and "Errno" not in r.output, r.output
    r = runner.invoke(app, ["tag", str(src), "-o", str(tmp_path / "new" / "deeper" / "x.jsonl"), "--model", str(tiny_model_dir)])
    assert r.exit_code == 0 and (tmp_path / "new" / "deeper" / "x.jsonl").is_file(), r.output
