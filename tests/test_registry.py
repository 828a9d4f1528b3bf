"""The model registry, comparisons and promotion gates (chuishao models/compare/promote/rollback, /admin/reload)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, SERVE_KEY, tiny_config
from typer.testing import CliRunner

from chuishao.analysis.compare import mcnemar, paired_bootstrap
from chuishao.analysis.gates import GatePolicy, check_promotion
from chuishao.analysis.registry import Registry
from chuishao.cli import app
from chuishao.errors import DataError
from chuishao.models.classifier import ChuishaoClassifier
from chuishao.models.persistence import load_model, save_model
from chuishao.resources import default_model_dir
from chuishao.taxonomy import Taxonomy
from chuishao.training.data import read_labelled

MINI = FIXTURES / "labelled-mini.jsonl"
runner = CliRunner()


def _cli(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def mini_model_dir(tmp_path_factory) -> Path:
    """The 34-row fixture model trained by `chuishao train` (so its manifest says what it never learned)."""
    out = tmp_path_factory.mktemp("mini") / "model"
    r = _cli("train", str(MINI), "--features.min_df", "1", "--features.max_features", "null",
             "--classifier.calibration_folds", "2", "-o", str(out))
    assert r.exit_code == 0, r.output
    return out


# ---- statistics --------------------------------------------------------------------------------
def test_paired_bootstrap_is_zero_for_the_same_answers_and_seeded():
    rng = np.random.default_rng(1)
    true = rng.choice(["A", "B", "C"], 300)
    pred = np.where(rng.random(300) < 0.8, true, "A")
    same = paired_bootstrap(true, pred, pred, resamples=200)
    assert same == {"macro_f1": {"delta": 0.0, "low": 0.0, "high": 0.0}, "accuracy": {"delta": 0.0, "low": 0.0, "high": 0.0}}
    worse = np.where(rng.random(300) < 0.5, true, "B")
    one = paired_bootstrap(true, pred, worse, resamples=200, seed=3)
    assert one == paired_bootstrap(true, pred, worse, resamples=200, seed=3)  # seeded: the same verdict
    assert one["accuracy"]["high"] < 0 and one["macro_f1"]["high"] < 0  # much worse: the whole interval below 0
    assert one["accuracy"]["low"] <= one["accuracy"]["delta"] <= one["accuracy"]["high"]
    assert one["accuracy"]["delta"] == pytest.approx((worse == true).mean() - (pred == true).mean(), abs=1e-4)


def test_mcnemar_exact_for_few_discordant_rows_and_chi_square_for_many():
    from scipy import stats

    a = np.array([True] * 10 + [False] * 2 + [True] * 20)
    b = np.array([False] * 10 + [True] * 2 + [True] * 20)
    m = mcnemar(a, b)
    assert (m["only_a_right"], m["only_b_right"], m["method"]) == (10, 2, "exact binomial")
    assert m["p_value"] == pytest.approx(stats.binomtest(10, 12, 0.5).pvalue, abs=1e-6)
    a = np.array([True] * 40 + [False] * 20)
    b = ~a
    m = mcnemar(a, b)
    assert m["method"].startswith("chi-square") and m["statistic"] == pytest.approx((20 - 1) ** 2 / 60, abs=1e-4)
    assert mcnemar(a, a)["p_value"] == 1.0


# ---- the registry -------------------------------------------------------------------------------
def test_add_list_promote_rollback(tmp_path, mini_model_dir):
    reg = tmp_path / "reg"
    r = _cli("rollback", "--registry", str(reg))
    assert r.exit_code == 2 and "no version of" in r.output and "promoted yet" in r.output
    r = _cli("models", "add", str(default_model_dir()), "--registry", str(reg))
    assert r.exit_code == 0, r.output
    added = json.loads(r.stdout)
    assert added["added"] is True and (reg / "versions" / added["version"] / "model.safetensors").is_file()
    assert json.loads(_cli("models", "add", str(default_model_dir()), "--registry", str(reg)).stdout)["added"] is False
    second = json.loads(_cli("models", "add", str(mini_model_dir), "--registry", str(reg)).stdout)["version"]

    rows = [json.loads(line) for line in _cli("models", "list", "--json", "--registry", str(reg)).stdout.splitlines()]
    assert {row["version"] for row in rows} == {added["version"], second} and not any(row["current"] for row in rows)
    mini_row = next(row for row in rows if row["version"] == second)
    assert mini_row["labels"] == 7 and mini_row["not_learned"] == 28 and mini_row["data_fingerprint"]
    assert mini_row["heldout_accuracy"] is not None and 0 < mini_row["heldout_macro_f1"] <= 1

    r = _cli("promote", added["version"], "--registry", str(reg))  # the first promotion: nothing to compare with
    assert r.exit_code == 0, r.output
    assert os.readlink(reg / "current") == f"versions/{added['version']}"
    assert load_model(reg / "current").version == added["version"]  # the service loads REGISTRY/current

    # the fixture model never learned most codes the bundled one answers: refused, the pointer kept
    r = _cli("promote", second[-8:], "--registry", str(reg))
    assert r.exit_code == 1 and "REFUSED" in r.output and "never learned" in r.output
    assert os.readlink(reg / "current") == f"versions/{added['version']}"
    assert _cli("promote", second, "--registry", str(reg), "--force").exit_code == 2  # --force needs a reason
    r = _cli("promote", second, "--registry", str(reg), "--force", "--reason", "demo for the analysts")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["forced"] is True and os.readlink(reg / "current") == f"versions/{second}"
    listed = _cli("models", "list", "--registry", str(reg)).stdout
    assert f"* {second}" in listed

    r = _cli("rollback", "--registry", str(reg), "--reason", "back")
    assert r.exit_code == 0, r.output
    assert os.readlink(reg / "current") == f"versions/{added['version']}"
    history = [json.loads(line) for line in (reg / "history.jsonl").read_text().splitlines()]
    assert [(h["action"], h["from"], h["to"], h["forced"]) for h in history] == [
        ("promote", None, added["version"], False), ("promote", added["version"], second, True),
        ("rollback", second, added["version"], False)]
    assert history[1]["reason"] == "demo for the analysts" and history[1]["gates"]["passed"] is False
    r = _cli("rollback", "--registry", str(reg))  # back at the first version: nothing before it
    assert r.exit_code == 2 and "nothing to roll back to" in r.output
    assert not list(reg.glob(".current-*")) and not list((reg / "versions").glob(".adding-*"))


def test_add_refuses_a_corrupted_model(tmp_path, tiny_model_dir):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    with (broken / "model.safetensors").open("r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00\x01\x02")
    r = _cli("models", "add", str(broken), "--registry", str(tmp_path / "reg"))
    assert r.exit_code == 2 and "checksum mismatch" in r.output
    assert not Registry(tmp_path / "reg").entries()


def test_the_pointer_is_replaced_atomically(tmp_path, tiny_model_dir, mini_model_dir, monkeypatch):
    """os.replace of a new symlink: never a moment without `current`."""
    reg = Registry(tmp_path / "reg")
    a, _ = reg.add(tiny_model_dir)
    b, _ = reg.add(mini_model_dir)
    reg.promote(a)
    calls = []
    real = os.replace

    def spy(src, dst):
        calls.append((Path(src).name, Path(dst).name, os.path.islink(dst)))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    reg.promote(b, forced=True, reason="test")
    assert calls == [(f".current-{os.getpid()}.tmp", "current", True)]
    assert reg.current() == b


# ---- gates ----------------------------------------------------------------------------------------
def test_gates_refuse_the_fixture_model_against_the_bundled_default(mini_model_dir):
    report = check_promotion(default_model_dir(), mini_model_dir)
    assert not report.passed
    codes = next(c for c in report.checks if c.name == "codes")
    assert not codes.passed and "never learned 28 codes" in codes.detail and "W15b" in codes.detail
    assert next(c for c in report.checks if c.name == "metrics").enforced is False  # no gate set: not checked
    # the gate can be switched off: then it warns, and only a taxonomy difference would refuse
    assert check_promotion(default_model_dir(), mini_model_dir, policy=GatePolicy(codes=False)).passed


def test_gates_refuse_a_model_significantly_worse_on_the_gate_set(tiny_model_dir, mini_model_dir):
    """The tiny model against one trained on the same texts with their labels shuffled (same codes, same
    class counts): scored on the fixture, the second is far worse."""
    data = read_labelled(MINI)
    shuffled = [data.labels[(i + 7) % len(data)] for i in range(len(data))]
    model = ChuishaoClassifier(tiny_config(), Taxonomy.load())
    model.fit(data.texts, shuffled, titles=data.titles, subs=data.subs)
    worse_dir = save_model(model, tiny_model_dir.parent / "worse")
    policy = GatePolicy(codes=False, resamples=200, max_seen_share=1.0)  # both trained on the gate texts
    report = check_promotion(tiny_model_dir, worse_dir, gate_data=MINI, policy=policy)
    metrics = next(c for c in report.checks if c.name == "metrics")
    assert not metrics.passed and "significantly worse" in metrics.detail
    assert report.comparison is not None and report.comparison["bootstrap"]["accuracy"]["high"] < 0
    tolerant = policy.model_copy(update={"tolerance_accuracy": 1.0, "tolerance_macro_f1": 1.0})
    assert check_promotion(tiny_model_dir, worse_dir, gate_data=MINI, policy=tolerant).passed


def test_gates_refuse_a_taxonomy_with_other_codes(tmp_path, tiny_model_dir, mini_data):
    free = ChuishaoClassifier(tiny_config(), Taxonomy.free(mini_data.labels))
    free.fit(mini_data.texts, mini_data.labels, titles=mini_data.titles)
    free_dir = save_model(free, tmp_path / "free")
    report = check_promotion(tiny_model_dir, free_dir, policy=GatePolicy(codes=False))
    taxonomy = next(c for c in report.checks if c.name == "taxonomy")
    assert not taxonomy.passed and "other codes" in taxonomy.detail and "gone: " in taxonomy.detail


def test_gates_accept_the_same_model_on_the_gate_set(tmp_path, tiny_model_dir):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    report = check_promotion(tiny_model_dir, copy, gate_data=MINI, policy=GatePolicy(resamples=200, max_seen_share=1.0))
    assert report.passed and [c.passed for c in report.checks] == [True, True, True]
    metrics = next(c for c in report.checks if c.name == "metrics")
    assert "34 of 34 rows (100.0 %) were in the training data of A" in metrics.detail  # said, though allowed here


def test_gates_refuse_a_candidate_trained_on_the_gate_set(tmp_path, tiny_model_dir, mini_model_dir):
    """Its figures on rows it was trained on are flattered: the metric gate refuses, compare warns."""
    report = check_promotion(tiny_model_dir, mini_model_dir, gate_data=MINI, policy=GatePolicy(codes=False, resamples=200))
    metrics = next(c for c in report.checks if c.name == "metrics")
    assert not metrics.passed and "is not held out from the candidate: 34 of 34 rows" in metrics.detail
    r = _cli("compare", str(tiny_model_dir), str(mini_model_dir), "--data", str(MINI), "--resamples", "100",
             "-o", str(tmp_path / "cmp"))
    assert r.exit_code == 0, r.output
    assert "were in the training data of B" in r.stderr and "flattered" in (tmp_path / "cmp" / "summary.md").read_text()
    assert json.loads(r.stdout)["training_overlap"]["b"]["rows"] == 34


def test_gate_policy_file(tmp_path):
    path = tmp_path / "gates.yaml"
    path.write_text("codes: false\ntolerance_macro_f1: 0.01\n", encoding="utf-8")
    policy = GatePolicy.load(path)
    assert policy.codes is False and policy.tolerance_macro_f1 == 0.01 and policy.taxonomy is True
    for text, said in [("codez: false\n", "codez: unknown key (did you mean codes?)"),
                       ("metric: false\n", "metric: unknown key (did you mean metrics?)"),
                       ("tolerance_accuracy: -0.1\n", "tolerance_accuracy: Input should be greater than or equal to 0"),
                       ("- codes\n", "expected a mapping"), ("codes: [\n", "not valid YAML at line 2"),
                       ("codes: true\ncodes: false\n", "duplicate key 'codes'")]:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(DataError, match=r"gate policy|not valid YAML") as info:
            GatePolicy.load(path)
        assert said in str(info.value) and "\n" not in str(info.value) and "pydantic" not in str(info.value)


# ---- compare --------------------------------------------------------------------------------------
def test_compare_writes_deltas_intervals_and_masked_changed_answers(tmp_path, tiny_model_dir, mini_model_dir):
    data = tmp_path / "with-phone.jsonl"
    rows = [json.loads(line) for line in MINI.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        row["text"] += " 联系电话13812345678"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    out = tmp_path / "cmp"
    r = _cli("compare", str(tiny_model_dir), str(mini_model_dir), "--data", str(data), "-o", str(out),
             "--resamples", "200")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert set(result["bootstrap"]) == {"macro_f1", "accuracy"} and result["n"] == 34
    assert "McNemar" in r.stderr
    saved = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert saved["mcnemar"]["only_a_right"] + saved["mcnemar"]["only_b_right"] <= saved["changed_answers"]
    assert {row["label"] for row in saved["per_class"]} >= {"OTHER", "W01"}
    with (out / "changed.csv").open(encoding="utf-8") as fh:
        changed = list(csv.DictReader(fh))
    assert len(changed) == saved["changed_answers"]
    for row in changed:
        assert row["answer_a"] != row["answer_b"] and "13812345678" not in row["text"] and "<PHONE>" in row["text"]
    assert "B is" in (out / "summary.md").read_text(encoding="utf-8")


@pytest.mark.shared
def test_compare_the_bundled_default_with_a_copy_of_itself(tmp_path, shared_data):
    """The fast version of 'the gates accept a retrain of the default recipe': the same model copied."""
    copy = tmp_path / "copy"
    shutil.copytree(default_model_dir(), copy)
    report = check_promotion(default_model_dir(), copy, gate_data=shared_data / "whistle" / "test.jsonl",
                             policy=GatePolicy(resamples=200))
    assert report.passed, report.reason()
    assert report.comparison is not None and report.comparison["changed_answers"] == 0


@pytest.mark.slow
@pytest.mark.shared
def test_gates_accept_a_retrain_of_the_default_recipe(tmp_path, shared_data):
    repo = Path(__file__).resolve().parent.parent
    out = tmp_path / "retrained"
    cwd = os.getcwd()
    os.chdir(repo)  # the recipe's relative paths are the repository's
    try:
        r = _cli("train", "--config", "configs/default.yaml", "--paths.shared", str(shared_data), "-o", str(out))
    finally:
        os.chdir(cwd)
    assert r.exit_code == 0, r.output
    report = check_promotion(default_model_dir(), out, gate_data=shared_data / "whistle" / "test.jsonl")
    assert report.passed, report.reason()


# ---- the service's reload goes through the gates ---------------------------------------------------
def test_admin_reload_refuses_a_model_the_gates_refuse(tmp_path, tiny_model_dir, mini_data, serve_settings):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from chuishao.serve.app import create_app

    free = ChuishaoClassifier(tiny_config(), Taxonomy.free(mini_data.labels))  # no sub-problems, other codes
    free.fit(mini_data.texts, mini_data.labels, titles=mini_data.titles)
    reg = Registry(tmp_path / "reg")
    a, _ = reg.add(tiny_model_dir)
    b, _ = reg.add(save_model(free, tmp_path / "free"))
    reg.promote(a)
    settings = serve_settings.model_copy(update={"model_dir": reg.pointer})
    with TestClient(create_app(settings)) as c:
        reg.promote(b, forced=True, reason="repointed by hand")
        r = c.post("/admin/reload", headers={"X-API-Key": SERVE_KEY})
        detail = r.json()["detail"]
        assert r.status_code == 409 and "promotion gates" in detail and "still serving tiny-test" in detail
        assert "never learned" in detail and "other codes" in detail
        assert c.post("/v1/classify", json={"text": "小区楼下烧烤店油烟太大"}).json()["model_version"] == "tiny-test"
        reg.rollback()
        r = c.post("/admin/reload", headers={"X-API-Key": SERVE_KEY})
        assert r.status_code == 200 and r.json()["model_version"] == "tiny-test", r.text
