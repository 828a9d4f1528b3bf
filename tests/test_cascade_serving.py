"""A cascade directory is served, reloaded, watched, registered, promoted and rolled back like a classical one:
the files of a model directory come from its manifest (``persistence.model_files``), subfolders included."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import SERVE_KEY, TRANSFORMER_EXTRA, installed
from test_cascade import NOISE, built  # noqa: F401 - the tiny cascade, built once for this module
from typer.testing import CliRunner

from chuishao.cli import app
from chuishao.models.cascade import CascadeParams
from chuishao.models.persistence import load_model, read_manifest, save_cascade

pytestmark = [pytest.mark.transformer,  # torch and onnxruntime, as test_cascade.py
              installed(*TRANSFORMER_EXTRA, why="needs the transformer extra")]

SERVE_ENV = ("CHUISHAO_MODEL_DIR", "CHUISHAO_DB_URL", "CHUISHAO_MODEL_FALLBACK_DIR", "CHUISHAO_TAXONOMY",
             "PROMETHEUS_MULTIPROC_DIR")
runner = CliRunner()


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def other(built, tmp_path_factory) -> Path:  # noqa: F811 - the imported fixture
    """A second cascade from the same parts with another mix weight: another version, the same codes."""
    d: Path = built["dir"]  # type: ignore[assignment]
    params = CascadeParams.from_state(json.loads((d / "cascade.json").read_text(encoding="utf-8")))
    int8 = bool(read_manifest(d)["transformer"]["int8"])  # type: ignore[index]
    out = tmp_path_factory.mktemp("other") / "cascade"
    save_cascade(d / "classical", d / "transformer", dataclasses.replace(params, weight=0.25 if params.weight != 0.25
                                                                          else 0.5), out, int8=int8)
    assert read_manifest(out)["version"] != read_manifest(d)["version"]
    return out


def test_serve_keeps_a_verified_copy_of_a_cascade(built, tmp_path, monkeypatch) -> None:  # noqa: F811
    """`chuishao serve --model CASCADE` copied model.json, which a cascade lacks: FileNotFoundError at start."""
    pytest.importorskip("fastapi")
    from chuishao.serve import supervisor, verified_copy

    for name in SERVE_ENV:  # serve passes settings to its workers by environment: put it back afterwards
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(supervisor, "run", lambda app, **options: None)
    d: Path = built["dir"]  # type: ignore[assignment]
    result = runner.invoke(app, ["serve", "--model", str(d), "--db-url", f"sqlite:///{tmp_path / 'fb.sqlite3'}"])
    assert result.exit_code == 0, (result.output, result.exception)
    copy = verified_copy.latest(Path(os.environ["CHUISHAO_MODEL_FALLBACK_DIR"]))
    assert copy is not None and verified_copy.verify(copy) == verified_copy.verify(d)
    assert _files(copy) == _files(d)  # every file, in its subfolder
    assert load_model(copy).version == read_manifest(d)["version"]


def test_reload_watch_and_fallback_of_a_cascade(built, other, tmp_path) -> None:  # noqa: F811
    """/admin/reload read model.json for its gates (409 on a cascade); the change detector watched the classical
    files only, so a corrupted encoder went unnoticed; the verified copy after a reload holds the new cascade."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from chuishao.serve import verified_copy
    from chuishao.serve.app import create_app
    from chuishao.serve.model_holder import ModelHolder
    from chuishao.serve.settings import ServeSettings

    a = shutil.copytree(built["dir"], tmp_path / "a")  # type: ignore[arg-type]
    b = shutil.copytree(other, tmp_path / "b")
    link = tmp_path / "current"
    link.symlink_to(a)
    copies = tmp_path / "copies"
    settings = ServeSettings(model_dir=link, model_fallback_dir=copies, db_url=f"sqlite:///{tmp_path / 'fb.sqlite3'}",
                             api_keys=[SERVE_KEY], model_poll_seconds=0, max_batch=8, max_body_bytes=200_000)
    key = {"X-API-Key": SERVE_KEY}
    version_a, version_b = read_manifest(a)["version"], read_manifest(b)["version"]
    with TestClient(create_app(settings)) as c:
        assert c.post("/v1/classify", json={"text": NOISE}, headers=key).json()["model_version"] == version_a
        tmp = tmp_path / "next"
        tmp.symlink_to(b)
        os.replace(tmp, link)  # repointed, as the registry does
        r = c.post("/admin/reload", headers=key)
        assert r.status_code == 200 and r.json()["model_version"] == version_b, r.text
        assert c.post("/v1/classify", json={"text": NOISE}, headers=key).json()["model_version"] == version_b
    copy = verified_copy.latest(copies)
    assert copy is not None and verified_copy.verify(copy) == verified_copy.verify(b) and _files(copy) == _files(b)

    holder = ModelHolder(link, fallback_dir=copies, gazetteer="none")
    holder.start()
    assert holder.disk_state().state == "same"
    tokenizer = b / "transformer" / "tokenizer_config.json"
    tokenizer.write_text(tokenizer.read_text(encoding="utf-8") + "\n ", encoding="utf-8")  # another size and time
    state = holder.disk_state()
    assert state.state == "broken" and "tokenizer_config.json" in str(state.error)


def test_registry_add_promote_rollback_of_cascades(built, other, tmp_path) -> None:  # noqa: F811
    """`chuishao models add CASCADE` failed: "model.json: No such file or directory"."""
    reg = str(tmp_path / "reg")
    versions = []
    for d in (built["dir"], other):
        r = runner.invoke(app, ["models", "add", str(d), "--registry", reg])
        assert r.exit_code == 0, r.output
        added = json.loads(r.stdout)
        assert added["added"] and _files(Path(added["path"])) == _files(Path(d))  # type: ignore[arg-type]
        versions.append(added["version"])
    r = runner.invoke(app, ["models", "add", str(other), "--registry", reg])
    assert r.exit_code == 0 and not json.loads(r.stdout)["added"], r.output  # the same model again: a no-op
    r = runner.invoke(app, ["promote", versions[0], "--registry", reg])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["promote", versions[1], "--registry", reg])  # gated against the cascade in service
    assert r.exit_code == 0, r.output
    assert "gate codes: ok" in r.output and "gate taxonomy: ok" in r.output
    assert load_model(tmp_path / "reg" / "current").version == versions[1]
    r = runner.invoke(app, ["rollback", "--registry", reg])
    assert r.exit_code == 0, r.output
    assert load_model(tmp_path / "reg" / "current").version == versions[0]
    r = runner.invoke(app, ["models", "list", "--registry", reg])
    assert r.exit_code == 0 and all(v in r.output for v in versions), r.output
    r = runner.invoke(app, ["models", "list", "--registry", reg, "--json"])
    rows = {row["version"]: row for row in map(json.loads, r.stdout.splitlines())}
    cascade_manifest = json.loads((Path(built["dir"]) / "manifest.json").read_text(encoding="utf-8"))
    part = json.loads((Path(built["dir"]) / "classical" / "manifest.json").read_text(encoding="utf-8"))
    row = rows[versions[0]]
    assert row["data_fingerprint"] == part["data_fingerprint"] and row["data_fingerprint"]  # from its classical part
    assert row["heldout_macro_f1"] == cascade_manifest["heldout"]["cascade"]["macro_f1"]
