"""Property-based: no request body, however odd, makes the service answer 500."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chuishao.models.answer import RoutingAnswer
from chuishao.serve.app import create_app

# Han-heavy text as well as any Unicode (surrogates excluded: they cannot be sent as UTF-8 JSON).
ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)
HAN_TEXT = st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF) | st.sampled_from("，。！？ 0123456789abc"),
                   min_size=0, max_size=200)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | ANY_TEXT
JSON_VALUES = st.recursive(SCALARS,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
                           max_leaves=6)
FIELDS = st.fixed_dictionaries(
    {"text": ANY_TEXT | HAN_TEXT | JSON_VALUES},
    optional={"title": ANY_TEXT | st.none() | JSON_VALUES, "channel": ANY_TEXT | st.sampled_from(["hotline", "wechat"]),
              "id": ANY_TEXT | JSON_VALUES, "extra": JSON_VALUES},
)


@pytest.fixture(scope="module")
def client(tiny_model_dir, tmp_path_factory):
    from chuishao.serve.settings import ServeSettings

    db = tmp_path_factory.mktemp("fuzz") / "fb.sqlite3"
    settings_ = ServeSettings(model_dir=tiny_model_dir, db_url=f"sqlite:///{db}", model_poll_seconds=0, max_batch=4)
    with TestClient(create_app(settings_), raise_server_exceptions=False) as c:
        yield c


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=FIELDS | JSON_VALUES)
def test_classify_never_500(client, body):
    r = client.post("/v1/classify", json=body)
    assert r.status_code in (200, 413, 422), (r.status_code, r.text)
    if r.status_code == 200:
        answer = RoutingAnswer.model_validate(r.json())
        assert answer.topic and answer.model_version == "tiny-test" and answer.error is None
    else:
        assert r.json()["detail"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(FIELDS, max_size=6))
def test_batch_never_500(client, items):
    r = client.post("/v1/classify/batch", json={"items": items})
    assert r.status_code in (200, 413, 422), (r.status_code, r.text)
    if r.status_code == 200:
        assert len(r.json()["answers"]) == len(items)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_raw_bytes_never_500(client, raw):
    r = client.post("/v1/classify", content=raw, headers={"content-type": "application/json"})
    # 400: bytes FastAPI cannot even decode as a body (e.g. some invalid UTF-8)
    assert r.status_code in (200, 400, 413, 422), (r.status_code, r.text)
    json.loads(r.text)
