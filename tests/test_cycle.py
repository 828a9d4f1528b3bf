"""The analysts' whole cycle on the fixtures, as bench/bench_cycle.py runs it on the shared data:
import -> check -> train -> test (HTML) -> models add -> compare -> promote -> the running service
serves the promoted model (its directory watcher follows the registry's pointer)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import FIXTURES, serve_settings  # noqa: F401 - the fixture, used by name
from typer.testing import CliRunner

from chuishao.cli import app

runner = CliRunner()
TINY = ["--features.min_df", "1", "--features.max_features", "null", "--classifier.calibration_folds", "2"]


def _cli(*args: str | Path, ok: int = 0) -> dict[str, object]:
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == ok, f"chuishao {' '.join(map(str, args))}: {r.output}"
    return json.loads(r.stdout.splitlines()[-1])


def _served_version(client) -> str | None:
    r = client.get("/readyz")
    return r.json().get("model_version") if r.status_code == 200 else None


@pytest.mark.slow  # the whole analysts cycle with a running service: make test runs it, make check does not
def test_import_check_train_test_compare_promote_and_the_service_follows(tmp_path, serve_settings):  # noqa: F811
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from chuishao.serve.app import create_app

    lines = (FIXTURES / "labelled-mini.jsonl").read_text(encoding="utf-8").splitlines()
    (tmp_path / "city-export.jsonl").write_text("\n".join(ln for i, ln in enumerate(lines) if i % 4) + "\n", encoding="utf-8")
    (tmp_path / "held-out.jsonl").write_text("\n".join(ln for i, ln in enumerate(lines) if not i % 4) + "\n", encoding="utf-8")
    city, test, reg = tmp_path / "city.jsonl", tmp_path / "test.jsonl", tmp_path / "registry"
    assert _cli("import", tmp_path / "city-export.jsonl", "-o", city)["written"] == 25
    assert _cli("import", tmp_path / "held-out.jsonl", "-o", test)["written"] == 9
    checked = _cli("check", city, "--test", test, "-o", tmp_path / "check.json")
    assert checked["passed"] is True

    # the model in service: the same data with a much stronger regularisation
    _cli("train", "--data.train", city, "--data.exclude", test, "--classifier.C", "0.05", *TINY, "-o", tmp_path / "old")
    old = _cli("models", "add", tmp_path / "old", "--registry", reg)["version"]
    _cli("promote", old, "--registry", reg)
    settings = serve_settings.model_copy(update={"model_dir": reg / "current", "model_poll_seconds": 0.2})
    with TestClient(create_app(settings)) as client:
        assert _served_version(client) == old

        trained = _cli("train", "--data.train", city, "--data.exclude", test, *TINY, "-o", tmp_path / "next")
        assert trained["training_rows"] == 25
        figures = _cli("test", tmp_path / "next", test, "-o", tmp_path / "report")
        assert figures["n"] == 9 and figures["errors"] == 0 and 0 <= figures["macro_f1"] <= 1
        html = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
        assert "<img" in html and "macro" in html.lower()
        new = _cli("models", "add", tmp_path / "next", "--registry", reg)["version"]
        assert new != old
        compared = _cli("compare", old, new, "--data", test, "--registry", reg, "-o", tmp_path / "compare")
        assert (compared["a"], compared["b"], compared["n"]) == (old, new, 9)
        assert compared["bootstrap"]["macro_f1"]["low"] <= compared["figures"]["macro_f1"]["delta"] <= \
            compared["bootstrap"]["macro_f1"]["high"]
        assert (tmp_path / "compare" / "compare.json").is_file()
        promoted = _cli("promote", new, "--registry", reg, "--gate-data", test)
        assert promoted["to"] == new and promoted["forced"] is False

        deadline = time.monotonic() + 30
        while _served_version(client) != new and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _served_version(client) == new
        answer = client.post("/v1/classify", json={"text": "小区楼下烧烤店油烟太大，晚上还很吵"}).json()
        assert answer["model_version"] == new
