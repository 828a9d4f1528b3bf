"""Shared fixtures: a tiny model trained on a hand-written fixture, and the ../shared data if present."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from chuishao.config import ChuishaoConfig
from chuishao.models.classifier import ChuishaoClassifier
from chuishao.taxonomy import Taxonomy
from chuishao.training.data import read_labelled

REPO = Path(__file__).resolve().parent.parent
# the feedback store keys message-id pseudonyms with it; without it a key file would be made in the user's data directory
os.environ.setdefault("CHUISHAO_ID_KEY", "chuishao-tests-id-key")
FIXTURES = REPO / "data" / "fixtures"


def installed(*modules: str, why: str) -> pytest.MarkDecorator:
    """Skip where one of ``modules`` is not installed, found without importing it: collecting a test file marked
    this way does not load torch where the run deselects its tests (make check)."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(bool(missing), reason=f"{why}: {', '.join(missing)} not installed")


TRANSFORMER_EXTRA = ("torch", "transformers", "tokenizers", "safetensors", "datasets", "onnxruntime", "onnx")


def load_script(relative: str):
    """A bench/ or tools/ script (not a package module) loaded as a module, for its functions."""
    path = REPO / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
SHARED_DATA = REPO.parent / "shared" / "data"


def tiny_config() -> ChuishaoConfig:
    cfg = ChuishaoConfig()
    cfg.features.min_df = 1
    cfg.features.max_features = None
    cfg.classifier.calibration_folds = 2
    return cfg


@pytest.fixture(scope="session")
def mini_data():
    return read_labelled(FIXTURES / "labelled-mini.jsonl")


@pytest.fixture(scope="session")
def tiny_model(mini_data) -> ChuishaoClassifier:
    """A model trained in about a second on data/fixtures/labelled-mini.jsonl (34 messages)."""
    model = ChuishaoClassifier(tiny_config(), Taxonomy.load())
    model.fit(mini_data.texts, mini_data.labels, titles=mini_data.titles, subs=mini_data.subs, weights=mini_data.weights)
    model.metadata["version"] = "tiny-test"
    return model


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model, tmp_path_factory) -> Path:
    from chuishao.models.persistence import save_model

    return save_model(tiny_model, tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "whistle" / "train.jsonl").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA} (../shared/data beside the repo): skipping real-data test")
    return SHARED_DATA


# ---- the routing service (tests/test_serve*.py) ---------------------------------------------
SERVE_KEY = "test-key-not-secret"


@pytest.fixture()
def serve_settings(tiny_model_dir, tmp_path):
    """Service settings on the tiny model, a fresh SQLite file and a test API key."""
    pytest.importorskip("fastapi")
    from chuishao.serve.settings import ServeSettings

    return ServeSettings(model_dir=tiny_model_dir, db_url=f"sqlite:///{tmp_path / 'feedback.sqlite3'}",
                         api_keys=[SERVE_KEY], model_poll_seconds=0, max_batch=8, max_body_bytes=200_000)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(app) -> Iterator[str]:
    """Run an app under a real uvicorn server in a thread; yields its base URL."""
    import threading
    import time

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "server did not start"
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


# a real PostgreSQL server for the stores' tests (feedback, similar reports)
PG_BIN = [Path(p) for p in ("/usr/local/bin", "/usr/lib/postgresql/15/bin", "/usr/bin")]


def _binary(name: str) -> str | None:
    return shutil.which(name) or next((str(d / name) for d in PG_BIN if (d / name).is_file()), None)


class PgServer:
    def __init__(self, data: Path, port: int, user: str | None) -> None:
        self.data, self.port, self.user = data, port, user
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [*args]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._run(_binary("pg_ctl") or "pg_ctl", "-D", str(self.data), "-w", "-t", "30", "-l", str(self.data / "log"),
                  "-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        self._run(_binary("pg_ctl") or "pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop")


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server (initdb into a temporary directory, a free loopback port), one per test process.
    Skips with the reason where the binaries or the psycopg driver are missing, or where no unprivileged user
    can run the server (as root)."""
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is missing: pip install '.[postgres]'")
    initdb = _binary("initdb")
    if initdb is None or _binary("pg_ctl") is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: install PostgreSQL to run this test")
    user = None
    if os.geteuid() == 0:  # postgres refuses to run as root: its own user, else nobody
        for name in ("postgres", "nobody"):
            try:
                pwd.getpwnam(name)
            except KeyError:
                continue
            user = name
            break
        if user is None or shutil.which("runuser") is None:
            pytest.skip("running as root without a postgres/nobody user or runuser: PostgreSQL cannot be started")
    data = Path(tempfile.mkdtemp(prefix="chuishao-pg-"))
    if user is not None:
        shutil.chown(data, user)
    server = PgServer(data, free_port(), user)
    try:
        server._run(initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        server.start()
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(data, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {exc.stderr.decode(errors='replace')[-500:]}")
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(data, ignore_errors=True)
