"""No personal number leaves the service unmasked: database, exports, logs, metrics.

Generated variants (tests/pii_variants.py) go through classify, feedback (every free-text field),
the access log and the export; then every place they could end up in is searched for them.
"""

from __future__ import annotations

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
            body = {"id": f"m{n}", "topic": "W05", "text": message, "title": written, "operator": written[:64],
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
