"""Units the gazetteer does not list (issue 17): reported under the known unit they follow, their office unknown;
word rules for what is a unit's name; Teddy's letter-token artefacts. Invented messages and gazetteers only."""

from __future__ import annotations

import zipfile

import pytest
import yaml

from chuishao.gazetteer import Gazetteer
from chuishao.models.answer import Jurisdiction, RoutingAnswer
from chuishao.pipeline.places import UNLISTED, PlaceExtractor, Region, _division_lines, _not_a_unit, _ordinary_name
from tests.test_gazetteer import CITY

# Teddy-style anonymised units: a city A市 with districts A1区, A3区, a county A7县 with a township
LETTERS = {
    "name": "letters", "version": "1",
    "cities": [{"name": "A市", "districts": [
        {"name": "A1区", "office": "A1区人民政府"}, {"name": "A3区"},
        {"name": "A7县", "streets": [{"name": "泉塘街道", "office": "泉塘街道办事处"}]},
    ]}],
}


def _extractor(tmp_path_factory, data: dict, **kwargs) -> PlaceExtractor:
    path = tmp_path_factory.mktemp("gz") / "city.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return PlaceExtractor(Gazetteer.load(path), national=False, **kwargs)


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> PlaceExtractor:
    return _extractor(tmp_path_factory, CITY)


@pytest.fixture(scope="module")
def letters(tmp_path_factory) -> PlaceExtractor:
    return _extractor(tmp_path_factory, LETTERS)


def test_a_community_in_no_list_is_reported_under_its_street_with_the_streets_office(city):
    got = city.extract(None, "东湖区柳岸街道石榴社区门口的垃圾")
    assert (got["district"], got["street"], got["community"]) == ("东湖区", "柳岸街道", None)
    assert got["unlisted"] == ["石榴社区"]
    assert got["office"] == "柳岸街道办事处"  # the community's own office is unknown: the listed parent's
    assert got["matched"] == ["东湖区", "柳岸街道", f"石榴社区 {UNLISTED}"]


def test_a_natural_village_after_a_listed_village(city):
    got = city.extract(None, "西山县城关镇松林村樟树下村的河道被填了")
    assert (got["street"], got["community"]) == ("城关镇", "松林村")
    assert got["unlisted"] == ["樟树下村"] and got["office"] == "西山县城关镇人民政府"
    assert city.mentions(None, "松林村樟树下村") == [("松林村", "community"), ("樟树下村", "community")]


def test_a_chain_of_unlisted_units_and_a_district_followed_by_its_community(city):
    got = city.extract(None, "东湖区白沙镇青松村的路灯坏了")
    assert (got["district"], got["street"], got["community"]) == ("东湖区", None, None)
    assert got["unlisted"] == ["白沙镇", "青松村"] and got["office"] == "东湖区人民政府"
    assert city.extract(None, "东湖区石榴社区")["unlisted"] == ["石榴社区"]  # Teddy's texts often skip the street


def test_only_units_under_the_place_chosen_are_listed_as_its_unlisted_parts(city):
    got = city.extract(None, "东湖区白沙镇的人去了西山县城关镇松林村")
    assert got["community"] == "松林村" and got["unlisted"] == []
    assert f"白沙镇 {UNLISTED}" in got["matched"]  # still named, and marked


def test_scope_words_before_a_unit_are_no_part_of_its_name(city):
    assert city.extract(None, "柳岸街道联合石榴社区修剪树枝")["unlisted"] == ["石榴社区"]
    assert city.extract(None, "西山县县白鹭乡现青松村低保")["unlisted"] == ["白鹭乡", "青松村"]
    for text in ("柳岸街道下属村的农民", "东湖区全体村民意见很大", "东湖区一个村", "柳岸街道的很多社区", "东湖区偏远农村"):
        got = city.extract(None, text)
        assert got["unlisted"] == [] and not any(UNLISTED in m for m in got["matched"]), text


def test_a_village_community_is_one_unit_written_whole(city):
    assert city.extract(None, "柳岸街道滨二村社区化粪池")["unlisted"] == ["滨二村社区"]
    got = city.extract(None, "松林村社区的路")
    assert got["community"] == "松林村" and got["matched"] == ["松林村社区"]


def test_standalone_villages_only_when_asked(city, tmp_path_factory):
    assert city.extract(None, "我是七里江村民")["matched"] == []  # the default: only after a known unit
    alone = _extractor(tmp_path_factory, CITY, standalone=True)
    got = alone.extract(None, "我是七里江村民，请问百善台社区的领导")
    assert got["unlisted"] == ["七里江村", "百善台社区"] and got["office"] is None
    assert got["matched"] == [f"七里江村 {UNLISTED}", f"百善台社区 {UNLISTED}"]
    for text in ("维护村民利益", "影响社区形象", "关系全体村民", "社区用房被占", "他们村的路"):
        assert alone.mentions(None, text) == [], text
    assert alone.extract(None, "东湖区柳岸街道")["unlisted"] == []


def test_letter_tokens_in_road_names_and_anonymisation_artefacts_are_no_units(letters):
    for text in ("我们每天都要行走A3区大道去上班", "A1区北大道与何桥公路交界", "A1区路万家丽路口以南",
                 "手里抽的是极品A1区王。", "村民大A1区意将土地出让"):
        assert letters.mentions(None, text) == [], text
    for text, unit in (("我是A1区居民", "A1区"), ("A1区住建局不作为", "A1区"), ("向A3区反映", "A3区"),
                       ("A1区路边摊占道", "A1区")):
        assert letters.mentions(None, text) == [(unit, "district")], text
    got = letters.extract(None, "A7县泉塘街道泉星社区")
    assert got["street"] == "泉塘街道" and got["unlisted"] == ["泉星社区"] and got["office"] == "泉塘街道办事处"


def test_national_names_that_are_ordinary_words_there():
    assert _ordinary_name("地方镇") and not _ordinary_name("府山街道") and not _ordinary_name("吴集镇")
    region = Region("district", "青海省", "西宁市", "城北区", name="城北区")
    text = "下沙大学城北区域违停"
    at = text.index("城北区")
    assert _not_a_unit(text, at, at + 3, region)  # 区域: an area, not the district
    text = "西宁市城北区的路"
    assert not _not_a_unit(text, 3, 6, region)


def test_the_national_list_is_read_from_jionlps_zip_too(tmp_path):
    # a fresh jionlp install has only the .zip (it unzips on its first import)
    lines = "浙江省\n\t衢州市\n\t\t柯城区\n\t\t\t府山街道\n"
    with zipfile.ZipFile(tmp_path / "china_location.zip", "w") as archive:
        archive.writestr("china_location.txt", lines)
    (tmp_path / "plain.txt").write_text(lines, encoding="utf-8")
    expected = [("浙江省", "衢州市", None, None), ("浙江省", "衢州市", "柯城区", None),
                ("浙江省", "衢州市", "柯城区", "府山街道")]
    assert _division_lines(tmp_path / "china_location.zip") == expected == _division_lines(tmp_path / "plain.txt")


def test_the_answer_model_keeps_older_jurisdictions_valid():
    old = {"province": None, "city": "A市", "district": "A1区", "street": None, "community": None, "place": None,
           "office": None, "matched": ["A1区"], "confidence": 1.0, "candidates": 1}  # before `unlisted`
    assert Jurisdiction(**old).unlisted == []
    assert RoutingAnswer(jurisdiction={**old, "unlisted": ["石榴社区"]}).jurisdiction.unlisted == ["石榴社区"]
