"""`chuishao test`: the training-row overlap check and the self-contained report.html."""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES
from typer.testing import CliRunner

from chuishao.analysis.report_html import coverage_curve, write_html_report
from chuishao.cli import app
from chuishao.models.persistence import load_model, save_model
from chuishao.pipeline.rowprint import match_text, print_set, seen
from chuishao.training.data import read_labelled
from chuishao.training.evaluate import cjk_family, evaluate

MINI = FIXTURES / "labelled-mini.jsonl"
runner = CliRunner()


# ---- the prints of the training rows ------------------------------------------------------------
def test_prints_match_reformatted_texts_and_nothing_else():
    prints = print_set(["小区门口 垃圾没人清理", "噪音扰民"])
    assert prints.dtype == np.uint64 and list(prints) == sorted(prints)
    assert match_text("小区门口\u3000垃圾没人清理\n") == match_text("小区门口垃圾没人清理")
    assert seen(prints, ["小区门口垃圾没人清理 ", "ＡＢＣ", "噪音扰民!"]).tolist() == [True, False, False]


def test_the_model_keeps_its_training_prints_and_saves_identically(tiny_model, tmp_path):
    one = save_model(tiny_model, tmp_path / "one", created="2026-01-01T00:00:00Z")
    two = save_model(tiny_model, tmp_path / "two", created="2026-01-01T00:00:00Z")
    for name in ("model.safetensors", "model.json", "manifest.json"):
        assert (one / name).read_bytes() == (two / name).read_bytes()
    loaded = load_model(one)
    distinct = set(map(match_text, read_labelled(MINI).texts))
    assert loaded.training_rows_ is not None and len(loaded.training_rows_) == len(distinct)
    assert np.array_equal(loaded.training_rows_, tiny_model.training_rows_)
    # loading a saved model and saving it again gives the same data files
    three = save_model(loaded, tmp_path / "three", created="2026-01-01T00:00:00Z")
    assert (three / "model.safetensors").read_bytes() == (one / "model.safetensors").read_bytes()


def test_chuishao_test_says_how_many_rows_were_trained_on(tiny_model_dir, tmp_path):
    data = read_labelled(MINI)
    mixed = tmp_path / "mixed.jsonl"
    rows = [json.loads(line) for line in MINI.read_text(encoding="utf-8").splitlines()][:10]
    for i, row in enumerate(rows[:4]):  # 4 rows trained on none of
        row["id"], row["text"] = f"new-{i}", f"第{i}个从未见过的投诉：楼下施工噪音很大，晚上十一点还在施工"
    mixed.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    r = runner.invoke(app, ["test", str(tiny_model_dir), str(mixed), "-o", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    assert "6 of 10 rows (60.0 %) were in the training data" in r.stderr
    saved = json.loads((tmp_path / "rep" / "metrics.json").read_text(encoding="utf-8"))
    assert saved["training_overlap"] == {"checked": True, "rows": 6, "of": 10, "share": 0.6,
                                         "message": "6 of 10 rows (60.0 %) were in the training data"}
    assert len(data) == 34


def test_a_model_without_prints_says_it_cannot_check(tiny_model, tmp_path):
    old = load_model(save_model(tiny_model, tmp_path / "m"))
    old.training_rows_ = None  # as a model saved before models kept them
    metrics = evaluate(old, read_labelled(MINI))
    assert metrics["training_overlap"]["checked"] is False
    assert "cannot check" in metrics["training_overlap"]["message"]
    saved = save_model(old, tmp_path / "without-prints")
    r = runner.invoke(app, ["test", str(saved), str(MINI)])
    assert r.exit_code == 0 and "cannot check whether these rows were in the training data" in r.stderr


# ---- report.html --------------------------------------------------------------------------------
def test_coverage_curve():
    conf = np.array([0.9, 0.8, 0.8, 0.5])
    right = np.array([True, False, True, True])
    thresholds, coverage, precision = coverage_curve(conf, right)
    assert thresholds.tolist() == [0.9, 0.8, 0.5]
    assert coverage.tolist() == [0.25, 0.75, 1.0]
    assert precision.tolist() == pytest.approx([1.0, 2 / 3, 0.75])


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """The report of the tiny model on the fixture, one row with a phone number and an e-mail address."""
    out = tmp_path_factory.mktemp("report")
    rows = [json.loads(line) for line in MINI.read_text(encoding="utf-8").splitlines()]
    for row in rows:  # wrong labels: confident mistakes to show, each with personal data to mask
        row["label"] = "W05" if row["label"] != "W05" else "W01"
        row["text"] += " 我的电话13812345678，邮箱zhang.san@example.com"
    data = out / "data.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    r = runner.invoke(app, ["test", str(tiny_model_dir), str(data), "-o", str(out / "rep")])
    assert r.exit_code == 0, r.output
    return out / "rep"


def test_report_html_is_self_contained_and_masked(report_dir):
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 3  # confusion matrix, reliability, coverage
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page)  # no external asset
    assert "<link" not in page and "<script" not in page
    assert "噪声扰民" in page and "违法建设" in page  # topic names, not only codes
    assert "The most confident mistakes" in page and "review threshold" in page
    assert "13812345678" not in page and "zhang.san@example.com" not in page
    assert "&lt;PHONE&gt;" in page and "&lt;EMAIL&gt;" in page
    assert "were in the training data" in page


@pytest.mark.skipif(cjk_family() is None, reason="no CJK font installed (Debian: apt-get install fonts-noto-cjk)")
def test_no_glyph_is_missing_with_a_cjk_font(tiny_model, tmp_path):
    data = read_labelled(MINI)
    details: dict[str, object] = {}
    metrics = evaluate(tiny_model, data, details=details)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        page = write_html_report(metrics, details, tiny_model, data, tmp_path).read_text(encoding="utf-8")
    missing = [str(w.message) for w in caught if "missing from" in str(w.message) or "Glyph" in str(w.message)]
    assert not missing, missing[:3]
    assert "shown by code" not in page.lower()  # every topic name drawn


@pytest.mark.browser
def test_report_html_renders_in_a_browser(report_dir):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    chromium = os.environ.get("CHUISHAO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium binary (apt-get install chromium, or set CHUISHAO_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            requests: list[str] = []
            page.on("request", lambda req: requests.append(req.url))
            page.goto((report_dir / "report.html").as_uri())
            sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
            assert len(sizes) == 3 and all(done and width > 300 for done, width in sizes)
            assert page.locator("table").count() == 2
            assert page.locator("h2").all_inner_texts()[:2] == ["Per class", "Where the answers go"]
            assert not [u for u in requests if not u.startswith(("file:", "data:"))]  # nothing fetched from outside
            page.screenshot(path=str(report_dir / "screenshot.png"), full_page=True)
        finally:
            browser.close()
    assert (report_dir / "screenshot.png").stat().st_size > 10_000
