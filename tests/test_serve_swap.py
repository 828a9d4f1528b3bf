"""Model swap without downtime: load the new model, then switch; a broken one never replaces a good one."""

from __future__ import annotations

import copy
import shutil
import threading
import time

import pytest

pytest.importorskip("fastapi")
from conftest import SERVE_KEY, free_port
from fastapi.testclient import TestClient

from chuishao.models.persistence import ARRAYS_FILE, save_model
from chuishao.serve.app import create_app

pytestmark = pytest.mark.slow  # reloads under live requests wait on watchers and threads: make test, not make check

NOISE = "每天晚上广场舞音响声音特别大，严重扰民。"


@pytest.fixture()
def model_dir(tiny_model_dir, tmp_path):
    return shutil.copytree(tiny_model_dir, tmp_path / "served")


def _write_version(tiny_model, directory, version: str) -> None:
    new = copy.deepcopy(tiny_model)
    new.metadata = {**tiny_model.metadata, "version": version}
    save_model(new, directory)


def test_reload_switches_while_requests_keep_succeeding(serve_settings, model_dir, tiny_model):
    serve_settings.model_dir = model_dir
    with TestClient(create_app(serve_settings)) as c:
        assert c.get("/readyz").json()["model_version"] == "tiny-test"
        statuses: list[int] = []
        versions: set[str] = set()
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                r = c.post("/v1/classify", json={"text": NOISE})
                statuses.append(r.status_code)
                versions.add(r.json().get("model_version"))

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        _write_version(tiny_model, model_dir, "tiny-v2")
        r = c.post("/admin/reload", headers={"X-API-Key": SERVE_KEY})
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()
        assert r.status_code == 200, r.text
        assert r.json() == {"previous_version": "tiny-test", "model_version": "tiny-v2", "switched": True}
        assert statuses and set(statuses) == {200}  # no request failed during the swap
        assert versions <= {"tiny-test", "tiny-v2"} and "tiny-v2" in versions
        assert c.post("/v1/classify", json={"text": NOISE}).json()["model_version"] == "tiny-v2"
        assert c.get("/readyz").json()["model_version"] == "tiny-v2"
        assert 'chuishao_model_info{version="tiny-v2"} 1.0' in c.get("/metrics").text
        assert 'version="tiny-test"' not in c.get("/metrics").text


def test_a_broken_new_model_is_refused_and_the_old_one_keeps_serving(serve_settings, model_dir):
    serve_settings.model_dir = model_dir
    with TestClient(create_app(serve_settings)) as c:
        (model_dir / ARRAYS_FILE).write_bytes(b"not a model")
        r = c.post("/admin/reload", headers={"X-API-Key": SERVE_KEY})
        assert r.status_code == 409 and "still serving tiny-test" in r.json()["detail"]
        assert c.post("/v1/classify", json={"text": NOISE}).json()["model_version"] == "tiny-test"
        (model_dir / "model.json").write_text("{not json", encoding="utf-8")  # the file the gates read first
        detail = c.post("/admin/reload", headers={"X-API-Key": SERVE_KEY}).json()["detail"]
        assert "still serving tiny-test" in detail and "model.json: not a readable model file" in detail
        assert "gates" not in detail


def test_the_watcher_picks_up_a_model_written_into_the_directory(serve_settings, model_dir, tiny_model):
    serve_settings.model_dir = model_dir
    serve_settings.model_poll_seconds = 0.1
    with TestClient(create_app(serve_settings)) as c:
        _write_version(tiny_model, model_dir, "tiny-v3")
        deadline = time.monotonic() + 10
        while c.get("/readyz").json()["model_version"] != "tiny-v3" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert c.post("/v1/classify", json={"text": NOISE}).json()["model_version"] == "tiny-v3"


def test_reload_follows_a_repointed_symlink(serve_settings, tiny_model_dir, tiny_model, tmp_path):
    """docs/service.md: point the service at a symlink (current -> v1), repoint it, reload."""
    v1, v2 = shutil.copytree(tiny_model_dir, tmp_path / "v1"), tmp_path / "v2"
    _write_version(tiny_model, v2, "tiny-v2")
    current = tmp_path / "current"
    current.symlink_to(v1, target_is_directory=True)
    serve_settings.model_dir = current
    with TestClient(create_app(serve_settings)) as c:
        assert c.get("/readyz").json()["model_version"] == "tiny-test"
        current.unlink()
        current.symlink_to(v2, target_is_directory=True)
        r = c.post("/admin/reload", headers={"X-API-Key": SERVE_KEY})
        assert r.json() == {"previous_version": "tiny-test", "model_version": "tiny-v2", "switched": True}


