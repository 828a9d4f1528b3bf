"""Faults the service must survive: a broken model on disk, a feedback store that cannot write,
start-up races, cheap denial of service, and the small edge cases of issue 15."""

from __future__ import annotations

import json
import os
import shutil
import threading
import unicodedata
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from conftest import SERVE_KEY, load_script
from fastapi.testclient import TestClient
from sqlalchemy import event

from chuishao.models.persistence import ARRAYS_FILE
from chuishao.serve.app import create_app
from chuishao.serve.model_holder import ModelHolder

KEY = {"X-API-Key": SERVE_KEY}
NOISE = "每天晚上广场舞音响声音特别大，严重扰民。"
SERVE_ENV = ("CHUISHAO_MODEL_DIR", "CHUISHAO_DB_URL", "CHUISHAO_MODEL_FALLBACK_DIR", "CHUISHAO_TAXONOMY",
             "PROMETHEUS_MULTIPROC_DIR")


@pytest.fixture()
def serve_env():
    """`chuishao serve` passes settings to its workers by environment: put it back afterwards."""
    saved = {k: os.environ.get(k) for k in SERVE_ENV}
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture()
def model_dir(tiny_model_dir, tmp_path):
    return shutil.copytree(tiny_model_dir, tmp_path / "served")


# ---- 1. a broken model on disk ----------------------------------------------------------------
@pytest.mark.parametrize("breakage", ["corrupted", "deleted"])
def test_a_worker_starting_on_a_broken_model_directory_serves_the_verified_copy(model_dir, tmp_path, breakage):
    from chuishao.serve import verified_copy

    copies = tmp_path / "copies"
    first = ModelHolder(model_dir, fallback_dir=copies)
    first.start()
    assert verified_copy.latest(copies) is not None  # kept after the load
    if breakage == "corrupted":
        (model_dir / ARRAYS_FILE).write_bytes(b"not the weights")
    else:
        shutil.rmtree(model_dir)
    assert first.disk_state().state == "broken"
    respawned = ModelHolder(model_dir, fallback_dir=copies)  # what a worker respawned by uvicorn does
    loaded = respawned.start()
    assert loaded.source == "verified copy" and loaded.version == "tiny-test"
    assert respawned.disk_state().state == "broken"
    answers = loaded.model.route([NOISE])
    assert answers[0].topic is not None
    with pytest.raises(Exception):  # noqa: B017 - without a copy a broken model still fails the start
        ModelHolder(model_dir).start()
    shutil.copytree(verified_copy.latest(copies), model_dir, dirs_exist_ok=True)  # the directory is repaired
    assert respawned.disk_state().state == "same"
    assert respawned.reload_if_changed() and respawned.require().source == "directory"  # the watcher goes back to it


def test_readyz_says_when_the_model_on_disk_differs_or_is_broken(serve_settings, model_dir, tiny_model):
    import copy

    from chuishao.models.persistence import save_model

    serve_settings.model_dir = model_dir
    with TestClient(create_app(serve_settings)) as c:
        body = c.get("/readyz").json()
        assert body["model_on_disk"] == "same" and body["status"] == "ok" and body["model_source"] == "directory"
        new = copy.deepcopy(tiny_model)
        new.metadata = {**tiny_model.metadata, "version": "tiny-next"}
        save_model(new, model_dir)
        assert c.get("/readyz").json()["model_on_disk"] == "differs"
        (model_dir / ARRAYS_FILE).write_bytes(b"broken")
        r = c.get("/readyz")
        assert r.status_code == 200
        body = r.json()
        assert body["model_on_disk"] == "broken" and "checksum" in body["model_on_disk_error"]
        assert body["status"] == "degraded" and body["model_version"] == "tiny-test"


