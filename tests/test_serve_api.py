"""The service API on the tiny model: answers, batches, taxonomy, health, metrics, bad requests."""

from __future__ import annotations

import json
import logging

import pytest

pytest.importorskip("fastapi")
from conftest import SERVE_KEY
from fastapi.testclient import TestClient

from chuishao.models.answer import RoutingAnswer
from chuishao.serve.app import create_app

NOISE = "每天晚上广场舞音响声音特别大，严重扰民，老人孩子都无法休息。"
KEY = {"X-API-Key": SERVE_KEY}


@pytest.fixture()
def client(serve_settings):
    with TestClient(create_app(serve_settings)) as c:
        yield c


def test_classify_returns_a_routing_answer_with_model_version(client):
    r = client.post("/v1/classify", json={"text": NOISE, "title": "广场舞噪音", "channel": "hotline", "id": "m-1"})
    assert r.status_code == 200, r.text
    answer = RoutingAnswer.model_validate(r.json())
    assert set(r.json()) == set(RoutingAnswer.model_fields)  # the same fields as `chuishao tag` records
    assert answer.id == "m-1" and answer.topic == "W05" and answer.model_version == "tiny-test"
    assert answer.departments.lead == "城管执法局" and len(answer.top) == 3 and answer.evidence
    assert r.headers["server-timing"].startswith("app;dur=")


def test_batch_answers_in_order_and_marks_unusable_items(client):
    items = [{"text": NOISE, "id": "a"}, {"text": "hello world, no chinese here", "id": "b"},
             {"text": "楼下饭店的油烟直接排进居民楼，油烟味很重，窗户都不敢开。", "id": "c", "channel": "wechat"}]
    r = client.post("/v1/classify/batch", json={"items": items})
    assert r.status_code == 200, r.text
    answers = r.json()["answers"]
    assert [a["id"] for a in answers] == ["a", "b", "c"]
    assert answers[0]["topic"] == "W05" and answers[2]["topic"] == "W06"
    assert "not Chinese" in answers[1]["error"] and answers[1]["topic"] is None
    assert all(a["model_version"] == "tiny-test" for a in answers)


def test_concurrent_requests_get_their_own_answers(client):
    from concurrent.futures import ThreadPoolExecutor

    texts = {f"n{i}": NOISE if i % 2 else "楼下饭店的油烟直接排进居民楼，油烟味很重，窗户都不敢开。" for i in range(24)}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda kv: client.post("/v1/classify", json={"text": kv[1], "id": kv[0]}).json(),
                                texts.items()))
    for (mid, _), a in zip(texts.items(), answers, strict=True):
        assert a["id"] == mid and a["topic"] == ("W05" if int(mid[1:]) % 2 else "W06")


def test_taxonomy_health_readiness(client):
    tax = client.get("/v1/taxonomy").json()
    codes = [t["code"] for t in tax["topics"]]
    assert len(codes) == 16 and codes[-1] == "OTHER" and len(tax["areas"]) == 3
    w06 = next(t for t in tax["topics"] if t["code"] == "W06")
    assert {s["code"] for s in w06["subs"]} == {"W06a", "W06b"} and w06["lead"] in tax["departments"]
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] and ready.json()["model_version"] == "tiny-test"
    for path in ("/healthz", "/readyz", "/"):  # load balancers probe with HEAD
        head = client.head(path)
        assert head.status_code == 200 and head.content == b"", path


def test_metrics_count_requests_topics_and_review(client):
    client.post("/v1/classify", json={"text": NOISE})
    client.post("/v1/classify", json={"text": NOISE, "channel": "made-up-channel"})
    client.post("/v1/classify", json={"text": ""})
    client.post("/v1/classify", content=b"x" * 300_000, headers={"content-type": "application/json"})  # body limit
    text = client.get("/metrics").text
    assert 'chuishao_http_requests_total{endpoint="/v1/classify",method="POST",status="413"} 1.0' in text
    assert 'chuishao_http_requests_total{endpoint="/v1/classify",method="POST",status="200"} 2.0' in text
    assert 'chuishao_http_requests_total{endpoint="/v1/classify",method="POST",status="422"} 1.0' in text
    assert 'chuishao_topic_total{topic="W05"} 2.0' in text
    assert 'chuishao_answers_total{channel="other"} 1.0' in text  # free-form channel: bounded label
    assert "chuishao_needs_review_total" in text and 'chuishao_model_info{version="tiny-test"} 1.0' in text
    assert 'chuishao_http_request_duration_seconds_bucket{endpoint="/v1/classify",le="0.01"}' in text


