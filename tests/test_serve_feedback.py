"""Operator feedback: API key, validation, durable storage, export as training data."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")
from conftest import FIXTURES, SERVE_KEY
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from chuishao.cli import app as cli
from chuishao.serve.app import create_app
from chuishao.serve.feedback_store import FeedbackStore
from chuishao.training.data import read_labelled

KEY = {"X-API-Key": SERVE_KEY}
TEXT = "楼下烧烤店油烟直接排到居民楼，窗户都不敢开。联系电话13812345678。"


def fb(**over: object) -> dict[str, object]:
    body = {"id": "rx-1", "topic": "W06", "sub": "W06a", "departments": {"lead": "生态环境局", "assist": ["城管执法局"]},
            "text": TEXT, "title": "烧烤油烟", "channel": "hotline", "predicted_topic": "W05", "operator": "op-7"}
    return {**body, **over}


def test_feedback_needs_the_key_and_a_valid_label(serve_settings):
    with TestClient(create_app(serve_settings)) as c:
        assert c.post("/v1/feedback", json=fb()).status_code == 401
        assert c.post("/v1/feedback", json=fb(), headers={"X-API-Key": SERVE_KEY + "x"}).status_code == 401
        r = c.post("/v1/feedback", json=fb(topic="W99"), headers=KEY)
        assert r.status_code == 422 and "unknown topic" in r.text
        r = c.post("/v1/feedback", json=fb(sub="W05a"), headers=KEY)
        assert r.status_code == 422 and "does not belong" in r.text
        assert c.post("/v1/feedback", json=fb(extra=1), headers=KEY).status_code == 422
        assert c.post("/v1/feedback", json=fb(id=""), headers=KEY).status_code == 422
        r = c.post("/v1/feedback", json=fb(), headers=KEY)
        assert r.status_code == 201 and r.json()["id"] == "rx-1" and r.json()["feedback_id"] >= 1
        assert c.post("/admin/reload", headers={"X-API-Key": "wrong"}).status_code == 401


def test_feedback_is_refused_when_no_key_is_configured(serve_settings):
    serve_settings.api_keys = []
    with TestClient(create_app(serve_settings)) as c:
        r = c.post("/v1/feedback", json=fb(), headers=KEY)
        assert r.status_code == 403 and "no API key configured" in r.text


def test_feedback_survives_a_restart_and_exports_as_training_data(serve_settings, tmp_path):
    with TestClient(create_app(serve_settings)) as c:
        assert c.post("/v1/feedback", json=fb(), headers=KEY).status_code == 201
        assert c.post("/v1/feedback", json=fb(id="rx-2", topic="W05", sub="W05b",
                                               text="每天晚上广场舞音响声音特别大。"), headers=KEY).status_code == 201
        # a later correction of rx-1 wins in the export; both stay in the store
        assert c.post("/v1/feedback", json=fb(topic="W06", sub="W06b"), headers=KEY).status_code == 201
        assert c.post("/v1/feedback", json=fb(id="rx-3", text=None), headers=KEY).status_code == 201
    # a new process: only the file remains
    store = FeedbackStore(serve_settings.db_url)
    assert store.count() == 4
    stored_text = next(r.text for r in store.latest_per_message() if r.message_id == "rx-1")
    assert "13812345678" not in stored_text and "<PHONE>" in stored_text  # stored masked
    store.close()

    out = tmp_path / "feedback.jsonl"
    result = CliRunner().invoke(cli, ["feedback", "export", "-o", str(out), "--db-url", serve_settings.db_url])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"output": str(out), "written": 2, "skipped_without_text": 1, "conflicting_ids": 0,
                                         "conflicting_texts": 0, "left_out_conflicting": 0}
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["label"], r["sub"]) for r in rows] == [("rx-2", "W05", "W05b"), ("rx-1", "W06", "W06b")]
    assert rows[1]["departments"] == {"lead": "生态环境局", "assist": ["城管执法局"]}
    assert rows[1]["created"].endswith("+00:00")  # UTC, said so
    labelled = read_labelled(out)  # what `chuishao train` reads
    assert list(labelled.labels) == ["W05", "W06"] and list(labelled.subs) == ["W05b", "W06b"]


def test_export_of_a_missing_database_fails_clearly(tmp_path):
    result = CliRunner().invoke(cli, ["feedback", "export", "-o", str(tmp_path / "x.jsonl"),
                                      "--db-url", f"sqlite:///{tmp_path / 'none.sqlite3'}"])
    assert result.exit_code == 2 and "no feedback database" in result.output


def test_a_correction_without_text_keeps_the_message_in_the_export(serve_settings):
    with TestClient(create_app(serve_settings)) as c:
        first = fb(id="L1", topic="W05", sub="W05b", text="楼下烧烤店晚上很吵")
        assert c.post("/v1/feedback", json=first, headers=KEY).status_code == 201
        # the operator corrects the label; the client does not send the text again, or sends it blank
        no_text = fb(id="L1", topic="W06", sub="W06a", text=None, title=None)
        assert c.post("/v1/feedback", json=no_text, headers=KEY).status_code == 201
        blank_text = fb(id="L1", topic="W06", sub="W06b", text="   ", title=None)
        assert c.post("/v1/feedback", json=blank_text, headers=KEY).status_code == 201
        assert c.post("/v1/feedback", json=fb(id="L2", text=""), headers=KEY).status_code == 201
        r = c.get("/v1/feedback/export", headers=KEY)
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert [(x["id"], x["label"], x["sub"], x["text"]) for x in rows] == [("L1", "W06", "W06b", "楼下烧烤店晚上很吵")]
    store = FeedbackStore(serve_settings.db_url)
    assert store.count() == 4  # the audit trail keeps every row as sent (blank texts as none)
    store.close()


def test_stored_feedback_masks_every_free_text_field(serve_settings):
    phone_fw = "１３８１２３４５６７８"  # full-width digits, as typed with a Chinese input method
    body = fb(id="P1", text=f"电话{phone_fw}，座机(010)87654321，身份证110101 19900307 123X",
              title="手机138.1234.5678", operator="张三 13712345678")
    with TestClient(create_app(serve_settings)) as c:
        assert c.post("/v1/feedback", json=body, headers=KEY).status_code == 201
    store = FeedbackStore(serve_settings.db_url)
    row = next(store.latest_per_message())
    store.close()
    stored = f"{row.text} {row.title} {row.operator}"
    for secret in (phone_fw, "12345678", "87654321", "19900307", "13712345678", "1234.5678"):
        assert secret not in stored, stored
    assert row.text.count("<PHONE>") == 2 and "<ID>" in row.text and row.operator == "张三 <PHONE>"


def test_feedback_checks_predicted_topic_and_title_length(serve_settings):
    with TestClient(create_app(serve_settings)) as c:
        r = c.post("/v1/feedback", json=fb(predicted_topic="ZZZ"), headers=KEY)
        assert r.status_code == 422 and "unknown predicted_topic" in r.text
        r = c.post("/v1/feedback", json=fb(title="路灯" * 300), headers=KEY)
        assert r.status_code == 413 and "title too long" in r.text


def test_contradicting_corrections_are_reported_and_the_export_trains_a_model(serve_settings, tmp_path):
    """Feedback made through the service, exported, then given to `chuishao train --extra-data`."""
    same = "小区门口的垃圾桶满了好几天没人清运，臭气熏天，夏天苍蝇乱飞。"
    with TestClient(create_app(serve_settings)) as c:
        for body in (fb(id="c-1", topic="W05", sub="W05b"), fb(id="c-1", topic="W06", sub="W06a"),  # one id, two topics
                     fb(id="c-2", topic="W12", sub=None, text=same), fb(id="c-3", topic="W08", sub=None, text=" " + same),
                     fb(id="c-4", topic="W13", sub=None, text="自来水发黄有异味，烧开后有沉淀。")):
            assert c.post("/v1/feedback", json=body, headers=KEY).status_code == 201
    out, conflicts = tmp_path / "feedback.jsonl", tmp_path / "conflicts.jsonl"
    result = CliRunner().invoke(cli, ["feedback", "export", "-o", str(out), "--db-url", serve_settings.db_url,
                                      "--conflicts", str(conflicts)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["conflicting_ids"] == 1 and summary["conflicting_texts"] == 1 and summary["left_out_conflicting"] == 1
    assert "contradicting corrections (listed in" in result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted((r["id"], r["label"]) for r in rows) == [("c-1", "W06"), ("c-3", "W08"), ("c-4", "W13")]
    listed = [json.loads(line) for line in conflicts.read_text(encoding="utf-8").splitlines()]
    by_kind = {c["kind"]: c for c in listed}
    assert [h["topic"] for h in by_kind["same_id"]["history"]] == ["W05", "W06"] and by_kind["same_id"]["exported"] == "W06"
    assert by_kind["same_text"]["left_out"] == [{"message_id": "c-2", "topic": "W12"}]

    cfg = tmp_path / "tiny.yaml"  # a tiny recipe on the fixtures: no ../shared path in it
    cfg.write_text(f"data: {{train: ['{FIXTURES / 'labelled-mini.jsonl'}']}}\n"
                   "features: {min_df: 1, max_features: null}\nclassifier: {calibration_folds: 2}\n", encoding="utf-8")
    trained = CliRunner().invoke(cli, ["train", "--config", str(cfg), "--extra-data", str(out), "-o", str(tmp_path / "m")])
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["training_rows"] == 34 + 3


def test_the_http_export_reports_the_conflicts_the_cli_reports(serve_settings, tmp_path):
    """GET /v1/feedback/export writes the rows `chuishao feedback export` writes, and reports the same
    contradicting corrections (headers; ?conflicts=true lists them as --conflicts FILE does)."""
    same = "小区门口的垃圾桶满了好几天没人清运，臭气熏天，夏天苍蝇乱飞。"
    with TestClient(create_app(serve_settings)) as c:
        for body in (fb(id="h-1", topic="W05", sub="W05b"), fb(id="h-1", topic="W06", sub="W06a"),
                     fb(id="h-2", topic="W12", sub=None, text=same), fb(id="h-3", topic="W08", sub=None, text=same + " "),
                     fb(id="h-4", topic="W13", sub=None, text="自来水发黄有异味，烧开后有沉淀。")):
            assert c.post("/v1/feedback", json=body, headers=KEY).status_code == 201
        over_http = c.get("/v1/feedback/export", headers=KEY)
        listed_http = c.get("/v1/feedback/export", params={"conflicts": "true"}, headers=KEY)
    out, conflicts = tmp_path / "feedback.jsonl", tmp_path / "conflicts.jsonl"
    result = CliRunner().invoke(cli, ["feedback", "export", "-o", str(out), "--db-url", serve_settings.db_url,
                                      "--conflicts", str(conflicts)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert over_http.status_code == 200
    assert over_http.text == out.read_text(encoding="utf-8")  # row for row, h-2 left out by both
    assert "h-2" not in over_http.text and summary["left_out_conflicting"] == 1
    assert (int(over_http.headers["x-chuishao-conflicting-ids"]), int(over_http.headers["x-chuishao-conflicting-texts"]),
            int(over_http.headers["x-chuishao-left-out"])) == (summary["conflicting_ids"], summary["conflicting_texts"],
                                                               summary["left_out_conflicting"]) == (1, 1, 1)
    http_list = [json.loads(line) for line in listed_http.text.splitlines()]
    file_list = [json.loads(line) for line in conflicts.read_text(encoding="utf-8").splitlines()]
    assert http_list == file_list and {c["kind"] for c in http_list} == {"same_id", "same_text"}


def test_feedback_refuses_a_text_classification_refuses_and_drops_nul_characters(serve_settings):
    with TestClient(create_app(serve_settings)) as c:
        for text, said in [("hello world", "text is not Chinese"), ("😡😡", "text is not Chinese")]:
            r = c.post("/v1/feedback", json=fb(text=text, title=None), headers=KEY)
            assert r.status_code == 422 and f"this text cannot be training data: {said}" in r.text, r.text
        assert c.post("/v1/feedback", json=fb(id="rx-2", text="噪\u0000音太大了，晚上睡不着"), headers=KEY).status_code == 201
        assert c.post("/v1/feedback", json=fb(id="rx-3", text=None, title=None), headers=KEY).status_code == 201
    rows = {r.message_id: r for r in FeedbackStore(serve_settings.db_url).latest_per_message()}
    assert set(rows) == {"rx-2", "rx-3"} and rows["rx-2"].text == "噪音太大了，晚上睡不着"