def test_serve_command_keeps_the_symlink_it_was_given(tiny_model_dir, tmp_path, monkeypatch):
    import uvicorn
    from typer.testing import CliRunner

    from chuishao.cli import app

    current = tmp_path / "current"
    current.symlink_to(tiny_model_dir, target_is_directory=True)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    monkeypatch.delenv("CHUISHAO_MODEL_DIR", raising=False)
    monkeypatch.setenv("CHUISHAO_DB_URL", f"sqlite:///{tmp_path / 'fb.sqlite3'}")  # not the user's data directory
    monkeypatch.setenv("CHUISHAO_MODEL_FALLBACK_DIR", "")  # put back after: serve sets it for its workers
    result = CliRunner().invoke(app, ["serve", "--model", str(current)])
    assert result.exit_code == 0, result.output
    import os

    assert os.environ["CHUISHAO_MODEL_DIR"] == str(current.absolute())
    monkeypatch.delenv("CHUISHAO_MODEL_DIR")


def test_the_watcher_picks_up_a_retrained_model_even_under_the_same_version(serve_settings, model_dir, tiny_model):
    serve_settings.model_dir = model_dir
    serve_settings.model_poll_seconds = 0.1
    with TestClient(create_app(serve_settings)) as c:
        before = c.post("/v1/classify", json={"text": NOISE}).json()
        retrained = copy.deepcopy(tiny_model)
        retrained.topic_model.intercept = retrained.topic_model.intercept.copy()
        retrained.topic_model.intercept[retrained.classes_.index("W05")] -= 50  # W05 can no longer win
        save_model(retrained, model_dir)  # same metadata, so the same version string
        deadline = time.monotonic() + 10
        while c.post("/v1/classify", json={"text": NOISE}).json()["topic"] == before["topic"] and time.monotonic() < deadline:
            time.sleep(0.1)
        after = c.post("/v1/classify", json={"text": NOISE}).json()
        assert before["topic"] == "W05" and after["topic"] != "W05"


def test_an_edited_taxonomy_file_reroutes_the_served_model_on_reload(serve_settings, model_dir, tmp_path):
    import yaml

    from chuishao.resources import default_taxonomy_path

    raw = yaml.safe_load(default_taxonomy_path().read_text(encoding="utf-8"))
    city = tmp_path / "city.yaml"
    city.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    serve_settings.model_dir, serve_settings.taxonomy = model_dir, city
    with TestClient(create_app(serve_settings)) as c:
        first = c.post("/v1/classify", json={"text": NOISE}).json()
        assert first["topic"] == "W05" and first["departments"]["lead"] == "城管执法局"
        next(t for a in raw["areas"] for t in a["topics"] if t["code"] == "W05")["lead"] = "区综合执法队"
        city.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
        r = c.post("/admin/reload", headers={"X-API-Key": SERVE_KEY})
        assert r.status_code == 200 and r.json()["switched"] is True
        second = c.post("/v1/classify", json={"text": NOISE}).json()
        assert second["departments"]["lead"] == "区综合执法队"
        assert second["model_version"].startswith("tiny-test+routing-") and second["model_version"] != first["model_version"]
        assert c.get("/v1/taxonomy").status_code == 200


@pytest.mark.processes
def test_sighup_reloads_a_single_worker_service_instead_of_ending_it(model_dir, tiny_model, tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    port = free_port()
    env = {**os.environ, "CHUISHAO_MODEL_POLL_SECONDS": "0", "CHUISHAO_DB_URL": f"sqlite:///{tmp_path / 'fb.sqlite3'}"}
    server = subprocess.Popen([sys.executable, "-m", "chuishao.cli", "serve", "--model", str(model_dir), "--port", str(port),
                               "--no-access-log"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def ready_version() -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                return json.load(r)["model_version"]
        except OSError:
            return None

    try:
        deadline = time.monotonic() + 60
        while ready_version() is None and server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ready_version() == "tiny-test"
        _write_version(tiny_model, model_dir, "tiny-hup")
        server.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while ready_version() != "tiny-hup" and server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.poll() is None, server.stderr.read().decode()[-2000:]
        assert ready_version() == "tiny-hup"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_gate_policy_that_cannot_be_read_is_said_as_such(serve_settings, model_dir, tiny_model, tmp_path, monkeypatch):
    from chuishao.analysis.gates import GATES_ENV

    bad = tmp_path / "gates.yaml"
    bad.write_text("metric: false\n", encoding="utf-8")
    monkeypatch.setenv(GATES_ENV, str(bad))
    serve_settings.model_dir = model_dir
    with TestClient(create_app(serve_settings)) as c:
        _write_version(tiny_model, model_dir, "tiny-v9")
        r = c.post("/admin/reload", headers={"X-API-Key": SERVE_KEY})
        detail = r.json()["detail"]
        assert r.status_code == 409 and "the promotion gates could not run" in detail and "did you mean metrics" in detail
        assert "cannot be read" not in detail
