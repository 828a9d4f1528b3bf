"""The feedback store against a real PostgreSQL server, started by conftest's `postgres` fixture."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")
pytestmark = pytest.mark.processes

@pytest.fixture()
def pg_url(postgres):
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres.url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS chuishao_feedback"))
    engine.dispose()
    return postgres.url


def fb(i: int, who: str) -> dict[str, object]:
    return {"message_id": f"{who}-{i}", "topic": "W06", "sub": "W06a", "lead": "生态环境局", "assist": ["城管执法局"],
            "text": f"楼下烧烤店油烟扰民，第{i}次反映。", "title": None, "channel": "hotline"}


def test_store_and_export_on_postgresql(pg_url, tmp_path):
    from chuishao.serve.feedback_store import FeedbackStore, export_training

    store = FeedbackStore(pg_url)
    try:
        store.add(**fb(1, "a"))
        store.add(**{**fb(1, "a"), "topic": "W05", "sub": None, "text": None})  # a correction without text
        assert store.count() == 2
        summary = export_training(store, tmp_path / "out.jsonl")
        assert summary == {"written": 1, "skipped_without_text": 0, "conflicting_ids": 1, "conflicting_texts": 0,
                           "left_out_conflicting": 0}
        assert '"label": "W05"' in (tmp_path / "out.jsonl").read_text(encoding="utf-8")
    finally:
        store.close()


WRITER = """
import sys
from chuishao.serve.feedback_store import FeedbackStore
store = FeedbackStore(sys.argv[1])
for i in range(int(sys.argv[3])):
    store.add(message_id=f"{sys.argv[2]}-{i}", topic="W06", assist=[], text="油烟扰民")
store.close()
"""


def test_two_worker_processes_create_the_schema_and_write_at_once(pg_url):
    from chuishao.serve.feedback_store import FeedbackStore

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                                         os.environ.get("PYTHONPATH", "")])}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, pg_url, name, "100"], env=env, stderr=subprocess.PIPE)
               for name in ("w1", "w2")]
    for w in writers:
        assert w.wait(timeout=60) == 0, w.stderr.read().decode()[-2000:] if w.stderr else ""
    store = FeedbackStore(pg_url)
    try:
        assert store.count() == 200
        assert len({r.message_id for r in store.latest_per_message()}) == 200
    finally:
        store.close()


def test_the_store_reconnects_after_a_server_restart(postgres, pg_url):
    from chuishao.serve.feedback_store import FeedbackStore

    store = FeedbackStore(pg_url, strict=False)
    try:
        store.add(**fb(1, "before"))
        postgres.stop()
        try:
            with pytest.raises(Exception, match="cannot store"):
                store.add(**fb(2, "during"))  # StoreUnavailable: the route answers 503
            assert store.up is False
        finally:
            postgres.start()
        deadline = time.monotonic() + 10
        while True:  # the pool's dead connections are replaced (pool_pre_ping), no restart of the service
            try:
                store.add(**fb(3, "after"))
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert store.up is True and store.count() == 2
    finally:
        store.close()
