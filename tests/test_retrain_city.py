"""Retraining on a city's own data without ../shared: import with a mapping, check, train on data/fixtures
and the bundled taxonomy only, and what such a model can and cannot answer."""

from __future__ import annotations

import csv
import json

from conftest import FIXTURES
from typer.testing import CliRunner

from chuishao.analysis.gates import check_promotion
from chuishao.cli import app
from chuishao.resources import default_model_dir

runner = CliRunner()
# a city's own category codes for the fixture's topics
CITY_CODE = {"W05": "0301", "W06": "0302", "W01": "0101", "W09": "0501", "W10": "0601", "W13": "0701", "OTHER": "9900"}


def test_a_city_retrains_from_its_own_data_without_the_shared_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ../shared beside this folder
    rows = [json.loads(line) for line in (FIXTURES / "labelled-mini.jsonl").read_text(encoding="utf-8").splitlines()]
    with (tmp_path / "city.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["工单号", "标题", "内容", "类别"])
        for r in rows:
            w.writerow([r["id"], r["title"], r["text"], CITY_CODE[r["label"]]])
    (tmp_path / "city-map.yaml").write_text(
        "'0301': W05\n'0302': 污染排放与油烟\n'0101': W01\n'0501': W09\n'0601': W10\n'0701': W13\n'9900': OTHER\n",
        encoding="utf-8")
    imported = runner.invoke(app, ["import", "city.csv", "-o", "city.jsonl", "--mapping", "city-map.yaml", "--id-field", "工单号",
                                   "--title-field", "标题", "--text-field", "内容", "--label-field", "类别"])
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout)["written"] == 34
    checked = runner.invoke(app, ["check", "city.jsonl"])
    assert checked.exit_code == 0 and "not_learned" in checked.stderr  # codes without an example are said

    # no --config: the code's defaults, whose data section names nothing in ../shared
    trained = runner.invoke(app, ["train", "--data.train", "city.jsonl", "-o", "model", "--features.min_df", "1",
                                  "--classifier.calibration_folds", "2"])
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.stdout)
    assert summary["training_rows"] == 34 and summary["labels"] == sorted(CITY_CODE)
    # topics without an example, and every sub-problem: the city's data has no sub-problem codes
    assert "W14" in summary["not_learned"] and "W05" not in summary["not_learned"] and "W05a" in summary["not_learned"]
    assert "no training examples for" in trained.stderr
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["training_files"] == ["city.jsonl"] and manifest["config"]["data"]["corpus"] is None

    answer = runner.invoke(app, ["predict", "-m", "model", "楼下广场舞音响声音特别大，晚上吵得睡不着"])
    assert answer.exit_code == 0 and json.loads(answer.stdout)["topic"] == "W05"
    # it can never answer a code it had no example of; the gate refuses it over the bundled model
    report = check_promotion(default_model_dir(), tmp_path / "model")
    assert not report.passed and [c.name for c in report.refusals] == ["codes"]
