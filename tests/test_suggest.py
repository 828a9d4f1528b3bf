"""Active learning: `chuishao suggest-labels` picks the messages worth labelling, writes a sheet, and the
filled sheet trains (`chuishao train --sheets`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, tiny_config
from typer.testing import CliRunner

from chuishao.analysis.suggest import _diverse, select, uncertainty
from chuishao.cli import app
from chuishao.io.records import InputRecord, read_records
from chuishao.models.classifier import ChuishaoClassifier
from chuishao.models.persistence import save_model
from chuishao.taxonomy import Taxonomy
from chuishao.training.data import read_labelled
from chuishao.training.sheet import SHEET_COLUMNS

runner = CliRunner()


@pytest.fixture(scope="module")
def half_model(tmp_path_factory) -> tuple[ChuishaoClassifier, Path]:
    """A model trained on every other fixture row; the rows it never saw make the pool."""
    data = read_labelled(FIXTURES / "labelled-mini.jsonl")
    part = data.take(list(range(0, len(data), 2)))
    model = ChuishaoClassifier(tiny_config(), Taxonomy.load())
    model.fit(part.texts, part.labels, titles=part.titles, subs=part.subs)
    labels, counts = np.unique(part.labels, return_counts=True)
    model.metadata["label_counts"] = dict(zip(labels.tolist(), counts.tolist(), strict=True))
    return model, save_model(model, tmp_path_factory.mktemp("models") / "half")


def pool_records() -> list[InputRecord]:
    unseen = list(read_records(FIXTURES / "labelled-mini.jsonl"))[1::2]
    return [*unseen, *read_records(FIXTURES / "sample-messages.jsonl")]


def write_pool(path: Path, extra: list[str] = ()) -> Path:
    lines = [json.dumps({"id": r.id, "title": r.title, "text": r.text}, ensure_ascii=False) for r in pool_records()]
    path.write_text("\n".join([*lines, *extra]) + "\n", encoding="utf-8")
    return path


def test_without_diversity_or_rarity_the_most_uncertain_messages_come_first(half_model):
    model, _ = half_model
    pool = pool_records()
    chosen = select(model, pool, 5, rare_weight=0.0, diversity=0.0)
    usable = [r for r in pool if r.error is None and model.preprocessor.problem(r.text, title=r.title) is None]
    assert 0 < len(usable) < len(pool)  # the fixture has rows that cannot be classified: never picked
    pool = usable
    proba = model.predict_proba([r.text for r in pool], titles=[r.title for r in pool])
    margin = uncertainty(proba, "margin")
    expected = sorted(margin, reverse=True)[:5]
    assert [p.uncertainty for p in chosen.picks] == pytest.approx(expected, abs=1e-4)
    assert [p.rank for p in chosen.picks] == [1, 2, 3, 4, 5]
    # the hint is the model's own top 3, best first
    first = next(i for i, r in enumerate(pool) if r.id == chosen.picks[0].id)
    assert chosen.picks[0].top[0][0] == model.classes_[int(proba[first].argmax())]
    assert chosen.picks[0].top[0][1] >= chosen.picks[0].top[1][1] >= chosen.picks[0].top[2][1]


def test_entropy_is_zero_when_sure_and_one_when_uniform():
    proba = np.array([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    assert uncertainty(proba, "entropy") == pytest.approx([0.0, 1.0], abs=1e-6)
    assert uncertainty(proba, "margin") == pytest.approx([0.0, 1.0])


def test_rare_topics_come_first(half_model):
    model, _ = half_model
    pool = pool_records()
    plain = select(model, pool, 6, rare_weight=0.0, diversity=0.0)
    # tell it W13 is very rare and everything else common: messages that may be W13 move up
    model.metadata["label_counts"] = {c: (1 if c == "W13" else 500) for c in model.classes_}
    try:
        rare_first = select(model, pool, 6, rare_weight=5.0, diversity=0.0)
    finally:
        model.metadata["label_counts"] = dict.fromkeys(model.classes_, 2)

    def w13_share(picks):
        return sum(dict(p.top).get("W13", 0.0) for p in picks)
    assert w13_share(rare_first.picks) > w13_share(plain.picks)
    assert rare_first.figures["rarity_from"] == "training label_counts"


def test_labelled_trained_duplicate_and_unreadable_rows_are_skipped_and_counted(half_model):
    model, _ = half_model
    pool = pool_records()
    trained_text = read_labelled(FIXTURES / "labelled-mini.jsonl").texts[0]  # a row the model learned from
    extra = [InputRecord(row=90, id="copy", text=pool[0].text, title=None),  # the same text as pool row 1
             InputRecord(row=91, id="bad", error="pool.jsonl line 91: broken JSON"),
             InputRecord(row=92, id="trained", text=trained_text)]
    labelled = [pool[1]]
    unreadable_before = sum(r.error is not None for r in pool)  # the fixture has a row whose text is null
    chosen = select(model, [*pool, *extra], 100, labelled=labelled)
    ids = [p.id for p in chosen.picks]
    assert "bad" not in ids and "trained" not in ids and pool[1].id not in ids
    assert not ({"copy", pool[0].id} <= set(ids))  # one of two identical texts at most
    f = chosen.figures
    assert (f["unreadable"], f["already_labelled"], f["duplicates"], f["trained_on"]) == (unreadable_before + 1, 1, 1, 1)
    assert f["pool_rows"] == len(pool) + 3 and len(set(ids)) == len(ids) == f["picked"]
    # every row is accounted for: picked or counted as skipped
    skipped = sum(f.get(k, 0) for k in ("unreadable", "not_classifiable", "already_labelled", "duplicates", "trained_on",
                                        "near_copies"))
    assert skipped + f["picked"] == f["pool_rows"]


def test_diversity_prefers_unlike_messages():
    texts = ["楼下烧烤店油烟很大晚上还吵", "楼下烧烤店油烟很大晚上还吵闹", "楼下烧烤店油烟很大晚上很吵", "小区停水三天了没人管"]
    scores = np.array([1.0, 0.99, 0.98, 0.5])
    assert _diverse(texts, scores, 2, diversity=0.0) == [0, 1]
    assert _diverse(texts, scores, 2, diversity=0.7) == [0, 3]


def test_suggest_labels_writes_an_xlsx_sheet_with_drop_downs(half_model, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    _, model_dir = half_model
    pool = write_pool(tmp_path / "pool.jsonl")
    out = tmp_path / "sheet.xlsx"
    r = runner.invoke(app, ["suggest-labels", "--pool", str(pool), "-n", "8", "-o", str(out), "--model", str(model_dir),
                            "--hide-hints"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["picked"] == 8 and "8 of" in r.stderr
    wb = openpyxl.load_workbook(out)
    ws, codes = wb["labels"], wb["codes"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0] == SHEET_COLUMNS and len(rows) == 9
    pool_ids = {rec.id for rec in pool_records()}
    assert all(row[0] in pool_ids and row[4] is None and row[5] is None for row in rows[1:])
    assert all(row[3].count("|") == 2 for row in rows[1:])  # three suggestions
    assert ws.column_dimensions["D"].hidden
    tax = Taxonomy.load()
    listed = [row[0] for row in codes.iter_rows(min_row=2, values_only=True) if row[0]]
    assert listed == tax.labels
    assert {row[0]: row[1] for row in codes.iter_rows(min_row=2, values_only=True) if row[0]}["W05"] == tax.name_of("W05")
    validations = {str(dv.sqref): dv.formula1 for dv in ws.data_validations.dataValidation}
    assert validations["E2:E9"] == f"=codes!$A$2:$A${len(tax.labels) + 1}"
    assert validations["F2:F9"] == f"=codes!$C$2:$C${len(tax.sub_codes) + 1}"


def test_a_csv_sheet_has_a_bom_for_excel(half_model, tmp_path):
    _, model_dir = half_model
    out = tmp_path / "sheet.csv"
    r = runner.invoke(app, ["suggest-labels", "--pool", str(write_pool(tmp_path / "pool.jsonl")), "-n", "3", "-o", str(out),
                            "--model", str(model_dir), "--no-hints"])
    assert r.exit_code == 0, r.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert tuple(rows[0]) == SHEET_COLUMNS and len(rows) == 4 and all(row[3] == "" for row in rows[1:])


def test_unreadable_pool_rows_are_said_and_bad_options_refused(half_model, tmp_path):
    _, model_dir = half_model
    pool = write_pool(tmp_path / "pool.jsonl", extra=["{broken"])
    r = runner.invoke(app, ["suggest-labels", "--pool", str(pool), "-n", "3", "-o", str(tmp_path / "s.csv"),
                            "-m", str(model_dir)])
    before = sum(rec.error is not None for rec in pool_records())
    assert r.exit_code == 0 and "unreadable pool row" in r.stderr and json.loads(r.stdout)["unreadable"] == before + 1
    assert "broken JSON" in r.stderr
    bad = runner.invoke(app, ["suggest-labels", "--pool", str(pool), "-o", str(tmp_path / "s.txt"), "-m", str(model_dir)])
    assert bad.exit_code == 2 and ".csv or .xlsx" in bad.stderr
    missing = runner.invoke(app, ["suggest-labels", "--pool", str(tmp_path / "none.jsonl"), "-o", str(tmp_path / "s.csv")])
    assert missing.exit_code == 2 and "not found" in missing.stderr


def _fill(path: Path, labels: dict[int, tuple[str, str | None]]) -> None:
    import openpyxl

    wb = openpyxl.load_workbook(path)
    ws = wb["labels"]
    for row, (label, sub) in labels.items():
        ws.cell(row=row + 1, column=5, value=label)
        ws.cell(row=row + 1, column=6, value=sub)
    wb.save(path)


def test_a_filled_sheet_trains_and_empty_labels_are_skipped_with_a_count(half_model, tmp_path):
    pytest.importorskip("openpyxl")
    _, model_dir = half_model
    sheet = tmp_path / "sheet.xlsx"
    r = runner.invoke(app, ["suggest-labels", "--pool", str(write_pool(tmp_path / "pool.jsonl")), "-n", "6", "-o", str(sheet),
                            "-m", str(model_dir)])
    assert r.exit_code == 0, r.output
    _fill(sheet, {1: ("W05", "W05a"), 2: ("other", None), 3: ("w13", None)})  # codes typed in lower case are codes
    # the rows the model was trained on (the pool is the other rows): no id is in both
    lines = (FIXTURES / "labelled-mini.jsonl").read_text(encoding="utf-8").splitlines()
    (tmp_path / "half.jsonl").write_text("\n".join(lines[::2]) + "\n", encoding="utf-8")
    trained = runner.invoke(app, ["train", str(tmp_path / "half.jsonl"), "--sheets", str(sheet), "-o",
                                  str(tmp_path / "model"), "--features.min_df", "1", "--classifier.calibration_folds", "2"])
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.stdout)
    assert summary["training_rows"] == 17 + 3
    assert summary["dropped_rows"]["unlabelled_in_sheets"] == 3
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text(encoding="utf-8"))
    assert str(sheet) in manifest["training_files"]
    assert manifest["label_counts"] == {k: v for k, v in manifest["label_counts"].items() if v}  # counts of the labels seen
    assert sum(manifest["label_counts"].values()) == 20 and "OTHER" in manifest["label_counts"]


def test_unknown_codes_in_a_sheet_are_a_clear_error(tmp_path):
    sheet = tmp_path / "sheet.csv"
    with sheet.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(SHEET_COLUMNS)
        w.writerow(["a1", "", "楼下烧烤店油烟很大，晚上还吵", "", "W99", "", ""])
        w.writerow(["a2", "", "小区停水三天了没人管", "", "W05", "W14a", ""])
        w.writerow(["a3", "", "路灯坏了一个月", "", "", "W01a", ""])
        w.writerow(["a4", "", "路灯坏了两个月", "", "", "", "skip"])
    r = runner.invoke(app, ["train", str(FIXTURES / "labelled-mini.jsonl"), "--sheets", str(sheet), "-o", str(tmp_path / "m")])
    assert r.exit_code == 2
    assert "3 sheet rows cannot be used" in r.stderr
    assert "row 1: unknown code 'W99'" in r.stderr and "row 2: sub-problem 'W14a' is not one of W05's" in r.stderr
    assert "row 3: sub-problem 'W01a' without a label" in r.stderr and "Known codes: W01, W02" in r.stderr
    assert not (tmp_path / "m").exists()
