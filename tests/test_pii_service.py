"""No personal number leaves the service unmasked: database, exports, logs, metrics.

Generated variants (tests/pii_variants.py) go through classify, feedback (every free-text field),
the access log and the export; then every place they could end up in is searched for them.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from urllib.parse import quote, quote_plus

import pytest

pytest.importorskip("fastapi")
from conftest import SERVE_KEY
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from pii_variants import messages, survives

from chuishao.serve.app import create_app
from chuishao.serve.feedback_store import FeedbackStore

KEY = {"X-API-Key": SERVE_KEY}
VARIANTS = 240


def _db_dump(url: str) -> str:
    """Every value of every row, read with sqlite3 (not through the store's own code)."""
    con = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        rows = con.execute("SELECT * FROM chuishao_feedback").fetchall()
    finally:
        con.close()
    return "\n".join(" | ".join(str(v) for v in row) for row in rows)


@pytest.mark.slow  # 240 generated messages through the whole service
def test_generated_personal_data_never_leaves_the_service_unmasked(serve_settings, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    sent: list[tuple[str, str]] = []
    access = logging.getLogger("uvicorn.access")
    with TestClient(create_app(serve_settings)) as c:

        @settings(max_examples=VARIANTS, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
        @given(messages())
        def send(case: tuple[str, str]) -> None:
            needle, message = case
            written = message.removeprefix("楼下烧烤店油烟扰民，")
            n = len(sent)
            sent.append(case)
            assert c.post("/v1/classify", json={"text": message, "title": written, "id": f"m{n}"}).status_code == 200
            message_id = written[:128] if n % 2 else f"m{n}"  # every other id is the personal number itself
            body = {"id": message_id, "topic": "W05", "text": message, "title": written, "operator": written[:64],
                    "model_version": written[:128], "channel": needle if needle.isdigit() and len(needle) >= 11 else "hotline",
                    "departments": {"lead": written[:64], "assist": [written[:64], "城管执法局"]}}
            assert c.post("/v1/feedback", json=body, headers=KEY).status_code == 201
            # an access-log line as uvicorn writes it, the number in the query string
            for target in (f"/v1/taxonomy?phone={quote_plus(written)}", f"/v1/taxonomy?q={quote(written)}&x=1"):
                access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", target, "1.1", 200)

        send()
        exported = c.get("/v1/feedback/export", headers=KEY).text
        metrics = c.get("/metrics").text
    database = _db_dump(serve_settings.db_url)
    logs = caplog.text + "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    places = {"database": database, "export": exported, "logs": logs, "metrics": metrics}
    leaks = {name: [n for n, _ in sent if survives(n, text)] for name, text in places.items()}
    assert len(sent) >= 200 and database.count("<") >= len(sent)
    assert leaks == {name: [] for name in places}, leaks


def test_database_errors_do_not_carry_the_statement_parameters(tmp_path):
    from sqlalchemy.exc import IntegrityError

    from chuishao.serve.feedback_store import StoreUnavailable

    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.sqlite3'}")
    try:
        store.add(pk=1, message_id="id-13812345678", topic="W05", text="电话13812345678")
        with pytest.raises(StoreUnavailable) as failed:
            store.add(pk=1, message_id="id-13812345678", topic="W05", text="电话13812345678")
    finally:
        store.close()
    cause = failed.value.__cause__  # the database error, as SQLAlchemy logs it
    assert isinstance(cause, IntegrityError)
    assert "13812345678" not in str(failed.value) and "13812345678" not in str(cause)
    assert "hide_parameters" in str(cause)


def test_the_access_log_configuration_of_serve_masks_query_strings(tiny_model_dir, monkeypatch):
    import importlib

    import uvicorn
    from typer.testing import CliRunner

    from chuishao.cli import app

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: seen.update(k))
    monkeypatch.delenv("CHUISHAO_MODEL_DIR", raising=False)
    assert CliRunner().invoke(app, ["serve", "--model", str(tiny_model_dir)]).exit_code == 0
    monkeypatch.delenv("CHUISHAO_MODEL_DIR", raising=False)
    config = seen["log_config"]
    assert isinstance(config, dict)
    names = config["handlers"]["access"]["filters"]
    module, _, cls = config["filters"][names[0]]["()"].rpartition(".")
    mask = getattr(importlib.import_module(module), cls)()
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("1.2.3.4:5", "GET", "/v1/taxonomy?tel=138+1234+5678&a=1", "1.1", 200), None)
    assert mask.filter(record) and record.getMessage() == '1.2.3.4:5 - "GET /v1/taxonomy?tel=<PHONE>&a=1 HTTP/1.1" 200'


def test_message_ids_holding_personal_data_are_stored_and_exported_as_keyed_pseudonyms(serve_settings):
    phone, other = "13812345678", "13987654321"
    with TestClient(create_app(serve_settings)) as c:
        for topic in ("W05", "W06"):  # a correction of a correction: one message
            body = {"id": phone, "topic": topic, "text": "楼下烧烤店油烟扰民，晚上还吵"}
            r = c.post("/v1/feedback", json=body, headers=KEY)
            assert r.status_code == 201 and phone not in r.text and r.json()["id"].startswith("<PHONE>#h")
        c.post("/v1/feedback", json={"id": other, "topic": "W05", "text": "工地夜里施工噪音"}, headers=KEY)
        c.post("/v1/feedback", json={"id": "rx-0001", "topic": "W05", "text": "广场舞音响太吵"}, headers=KEY)
        exported = [json.loads(line) for line in c.get("/v1/feedback/export", headers=KEY).text.splitlines()]
    database = _db_dump(serve_settings.db_url)
    assert phone not in database and other not in database and phone not in json.dumps(exported)
    by_id = {row["id"]: row["label"] for row in exported}
    assert len(by_id) == 3 and by_id["rx-0001"] == "W05"  # ids without personal data are kept as given
    masked = sorted(i for i in by_id if i.startswith("<PHONE>#h"))
    assert len(masked) == 2 and {by_id[m] for m in masked} == {"W05", "W06"}  # two phones stay two messages


def test_ids_stored_raw_by_an_older_release_are_masked_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'fb.sqlite3'}"
    store = FeedbackStore(url, id_key=b"k")
    store.add(message_id="rx-1", topic="W05", text="a")
    with store.engine.begin() as conn:  # as a release before id masking stored it
        conn.exec_driver_sql("INSERT INTO chuishao_feedback (message_id, topic, assist, created) "
                             "VALUES ('13812345678', 'W05', '[]', '2026-01-01 00:00:00')")
    assert store.mask_stored_ids() == 1 and store.mask_stored_ids() == 0
    assert "13812345678" not in _db_dump(url) and "rx-1" in _db_dump(url)
    assert store.stored_id("13812345678") in _db_dump(url)  # later corrections of it join the rewritten rows
    store.close()


def test_the_id_key_is_made_once_and_kept(tmp_path, monkeypatch):
    from chuishao.errors import ChuishaoError
    from chuishao.serve.id_key import load_key

    monkeypatch.delenv("CHUISHAO_ID_KEY", raising=False)
    path = tmp_path / "data" / "id-key"
    key = load_key(path=path)
    assert len(key) == 64 and load_key(path=path) == key and path.stat().st_mode & 0o777 == 0o600
    assert load_key("from-the-environment", path) == b"from-the-environment"
    path.write_text("")
    with pytest.raises(ChuishaoError, match="empty"):
        load_key(path=path)


def test_feedback_id_prints_the_stored_form_of_an_id(monkeypatch):
    from typer.testing import CliRunner

    from chuishao.cli import app

    monkeypatch.setenv("CHUISHAO_ID_KEY", "k")
    store = FeedbackStore("sqlite://", id_key=b"k")
    result = CliRunner().invoke(app, ["feedback", "id", "13812345678", "rx-1"])
    assert result.exit_code == 0 and result.output.split() == [store.stored_id("13812345678"), "rx-1"]
    store.close()
