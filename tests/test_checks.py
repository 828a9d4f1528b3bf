"""chuishao check and the leakage check train runs: exact and near copies, conflicts, rare classes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FIXTURES
from typer.testing import CliRunner

from chuishao.analysis.checks import Rows, check_files, jaccard, matching_form, near_pairs, run_checks, shingles
from chuishao.cli import app
from chuishao.taxonomy import Taxonomy

runner = CliRunner()
MINI = FIXTURES / "labelled-mini.jsonl"
TINY = "features: {min_df: 1, max_features: null}\nclassifier: {calibration_folds: 2}\n"


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def leaky(tmp_path) -> tuple[Path, Path]:
    """A test file with: an exact copy of a training text (re-punctuated, full-width, spaced), a near
    copy (one character changed in a long text), a shared id, and one row that is new."""
    train = rows_of(MINI)
    long = dict(train[5], text="".join(r["text"] for r in train[5:9]))  # long enough that an edit keeps Jaccard >= 0.9
    train[5] = long
    exact = dict(train[0], id="t-exact", text=" ".join(train[0]["text"]).replace("，", ",") + "！！")
    near_text = long["text"][:20] + "某" + long["text"][21:]
    near = dict(long, id="t-near", text=near_text)
    shared = dict(train[10], text="完全不同的一条留言：路灯坏了三个月没人修，晚上一片漆黑。")
    new = {"id": "t-new", "title": "", "text": "小区门口的垃圾桶满了好几天没人清运，臭气熏天。", "label": "W08"}
    return write(tmp_path / "train.jsonl", train), write(tmp_path / "test.jsonl", [exact, near, shared, new])


def test_matching_form_and_shingles():
    assert matching_form(" 楼下 烧烤，油烟！ＡＢ12 ") == "楼下烧烤油烟ab12"
    assert matching_form("，。！ ") == ""
    a, b = shingles("一二三四五六七八九十"), shingles("一二三四五六七八九十")
    assert jaccard(a, b) == 1.0 and len(a) == 6
    assert len(shingles("短")) == 1 and len(shingles("")) == 0


def test_near_pairs_find_a_near_copy_and_verify_the_jaccard():
    base = "我家楼下新开了一家烧烤店每天晚上在人行道上摆桌子烤串油烟直接飘进窗户一直闹到凌晨两点希望有关部门管一管" * 2
    other = base[:30] + "某" + base[31:]
    unrelated = "小区停水从昨天早上开始到现在也没有来水物业说不清楚原因家里老人孩子生活很不方便" * 2
    pairs = near_pairs([base, other, unrelated], [0, 1, 1], 0.9)
    assert [(a, b) for a, b, _ in pairs] == [(0, 1)]
    assert pairs[0][2] == round(jaccard(shingles(base), shingles(other)), 4) >= 0.9


def test_check_finds_leakage_conflicts_empty_texts_and_rare_classes(leaky, tmp_path):
    train_path, test_path = leaky
    rows = rows_of(train_path)
    rows.append(dict(rows[1], id="dup-conflict", label="W06", sub=None))  # the same text, another label
    rows.append({"id": "blank", "title": "", "text": "  。", "label": "OTHER"})
    write(train_path, rows)
    report = check_files([train_path], [test_path], taxonomy=Taxonomy.load())
    f = report.figures
    assert (f["exact_leaks"], f["near_leaks"], f["shared_ids"]) == (1, 1, 1)
    assert f["leaked_training_rows"] == 3 and f["conflicting_texts"] == 1 and f["empty_texts"] == 1
    assert not report.passed
    assert any("fewer than 5" in w and "W01 (4)" in w and "W09c (1)" in w for w in report.warnings)
    assert "W14a" in report.details["not_learned"]  # type: ignore[operator]
    dist = {d["label"]: d for d in report.details["distribution"]}  # type: ignore[union-attr]
    assert set(dist) >= set(Taxonomy.load().labels) and dist["W08"]["test"] == 1
    clean = check_files([MINI], taxonomy=Taxonomy.load())
    assert clean.passed and clean.figures["test_rows"] == 0


def test_check_verb_reports_on_stderr_json_and_file_and_exits_1_on_problems(leaky, tmp_path):
    train_path, test_path = leaky
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["check", str(train_path), "--test", str(test_path), "-o", str(out), "--min-examples", "2"])
    assert result.exit_code == 1, result.output
    assert "leakage: 1 training rows have the same text as a test row" in result.stderr
    assert "near copies (Jaccard >= 0.9)" in result.stderr and "FAILED" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["passed"] is False and summary["near_leaks"] == 1
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert saved["exact_leaks"] == 1 and saved["details"]["near_leaks"][0]["test"]["id"] == "t-near"
    ok = runner.invoke(app, ["check", str(MINI), "--json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["passed"] is True
    bad = runner.invoke(app, ["check", str(tmp_path / "none.jsonl")])
    assert bad.exit_code == 2 and "input file not found" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_unreadable_and_unlabelled_rows_are_problems_not_dropped(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "text": "楼下噪音很大", "label": "W05"}\n{broken\n{"id": "c", "text": "路灯坏了"}\n',
                    encoding="utf-8")
    report = check_files([path], taxonomy=Taxonomy.load())
    assert not report.passed and report.figures["unreadable_rows"] == 1
    assert any("without a label" in p and "d.jsonl line 3" in p for p in report.problems)  # as an editor numbers it


def test_repeated_ids_are_said_as_train_will_treat_them(tmp_path):
    rows = [{"id": "a", "text": "楼下装修电钻声从早响到晚", "label": "W05"},
            {"id": "b", "text": "小区路灯坏了好几盏", "label": "W01"},
            {"id": "a", "text": "楼下装修电钻声从早响到晚", "label": "W06"},  # the same id, another label
            {"id": "b", "text": "小区路灯坏了一个多月", "label": "W01"},  # the same id and label, another text
            {"id": "c", "text": "垃圾桶满了没人清理", "label": "W08"},
            {"id": "c", "text": "垃圾桶满了没人清理", "label": "W08"}]  # a plain repeat: trained once, not said
    report = check_files([write(tmp_path / "d.jsonl", rows)], taxonomy=Taxonomy.load(), min_examples=1)
    assert (report.figures["ids_with_two_labels"], report.figures["ids_with_two_texts"]) == (1, 1)
    problem = next(p for p in report.problems if "message ids" in p)
    assert "1 message ids come with two different labels, which chuishao train refuses" in problem
    assert "id a: d.jsonl line 1 W05 vs d.jsonl line 3 W06" in problem
    warning = next(w for w in report.warnings if "message ids" in w)
    assert "keeps the first row of each and drops the others" in warning and "id b: d.jsonl line 2, d.jsonl line 4" in warning
    assert [r["where"] for r in report.details["ids_with_two_texts"][0]] == ["d.jsonl line 2", "d.jsonl line 4"]  # type: ignore[index]
    result = runner.invoke(app, ["check", str(tmp_path / "d.jsonl"), "--min-examples", "1"])
    assert result.exit_code == 1 and "problem: 1 message ids come with two different labels" in result.stderr
    assert "warning: 1 message ids come with different texts" in result.stderr


def test_an_unknown_label_of_spaces_is_shown_quoted(tmp_path):
    rows = [{"id": "a", "text": "楼下装修电钻声从早响到晚", "label": "  "}, {"id": "b", "text": "路灯坏了", "label": "W01"}]
    report = check_files([write(tmp_path / "d.jsonl", rows)], taxonomy=Taxonomy.load())
    assert any("labels not in taxonomy" in p and p.endswith(": '  ' (1)") for p in report.problems), report.problems


def test_spreadsheet_rows_are_named_as_excel_numbers_them(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["id", "text", "label"])
    ws.append(["a", "楼下装修电钻声从早响到晚", "W05"])
    ws.append(["b", "路灯坏了", None])  # Excel row 3
    wb.save(tmp_path / "d.xlsx")
    report = check_files([tmp_path / "d.xlsx"], taxonomy=Taxonomy.load())
    assert any("without a label (e.g. d.xlsx row 3)" in p for p in report.problems), report.problems


def test_train_refuses_leakage_unless_told_to_drop_or_allow_it(leaky, tmp_path):
    train_path, test_path = leaky
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY, encoding="utf-8")
    base = ["train", str(train_path), "--config", str(cfg), "--exclude", str(test_path)]
    refused = runner.invoke(app, [*base, "-o", str(tmp_path / "m1")])
    assert refused.exit_code == 2 and "leak into the held-out data" in refused.stderr
    assert "--allow-leakage" in refused.stderr and not (tmp_path / "m1").exists()
    dropped = runner.invoke(app, [*base, "-o", str(tmp_path / "m2"), "--data.leakage", "drop"])
    assert dropped.exit_code == 0, dropped.output
    summary = json.loads(dropped.stdout)
    # the shared id is held out as before; the exact and the near copy are left out as leaked
    assert summary["dropped_rows"] == {"held_out": 1, "repeated": 0, "leaked": 2} and summary["training_rows"] == 31
    manifest = json.loads((tmp_path / "m2" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["data_check"]["leaked_training_rows"] == 2 and manifest["data_check"]["leakage_policy"] == "drop"
    allowed = runner.invoke(app, [*base, "-o", str(tmp_path / "m3"), "--allow-leakage"])
    assert allowed.exit_code == 0 and "warning: training on 2 rows that leak" in allowed.stderr
    assert json.loads(allowed.stdout)["training_rows"] == 33


def test_rows_from_a_labelled_set_and_unlabelled_held_out_rows_do_not_conflict():
    train = Rows()
    train._add("a", "1", "W05", None, "楼下广场舞噪音太大")
    test = Rows()
    test._add("b", "2", "", None, "楼下广场舞噪音太大！")
    report = run_checks(train, test, Taxonomy.load())
    assert report.figures["conflicting_texts"] == 0 and report.figures["exact_leaks"] == 1


@pytest.mark.shared
def test_check_on_the_real_whistle_split(shared_data):
    report = check_files([shared_data / "whistle" / "train.jsonl"], [shared_data / "whistle" / "test.jsonl"],
                         taxonomy=Taxonomy.load())
    f = report.figures
    assert (f["train_rows"], f["test_rows"]) == (5219, 1268)
    assert (f["exact_leaks"], f["near_leaks"], f["shared_ids"], f["conflicting_texts"]) == (3, 9, 0, 1)