def test_openapi_has_chinese_examples(client):
    spec = client.get("/openapi.json").text
    assert "烧烤店" in json.loads(json.dumps(spec)) and "/v1/feedback" in spec
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("body, status, needle", [
    ({"text": ""}, 422, "empty text"),
    ({"text": "   \n "}, 422, "empty text"),
    ({"text": "字" * 20_001}, 413, "limit is 20000"),
    ({"text": NOISE, "title": "题" * 501}, 413, "title too long"),
    ({"text": 123}, 422, "string"),
    ({"text": NOISE, "title": ["x"]}, 422, "string"),
    ({"text": NOISE, "id": 5}, 422, "string"),
    ({"text": NOISE, "channel": "hot line!"}, 422, "pattern"),
    ({"text": NOISE, "lang": "zh"}, 422, "Extra inputs"),
    ({}, 422, "empty text"),
    (["not", "an", "object"], 422, "valid dictionary"),
    ({"text": "only latin letters here"}, 422, "not Chinese"),
])
def test_bad_single_requests_are_4xx_with_a_message(client, body, status, needle):
    r = client.post("/v1/classify", json=body)
    assert r.status_code == status, r.text
    assert needle in r.text
    assert "字字字字字" not in r.text  # the input is not echoed back


def test_invalid_json_and_oversized_bodies(client):
    r = client.post("/v1/classify", content=b'{"text": "abc', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.text
    r = client.post("/v1/classify", content=b"\xff\xfe garbage", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = client.post("/v1/classify", content="text=abc", headers={"content-type": "text/plain"})
    assert r.status_code == 422 and "Content-Type: application/json (got text/plain)" in r.text
    r = client.post("/v1/classify", content="text=abc", headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 422 and "(got application/x-www-form-urlencoded)" in r.text  # what curl -d sends
    r = client.post("/v1/classify", json={"title": "小区停车位被占，晚上回家没地方停车"})  # a title alone, no text field
    assert r.status_code == 200 and r.json()["topic"], r.text
    for body, extra in (('{"text": "楼下烧烤店油烟很大"}'.encode("gbk"), {}),
                        (__import__("gzip").compress(b'{"text": "abc"}'), {"content-encoding": "gzip"})):
        r = client.post("/v1/classify", content=body, headers={"content-type": "application/json", **extra})
        assert r.status_code == 422 and "UTF-8, uncompressed" in r.json()["detail"], r.text
    big = json.dumps({"items": [{"text": "字" * 19_000}] * 8}).encode()  # over max_body_bytes=200,000
    r = client.post("/v1/classify/batch", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "too large" in r.json()["detail"]
    # sent in chunks with no Content-Length: found while reading, still a 413 (not FastAPI's 400)
    for path in ("/v1/classify", "/v1/classify/batch"):
        r = client.post(path, content=(big[i:i + 65_536] for i in range(0, len(big), 65_536)),
                        headers={"content-type": "application/json"})
        assert r.status_code == 413 and "too large" in r.json()["detail"], (path, r.status_code, r.text)


def test_bad_batches(client):
    r = client.post("/v1/classify/batch", json={"items": [{"text": NOISE}] * 9})
    assert r.status_code == 413 and "limit is 8" in r.json()["detail"]
    assert client.post("/v1/classify/batch", json={"items": []}).status_code == 422
    assert client.post("/v1/classify/batch", json=[{"text": NOISE}]).status_code == 422
    r = client.post("/v1/classify/batch", json={"items": [{"text": NOISE}, {"text": "字" * 20_001}]})
    assert r.status_code == 413 and "items[1]" in r.json()["detail"]


def test_classification_can_require_a_key(serve_settings):
    serve_settings.classify_requires_key = True
    with TestClient(create_app(serve_settings)) as c:
        assert c.post("/v1/classify", json={"text": NOISE}).status_code == 401
        assert c.post("/v1/classify", json={"text": NOISE}, headers={"X-API-Key": "nope"}).status_code == 401
        assert c.post("/v1/classify", json={"text": NOISE}, headers=KEY).status_code == 200
        assert c.post("/v1/classify", json={"text": NOISE},
                      headers={"Authorization": f"Bearer {SERVE_KEY}"}).status_code == 200


def test_logs_never_hold_unmasked_phone_or_id_numbers(serve_settings, caplog):
    """Force an internal error whose message carries the text: the logged traceback is masked."""
    phone, id_card = "13812345678", "110105199003071234"
    app = create_app(serve_settings)

    def broken_route(texts, *, titles=None, ids=None):
        raise RuntimeError(f"cannot route {texts[0]}")

    caplog.set_level(logging.DEBUG)
    with TestClient(app, raise_server_exceptions=False) as c:
        app.state.holder.require().model.route = broken_route
        r = c.post("/v1/classify", json={"text": f"我的电话{phone}，身份证{id_card}，楼下噪音扰民"})
        logging.getLogger("chuishao.serve").info("caller phone %s", phone)
    assert r.status_code == 500
    logged = "\n".join(rec.getMessage() + (rec.exc_text or "") for rec in caplog.records)
    assert "cannot route" in logged and "<PHONE>" in logged  # the error was logged ...
    assert phone not in logged and id_card not in logged  # ... masked
    assert phone not in caplog.text and id_card not in caplog.text


def test_a_lone_surrogate_is_routed_not_a_server_error(client):
    """A client that cuts an emoji's UTF-16 pair in half sends "\\ud83d" alone (valid JSON)."""
    body = '{"text": "每天晚上广场舞音响声音特别大\\ud83d，严重扰民", "title": "噪音\\ude00", "id": "s"}'
    r = client.post("/v1/classify", content=body.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["topic"] == "W05"


def test_a_failing_request_does_not_fail_the_others_scored_with_it(serve_settings):
    """Concurrent requests are scored together; when scoring one of them raises, only that one fails."""
    from concurrent.futures import ThreadPoolExecutor

    with TestClient(create_app(serve_settings), raise_server_exceptions=False) as c:
        model = c.app.state.holder.require().model
        real_route = model.route

        def route(texts, *, titles=None, ids=None):
            if "boom" in ids:
                raise RuntimeError("scoring failed")
            return real_route(texts, titles=titles, ids=ids)

        model.route = route
        try:
            ids = ["boom" if i == 5 else f"n{i}" for i in range(24)]
            with ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(lambda i: c.post("/v1/classify", json={"text": NOISE, "id": i}).status_code, ids))
        finally:
            del model.route
        assert statuses[5] == 500
        assert statuses[:5] + statuses[6:] == [200] * 23


def test_with_several_workers_only_the_model_in_service_is_reported_as_such(tmp_path):
    import os
    import subprocess
    import sys

    # multi-process metrics are chosen when prometheus_client is imported: a fresh interpreter
    script = ("import warnings; warnings.simplefilter('error')\n"
              "from chuishao.serve.metrics import ServeMetrics\n"
              "m = ServeMetrics(); m.model_switched(None, 'v1'); m.model_switched('v1', 'v2')\n"
              "print(m.render().decode())")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    lines = {line.split(" ")[0]: float(line.split(" ")[1])
             for line in out.splitlines() if line.startswith("chuishao_model_info{")}
    assert lines == {'chuishao_model_info{version="v1"}': 0.0, 'chuishao_model_info{version="v2"}': 1.0}


def test_workers_replaced_by_sighup_stop_reporting_their_model(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    def worker(script: str) -> str:
        return subprocess.run([sys.executable, "-c", "from chuishao.serve.metrics import ServeMetrics\n" + script],
                              env=env, capture_output=True, text=True, check=True).stdout

    worker("m = ServeMetrics(); m.model_switched(None, 'old'); m.process_ended()")  # a worker SIGHUP replaced
    out = worker("m = ServeMetrics(); m.model_switched(None, 'new'); print(m.render().decode())")
    info = {line.split(" ")[0]: float(line.split(" ")[1]) for line in out.splitlines() if line.startswith("chuishao_model_info{")}
    assert info == {'chuishao_model_info{version="new"}': 1.0}
