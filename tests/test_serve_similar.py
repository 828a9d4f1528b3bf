"""Similar recent reports: the store in the feedback database, and POST /v1/similar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

pytest.importorskip("fastapi")
from conftest import SERVE_KEY
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, delete, select
from sqlalchemy.orm import Session

from chuishao.analysis.events_config import EventsConfig
from chuishao.serve.app import create_app
from chuishao.serve.feedback_store import Base
from chuishao.serve.similar_store import Report, ReportBand, SimilarStore, StoreMark

KEY = {"X-API-Key": SERVE_KEY}
# authored for these tests: three wordings of one night-work complaint, and an unrelated one
NIGHT = ["幸福路地铁工地每天晚上十一点以后还在打桩，噪音特别大，孩子根本睡不着，请相关部门管一管。",
         "幸福路地铁工地每天晚上十一点以后还在打桩施工，噪音太大了，孩子睡不着觉，希望有关部门管管。",
         "幸福路地铁工地每天晚上十一点后仍在打桩，噪音非常大，家里孩子根本睡不着，请相关部门处理。"]
OTHER = "请问灵活就业人员的医疗保险怎么在网上缴费？缴费基数是多少？"
T0 = datetime(2026, 11, 1, 23, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.processes)])
def store(request, tmp_path):
    """The store on a SQLite file, and on a real PostgreSQL server (conftest's `postgres`), emptied first."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    else:
        pytest.importorskip("psycopg", reason="the PostgreSQL driver is missing: pip install '.[postgres]'")
        engine = create_engine(request.getfixturevalue("postgres").url)
        Base.metadata.drop_all(engine, tables=[ReportBand.__table__, Report.__table__, StoreMark.__table__])
    yield SimilarStore(engine, EventsConfig(whistle_size=3), retention_days=30)
    engine.dispose()


def _add(store, text, place="东城区/和平街道", when=T0, topic="W05", lead="城管执法局", rid=None, record=True):
    return store.lookup(text, None, topic, place, when, lead=lead, assist=["公安分局"], report_id=rid, record=record)


def test_paraphrases_are_similar_and_make_one_event(store):
    first = _add(store, NIGHT[0], rid="a1")
    assert first.similar == [] and first.event_size == 1 and first.event_id and not first.whistle
    second = _add(store, NIGHT[1], when=T0 + timedelta(hours=2), rid="a2")
    assert [s.id for s in second.similar] == ["a1"] and 0.45 <= second.similar[0].similarity < 1
    assert second.event_id == first.event_id and second.event_size == 2
    third = _add(store, NIGHT[2], when=T0 + timedelta(days=1), rid="a3")
    assert third.event_id == first.event_id and third.event_size == 3
    assert third.whistle and third.whistle_reasons == ["3 reports >= 3"]
    assert third.similar[0].similarity >= third.similar[-1].similarity


def test_other_place_topic_time_or_text_is_not_similar(store):
    _add(store, NIGHT[0], rid="a1")
    for answer in (_add(store, NIGHT[1], place="西城区/月坛街道", record=False),
                   _add(store, NIGHT[1], place=None, record=False),
                   _add(store, NIGHT[1], topic="W06", record=False),
                   _add(store, NIGHT[1], when=T0 + timedelta(days=8), record=False),
                   _add(store, OTHER, record=False)):
        assert answer.similar == [] and answer.event_id is None and answer.event_size == 1


def test_look_only_stores_nothing_but_counts_itself(store):
    _add(store, NIGHT[0], rid="a1")
    look = _add(store, NIGHT[1], record=False)
    assert look.event_size == 2 and not look.stored
    with Session(store.engine) as s:
        assert len(s.scalars(select(Report)).all()) == 1


def test_several_lead_departments_make_a_whistle(store):
    _add(store, NIGHT[0], lead="城管执法局")
    answer = _add(store, NIGHT[1], lead="住房和城乡建设局")
    assert answer.whistle and answer.whistle_reasons == ["2 departments >= 2"]


def test_retention_drops_old_reports_and_their_bands(store):
    _add(store, NIGHT[0], when=T0 - timedelta(days=40), rid="old")
    _add(store, NIGHT[1], when=T0, rid="new")
    assert store.purge(T0) == 1
    with Session(store.engine) as s:
        assert [r.report_id for r in s.scalars(select(Report))] == ["new"]
        pks = {b.report_pk for b in s.scalars(select(ReportBand))}
        assert len(pks) == 1


def test_place_is_stored_masked_and_no_text_is_stored(store):
    _add(store, NIGHT[0], place="和平街道 13812345678")
    with Session(store.engine) as s:
        row = s.scalars(select(Report)).one()
    assert "13812345678" not in (row.place or "") and "<PHONE>" in (row.place or "")
    assert not hasattr(row, "text") and len(row.signature) == 4 * store.config.num_perm


def test_similar_endpoint(serve_settings):
    with TestClient(create_app(serve_settings)) as c:
        body = {"text": NIGHT[0], "id": "a1", "place": "东城区/和平街道", "time": "2026-11-01T23:00:00+08:00"}
        assert c.post("/v1/similar", json=body).status_code == 401
        first = c.post("/v1/similar", json=body, headers=KEY)
        assert first.status_code == 200, first.text
        assert first.json()["stored"] and first.json()["event_size"] == 1 and first.json()["answer"]["topic"]
        again = c.post("/v1/similar", json={**body, "text": NIGHT[1], "id": "a2", "record": False}, headers=KEY)
        got = again.json()
        assert [s["id"] for s in got["similar"]] == ["a1"] and got["event_id"] == first.json()["event_id"]
        assert got["event_size"] == 2 and not got["stored"]
        assert c.post("/v1/similar", json={**body, "time": "yesterday"}, headers=KEY).status_code == 422
        assert c.post("/v1/similar", json={**body, "text": "   "}, headers=KEY).status_code == 422


def test_similar_endpoint_takes_the_place_from_the_answer(serve_settings, tmp_path):
    import yaml

    from tests.test_gazetteer import CITY

    city = tmp_path / "city.yaml"
    city.write_text(yaml.safe_dump(CITY, allow_unicode=True), encoding="utf-8")

    def at(place: str, text: str) -> str:
        return text.replace("幸福路", place + "幸福路")

    settings = serve_settings.model_copy(update={"gazetteer": str(city)})
    with TestClient(create_app(settings)) as c:
        def post(text: str, record: bool = True, **extra) -> dict:
            r = c.post("/v1/similar", json={"text": text, "time": "2026-11-01T23:00:00+08:00", "record": record, **extra},
                       headers=KEY)
            assert r.status_code == 200, r.text
            return r.json()

        first = post(at("东湖区柳岸街道", NIGHT[0]), id="a1")
        assert first["place"] == "东湖区/柳岸街道" and first["answer"]["jurisdiction"]["street"] == "柳岸街道"
        same = post(at("东湖区柳岸街道", NIGHT[1]), record=False)
        assert [s["id"] for s in same["similar"]] == ["a1"] and same["event_id"] == first["event_id"]
        other = post(at("东湖区城关镇", NIGHT[1]), record=False)
        assert other["place"] == "东湖区/城关镇" and other["similar"] == [] and other["event_size"] == 1
        unknown = post(NIGHT[0], id="u1")  # names no place: joins only reports without one
        assert unknown["place"] is None and unknown["similar"] == [] and unknown["event_id"] != first["event_id"]
        assert [s["id"] for s in post(NIGHT[1], record=False)["similar"]] == ["u1"]
        given = post(at("东湖区柳岸街道", NIGHT[1]), record=False, place="东湖区/城关镇")  # the request's place wins
        assert given["place"] == "东湖区/城关镇" and given["similar"] == []


def _rows(store) -> list[Report]:
    with Session(store.engine) as s:
        return list(s.scalars(select(Report).order_by(Report.pk)))


def test_a_report_dated_in_the_future_does_not_empty_the_store(store):
    now = datetime.now(UTC)
    _add(store, NIGHT[0], when=now - timedelta(hours=2), rid="a1")
    _add(store, OTHER, when=now - timedelta(hours=1), rid="b1")
    fresh = SimilarStore(store.engine, store.config, retention_days=30)  # its first write purges
    _add(fresh, NIGHT[1], when=now + timedelta(days=365 * 50), rid="c1")
    assert [r.report_id for r in _rows(store)] == ["a1", "b1", "c1"]


def test_an_id_sent_again_is_stored_and_counted_once(store):
    first = _add(store, NIGHT[0], rid="t-1")
    for _ in range(3):  # a client's retries, an operator's second click
        again = _add(store, NIGHT[0], rid="t-1")
        assert again.repeated and again.stored and again.similar == []
        assert again.event_id == first.event_id and again.event_size == 1 and not again.whistle
    look = _add(store, NIGHT[0], rid="t-1", record=False)  # look only, under an id already stored: no self-count
    assert look.repeated and look.event_size == 1 and look.similar == []
    other = _add(store, NIGHT[1], rid="t-2")
    assert not other.repeated and other.event_size == 2 and [s.id for s in other.similar] == ["t-1"]
    assert [r.report_id for r in _rows(store)] == ["t-1", "t-2"]


def test_an_id_holding_a_phone_number_is_stored_and_answered_as_a_pseudonym(store):
    _add(store, NIGHT[0], rid="13812345678")
    second = _add(store, NIGHT[1], rid="13912345678")
    ids = [r.report_id for r in _rows(store)]
    assert all(i.startswith("<PHONE>#h") for i in ids) and len(set(ids)) == 2
    assert [s.id for s in second.similar] == [ids[0]] and "138" not in ids[0]
    assert _add(store, NIGHT[0], rid="13812345678").repeated  # the same number finds its pseudonym
    with Session(store.engine) as s:  # a raw id an older release stored is rewritten once
        s.add(Report(report_id="13700001111", created=T0, topic="W05", place=None, lead=None, assist=[], event="R9",
                     signature=b"\0" * 4 * store.config.num_perm))
        s.commit()
    assert store.mask_stored_ids() == 1 and store.mask_stored_ids() == 0
    with Session(store.engine) as s:  # once per database: the marker says it is done
        s.add(Report(report_id="13700002222", created=T0, topic="W05", place=None, lead=None, assist=[], event="R9",
                     signature=b"\0" * 4 * store.config.num_perm))
        s.commit()
    assert store.mask_stored_ids() == 0
    with Session(store.engine) as s:
        s.execute(delete(Report).where(Report.report_id == "13700002222"))
        s.commit()
    assert all(r.report_id.startswith("<PHONE>#h") for r in _rows(store))


def test_reports_sent_at_the_same_moment_make_one_event(store):
    from concurrent.futures import ThreadPoolExecutor

    when = datetime.now(UTC)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: _add(store, f"{NIGHT[0]}{i}", when=when, rid=f"p{i}"), range(24)))
    assert len({a.event_id for a in answers}) == 1 and max(a.event_size for a in answers) == 24
    assert len({r.event for r in _rows(store)}) == 1


@pytest.mark.parametrize(("time", "message"), [
    ("2100-01-01T00:00:00Z", "is in the future"), ("9999-12-31T23:59:59Z", "is in the future"),
    ("9999-12-31T20:00:00-08:00", "out of range"), ("0001-01-01T00:00:00+08:00", "out of range"),
    ("1969-07-20T20:17:00Z", "before 1970")])
def test_an_implausible_time_is_a_422(serve_settings, time, message):
    with TestClient(create_app(serve_settings)) as c:
        r = c.post("/v1/similar", json={"text": NIGHT[0], "id": "x", "time": time}, headers=KEY)
        assert r.status_code == 422 and message in r.text, r.text
        ok = c.post("/v1/similar", json={"text": NIGHT[0], "id": "x", "time": datetime.now(UTC).isoformat()},
                    headers=KEY)
        assert ok.status_code == 200 and ok.json()["event_size"] == 1, ok.text
