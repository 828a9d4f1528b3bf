"""Annotators in the answers: the jurisdiction in predict, tag (flat columns too), the service; no row lost."""

from __future__ import annotations

import csv
import json
import pickle

import pytest
import yaml
from typer.testing import CliRunner

from chuishao.cli import app
from chuishao.models.annotated import AnnotatedModel, annotated
from chuishao.models.answer import RoutingAnswer
from chuishao.pipeline.annotate import MessageAnnotator, build_annotator
from tests.test_gazetteer import CITY

runner = CliRunner()
MESSAGE = "东湖区柳岸街道望月社区幸福里小区楼下烧烤店油烟很大，晚上还吵"


@pytest.fixture(scope="module")
def city_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("gz") / "city.yaml"
    path.write_text(yaml.safe_dump(CITY, allow_unicode=True), encoding="utf-8")
    return path


class Shouting:
    name = "shout"

    def annotate(self, title, text):
        return {"loud": "！" in text, "title": title}


def test_message_annotator_fills_fields_and_skips_error_answers():
    annotator = MessageAnnotator([Shouting()])
    assert annotator.fingerprints == {"shout": "Shouting"}  # a city's own annotator needs no fingerprint
    answers = [{"error": None}, {"error": "empty text"}, {"error": None}]
    annotator.fill(answers, ["吵！", "", "安静"], ["t", None, None])
    assert answers[0]["shout"] == {"loud": True, "title": "t"}
    assert "shout" not in answers[1]
    assert answers[2]["shout"] == {"loud": False, "title": None}
    with pytest.raises(ValueError, match="same answer field"):
        MessageAnnotator([Shouting(), Shouting()])
    assert not MessageAnnotator() and annotator.names == ["shout"]


def test_build_annotator_none_switches_places_off(city_file):
    assert build_annotator("none").names == ["urgency"] and build_annotator("NONE").names == ["urgency"]
    assert build_annotator(city_file).names == ["jurisdiction", "urgency"]
    assert build_annotator(None).names == ["jurisdiction", "urgency"]  # the bundled example
    assert build_annotator("none", "none").names == []


def test_annotated_model_answers_carry_the_place(tiny_model, city_file):
    model = annotated(tiny_model, build_annotator(city_file))
    assert isinstance(model, AnnotatedModel)
    assert annotated(tiny_model, build_annotator("none", "none")) is tiny_model
    answers = model.route([MESSAGE, "   "], ids=["a", "b"])
    assert answers[0].jurisdiction.street == "柳岸街道" and answers[0].jurisdiction.place == "幸福里小区"
    assert answers[0].topic == tiny_model.route([MESSAGE])[0].topic  # routing itself unchanged
    assert answers[1].error and answers[1].jurisdiction.district is None  # unusable text: no place, still an answer
    assert model.version == tiny_model.version and model.config is tiny_model.config
    clone = pickle.loads(pickle.dumps(model))  # batch workers and Spark executors get a copy
    assert clone.route_dicts([MESSAGE]) == model.route_dicts([MESSAGE])


def test_predict_shows_jurisdiction_and_none_switches_it_off(tiny_model_dir, city_file):
    result = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), "--gazetteer", str(city_file), MESSAGE])
    assert result.exit_code == 0, result.output
    place = json.loads(result.stdout)["jurisdiction"]
    assert (place["district"], place["street"], place["community"]) == ("东湖区", "柳岸街道", "望月社区")
    assert place["office"] == "望月社区居民委员会"
    off = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), "--gazetteer", "none", MESSAGE])
    assert json.loads(off.stdout)["jurisdiction"] == RoutingAnswer().jurisdiction.model_dump()


def test_invalid_gazetteer_is_a_one_line_error(tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nversion: '1'\ncities:\n- name: 青石市\n  districts: []\n", encoding="utf-8")
    result = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), "--gazetteer", str(bad), MESSAGE])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"chuishao: error: {bad} (gazetteer x): city 青石市: no districts"
    missing = runner.invoke(app, ["tag", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "o.csv"),
                                  "--model", str(tiny_model_dir), "--gazetteer", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "gazetteer file not found" in missing.stderr


def test_tag_writes_flat_place_columns_and_loses_no_row(tiny_model_dir, city_file, tmp_path):
    src = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": "a", "text": MESSAGE}, ensure_ascii=False), "{broken json",
             json.dumps({"id": "c", "text": "我在廣東省深圳市，老家西山县的路灯坏了"}, ensure_ascii=False),
             json.dumps({"id": "d", "text": "路灯坏了"}, ensure_ascii=False)]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["tag", str(src), "-o", str(out), "--model", str(tiny_model_dir),
                                 "--gazetteer", str(city_file), "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open(encoding="utf-8-sig")))
    assert [r["id"] for r in rows] == ["a", "row-2", "c", "d"]
    header = list(rows[0])
    assert header.index("jurisdiction") + 1 == header.index("jurisdiction_province")
    assert (rows[0]["jurisdiction_district"], rows[0]["jurisdiction_street"], rows[0]["jurisdiction_place"]) == (
        "东湖区", "柳岸街道", "幸福里小区")
    assert json.loads(rows[0]["jurisdiction"])["matched"] == ["东湖区", "柳岸街道", "望月社区"]
    assert rows[1]["error"] and rows[1]["jurisdiction_district"] == ""
    assert rows[2]["jurisdiction_district"] == "西山县" and json.loads(rows[2]["jurisdiction"])["candidates"] == 2
    assert rows[3]["jurisdiction_district"] == "" and rows[3]["error"] == ""


def test_tag_parquet_has_the_nested_and_flat_place(tiny_model_dir, city_file, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "text": MESSAGE}, ensure_ascii=False) + "\n{bad\n", encoding="utf-8")
    out = tmp_path / "out.parquet"
    result = runner.invoke(app, ["tag", str(src), "-o", str(out), "--model", str(tiny_model_dir),
                                 "--gazetteer", str(city_file), "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 2
    assert rows[0]["jurisdiction"]["community"] == "望月社区" and rows[0]["jurisdiction_street"] == "柳岸街道"
    assert rows[1]["jurisdiction_street"] is None and rows[1]["error"]


def test_service_answers_carry_the_place(serve_settings, city_file):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from chuishao.serve.app import create_app

    settings = serve_settings.model_copy(update={"gazetteer": str(city_file)})
    with TestClient(create_app(settings)) as client:
        one = client.post("/v1/classify", json={"text": MESSAGE, "id": "m"})
        assert one.status_code == 200, one.text
        assert one.json()["jurisdiction"]["street"] == "柳岸街道"
        batch = client.post("/v1/classify/batch", json={"items": [{"text": MESSAGE}, {"text": "no chinese"}]})
        answers = batch.json()["answers"]
        assert answers[0]["jurisdiction"]["community"] == "望月社区"
        assert answers[1]["error"] and answers[1]["jurisdiction"]["district"] is None
    off = serve_settings.model_copy(update={"gazetteer": "none"})
    with TestClient(create_app(off)) as client:
        assert client.post("/v1/classify", json={"text": MESSAGE}).json()["jurisdiction"]["district"] is None