# ---- 2. start-up race on a fresh SQLite file ---------------------------------------------------
def test_schema_creation_retries_database_is_locked(tmp_path, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from chuishao.serve import feedback_store

    real = feedback_store.Base.metadata.create_all
    calls = []

    def locked_twice(engine, *a, **k):
        calls.append(1)
        if len(calls) <= 2:
            raise OperationalError("CREATE TABLE", {}, Exception("database is locked"))
        return real(engine, *a, **k)

    monkeypatch.setattr(feedback_store.Base.metadata, "create_all", locked_twice)
    store = feedback_store.FeedbackStore(f"sqlite:///{tmp_path / 'fb.sqlite3'}")
    assert len(calls) == 3 and store.count() == 0


def test_serve_creates_the_schema_and_the_verified_copy_before_the_workers_start(tiny_model_dir, tmp_path,
                                                                                  monkeypatch, serve_env):
    import sqlite3

    from typer.testing import CliRunner

    from chuishao.cli import app
    from chuishao.serve import supervisor, verified_copy

    seen: dict[str, object] = {}
    def run(app: str, *, workers: int, **options: object) -> None:
        seen.update(options, workers=workers)

    monkeypatch.setattr(supervisor, "run", run)
    db = tmp_path / "fresh" / "fb.sqlite3"
    result = CliRunner().invoke(app, ["serve", "--model", str(tiny_model_dir), "--workers", "2", "--db-url", f"sqlite:///{db}"])
    assert result.exit_code == 0, result.output
    assert f"feedback store: {db}" in result.output
    tables = sqlite3.connect(db).execute("select name from sqlite_master where type='table'").fetchall()
    assert ("chuishao_feedback",) in tables
    copy = verified_copy.latest(Path(os.environ["CHUISHAO_MODEL_FALLBACK_DIR"]))
    assert copy is not None and verified_copy.verify(copy) == verified_copy.verify(tiny_model_dir)
    # 6. a new worker gets a minute to load, not uvicorn's 5 s
    assert seen["timeout_worker_healthcheck"] == 60 and seen["workers"] == 2


def test_sighup_is_passed_on_to_the_workers_that_have_started_and_later_to_the_others(monkeypatch):
    import signal

    from chuishao.serve import supervisor

    class Worker:  # uvicorn's Process, as the supervisor sees it
        def __init__(self, pid: int, ready: bool) -> None:
            self.pid, self.ready = pid, ready

        def is_ready(self, timeout: float = 5) -> bool:
            return self.ready

    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(supervisor.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    sup = supervisor.InPlaceReloads.__new__(supervisor.InPlaceReloads)  # no sockets, no signal handlers
    sup.processes = [Worker(11, True), Worker(12, False)]  # type: ignore[list-item]
    sup.hup_pending = set()
    sup.handle_hup()
    assert sent == [(11, signal.SIGHUP)] and sup.hup_pending == {12}  # a starting worker would die of it
    sup.processes[1].ready = True  # type: ignore[attr-defined]
    sup.pass_on_hup()
    assert sent == [(11, signal.SIGHUP), (12, signal.SIGHUP)] and not sup.hup_pending
    sup.hup_pending = {12, 13}  # 13 died and was replaced: the new worker loads the model itself
    sup.pass_on_hup()
    assert sent[-1] == (12, signal.SIGHUP) and not sup.hup_pending


def test_the_feedback_database_defaults_to_the_user_data_directory(tmp_path, monkeypatch):
    from chuishao.serve import settings as settings_module

    monkeypatch.delenv("CHUISHAO_DB_URL", raising=False)
    monkeypatch.setattr(settings_module, "data_dir", lambda: tmp_path / "data" / "chuishao")
    assert settings_module.ServeSettings(_env_file=None).db_url == f"sqlite:///{tmp_path}/data/chuishao/feedback.sqlite3"
    monkeypatch.setenv("CHUISHAO_DB_URL", "sqlite:///elsewhere.sqlite3")
    assert settings_module.ServeSettings(_env_file=None).db_url == "sqlite:///elsewhere.sqlite3"


# ---- 3. cheap denial of service ----------------------------------------------------------------
def test_an_over_limit_batch_is_refused_before_its_items_are_parsed(client_app):
    # items beyond the limit are not even JSON: only a count before parsing answers 413
    head = ",".join(['{"text": "' + NOISE + '"}'] * 9)
    body = '{"items": [' + head + ', {not json at all' + "x" * 100_000 + "]}"
    r = client_app.post("/v1/classify/batch", content=body.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "the limit is 8" in r.json()["detail"]
    big = json.dumps({"items": [{"text": "x"}] * 20_000})
    assert client_app.post("/v1/classify/batch", content=big, headers={"content-type": "application/json"}).status_code == 413
    ok = json.dumps({"items": [{"text": NOISE}] * 8})
    assert client_app.post("/v1/classify/batch", content=ok, headers={"content-type": "application/json"}).status_code == 200


def test_a_full_inference_queue_answers_503_with_retry_after(serve_settings):
    serve_settings.max_queue = 1
    app = create_app(serve_settings)
    release, scoring = threading.Event(), threading.Event()
    with TestClient(app) as c:
        model = app.state.holder.require().model
        real = model.route

        def slow_route(texts, **kw):
            scoring.set()
            release.wait(10)
            return real(texts, **kw)

        model.route = slow_route
        results: list[int] = []
        first = threading.Thread(target=lambda: results.append(c.post("/v1/classify", json={"text": NOISE}).status_code))
        first.start()
        assert scoring.wait(10)
        r = c.post("/v1/classify", json={"text": NOISE})
        release.set()
        first.join(10)
        model.route = real
        assert r.status_code == 503 and r.headers["retry-after"] == "1" and "overloaded" in r.json()["detail"]
        assert results == [200]
        assert c.post("/v1/classify", json={"text": NOISE}).status_code == 200


def test_repeated_wrong_keys_are_locked_out_with_429(serve_settings):
    serve_settings.auth_max_failures = 3
    with TestClient(create_app(serve_settings)) as c:
        assert [c.post("/admin/reload", headers={"X-API-Key": "guess"}).status_code for _ in range(3)] == [401] * 3
        r = c.post("/admin/reload", headers=KEY)  # locked out, right key or not
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert c.post("/v1/classify", json={"text": NOISE}).status_code == 200  # unkeyed classification goes on


# ---- 4. feedback store faults ------------------------------------------------------------------
FB = {"id": "rx-1", "topic": "W06", "text": "楼下烧烤店油烟直接排到居民楼，窗户都不敢开。"}


def _break_store(app, pragma: str) -> None:
    engine = app.state.store.engine
    event.listen(engine, "connect", lambda conn, _rec: conn.cursor().execute(pragma))
    engine.dispose()  # the pooled connections go; new ones get the pragma


@pytest.mark.parametrize("pragma, reason", [("PRAGMA query_only=ON", "readonly"),
                                            ("PRAGMA max_page_count=1", "full")])
def test_a_feedback_store_that_cannot_write_answers_503_and_classification_goes_on(serve_settings, pragma, reason):
    from chuishao.serve import feedback_store

    app = create_app(serve_settings)
    with TestClient(app) as c:
        big = {**FB, "text": FB["text"] * 200}  # more than one page: a full database refuses it
        assert c.post("/v1/feedback", json=FB, headers=KEY).status_code == 201
        _break_store(app, pragma)
        r = c.post("/v1/feedback", json=big, headers=KEY)
        assert r.status_code == 503 and reason in r.json()["detail"] and "classification still works" in r.json()["detail"]
        assert r.headers["retry-after"]
        assert c.post("/v1/classify", json={"text": NOISE}).status_code == 200
        app.state.store._probed = -feedback_store.PROBE_SECONDS  # probe now
        ready = c.get("/readyz")
        assert ready.status_code == 200
        body = ready.json()
        assert body["ready"] is True and body["status"] == "degraded"
        assert body["feedback_store"] == "down" and reason in body["feedback_store_error"]
        assert "chuishao_feedback_store_up 0.0" in c.get("/metrics").text


def test_a_store_that_cannot_be_opened_does_not_stop_the_service(serve_settings, tmp_path):
    (tmp_path / "not-a-dir").write_text("a file")
    serve_settings.db_url = f"sqlite:///{tmp_path / 'not-a-dir' / 'fb.sqlite3'}"
    with TestClient(create_app(serve_settings)) as c:
        assert c.post("/v1/classify", json={"text": NOISE}).status_code == 200
        assert c.post("/v1/feedback", json=FB, headers=KEY).status_code == 503
        assert c.get("/readyz").json()["feedback_store"] == "down"


# ---- 7. small ones ------------------------------------------------------------------------------
@pytest.fixture()
def client_app(serve_settings):
    with TestClient(create_app(serve_settings)) as c:
        yield c


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_bodies_that_are_not_utf8_are_refused(client_app, encoding):
    body = json.dumps({"text": NOISE}, ensure_ascii=False).encode(encoding)
    r = client_app.post("/v1/classify", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "UTF-8" in r.json()["detail"]


def test_nfc_and_nfd_forms_of_an_id_are_one_message(client_app):
    nfc, nfd = unicodedata.normalize("NFC", "café-한국-1"), unicodedata.normalize("NFD", "café-한국-1")
    assert nfc != nfd
    assert client_app.post("/v1/feedback", json={**FB, "id": nfd}, headers=KEY).json()["id"] == nfc
    assert client_app.post("/v1/feedback", json={**FB, "id": nfc, "topic": "W05"}, headers=KEY).status_code == 201
    rows = [json.loads(line) for line in client_app.get("/v1/feedback/export", headers=KEY).text.splitlines()]
    assert [(r["id"], r["label"]) for r in rows] == [(nfc, "W05")]


def test_the_operator_page_has_a_csp_without_inline_code_and_no_framing(client_app):
    r = client_app.get("/")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    assert "<style>" not in r.text and "<script>" not in r.text  # inline code would be blocked by the CSP
    for path, kind in (("/static/app.js", "javascript"), ("/static/app.css", "text/css")):
        asset = client_app.get(path)
        assert asset.status_code == 200 and kind in asset.headers["content-type"]
    assert client_app.get("/healthz").headers["x-content-type-options"] == "nosniff"


def test_the_export_is_streamed_row_by_row(serve_settings):
    from chuishao.serve.routes.feedback import feedback_export

    app = create_app(serve_settings)
    with TestClient(app) as c:
        for i in range(5):
            assert c.post("/v1/feedback", json={**FB, "id": f"m{i}"}, headers=KEY).status_code == 201
        store = app.state.store
        taken: list[int] = []
        real = store.latest_per_message

        def counted():
            for row in real():
                taken.append(row.pk)
                yield row

        store.latest_per_message = counted
        feedback_export(store)
        # the conflict pass reads every row once (keeping an 8-byte print of each text, not the text), then
        # the rows are streamed: the first before the answer starts, the rest while it is sent
        assert len(taken) == 5 + 1
        assert len(c.get("/v1/feedback/export", headers=KEY).text.splitlines()) == 5


# ---- the same with real worker processes (bench/bench_faults.py runs more of them) ---------------
def _bench_faults():
    return load_script("bench/bench_faults.py")


@pytest.mark.processes
def test_a_worker_killed_while_the_model_directory_is_deleted_comes_back_on_the_verified_copy(tiny_model_dir, tmp_path):
    bench = _bench_faults()
    ok, figures = bench.broken_model_and_worker_kill(tiny_model_dir, tmp_path, "deleted", load_seconds=1)
    assert ok, figures


@pytest.mark.processes
def test_sighup_with_two_workers_reloads_each_in_place_and_fails_no_request(tiny_model_dir, tmp_path):
    # uvicorn's own SIGHUP replaced the workers, and a stopping worker dropped the connections it had
    # accepted but not read: a few failed requests per 10 reloads under load
    bench = _bench_faults()
    ok, figures = bench.sighup_reloads(tiny_model_dir, tmp_path, reloads=3, clients=2)
    assert figures["workers_replaced"] == 0 and figures["completed"] == 3, figures
    assert ok and figures["failed"] == 0 and figures["requests"] > 0, figures


def test_a_missing_key_is_said_and_does_not_lock_the_address_out(serve_settings):
    settings = serve_settings.model_copy(update={"auth_max_failures": 3})
    with TestClient(create_app(settings)) as c:
        for _ in range(6):  # an operator clicking before entering a key
            r = c.post("/admin/reload")
            assert r.status_code == 401 and "missing API key" in r.json()["detail"]
        assert c.post("/admin/reload", headers=KEY).status_code != 429
        for _ in range(3):
            assert "wrong API key" in c.post("/admin/reload", headers={"X-API-Key": "nope"}).json()["detail"]
        assert c.post("/admin/reload", headers=KEY).status_code == 429
