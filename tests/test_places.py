"""The place extractor on invented messages: each bad input of issue 17 gets a clear answer."""

from __future__ import annotations

import pickle

import pytest
import yaml

from chuishao.gazetteer import Gazetteer
from chuishao.models.answer import empty_jurisdiction
from chuishao.pipeline.places import OUTSIDE, PlaceExtractor
from tests.test_gazetteer import CITY


@pytest.fixture(scope="module")
def extractor(tmp_path_factory) -> PlaceExtractor:
    path = tmp_path_factory.mktemp("gz") / "city.yaml"
    path.write_text(yaml.safe_dump(CITY, allow_unicode=True), encoding="utf-8")
    return PlaceExtractor(Gazetteer.load(path), national=False)  # the same with or without the places extra


def test_no_place_gives_nulls(extractor):
    got = extractor.extract(None, "路灯坏了一个多月，晚上漆黑一片")
    assert got == {"province": None, "city": None, "district": None, "street": None, "community": None, "place": None,
                   "office": None, "matched": [], "confidence": None, "candidates": 0, "unlisted": []}
    assert got == empty_jurisdiction()  # the answer model's own empty place


def test_full_chain_and_the_most_specific_office(extractor):
    got = extractor.extract("噪音扰民", "东湖区柳岸街道望月社区幸福里小区楼下每晚施工")
    assert (got["province"], got["city"], got["district"], got["street"], got["community"]) == (
        "山河省", "青石市", "东湖区", "柳岸街道", "望月社区")
    assert got["office"] == "望月社区居民委员会"
    assert got["place"] == "幸福里小区"
    assert got["matched"] == ["东湖区", "柳岸街道", "望月社区"]
    assert got["confidence"] == 1.0 and got["candidates"] == 1


def test_a_community_alone_brings_its_chain(extractor):
    got = extractor.extract(None, "松林村的河道里堆满了垃圾")
    assert (got["district"], got["street"], got["community"]) == ("西山县", "城关镇", "松林村")
    assert got["office"] == "西山县城关镇人民政府"  # the village names none: the township's


def test_longest_name_wins_and_aliases_normalise(extractor):
    got = extractor.extract(None, "柳岸街道路边的摊贩")
    assert got["matched"] == ["柳岸街道"]  # not 柳岸街 inside it
    got = extractor.extract(None, "柳岸街上的摊贩")
    assert got["street"] == "柳岸街道" and got["matched"] == ["柳岸街"]


def test_ambiguous_name_is_resolved_by_the_district_mentioned(extractor):
    got = extractor.extract(None, "西山县城关镇菜市场门口乱停车")
    assert (got["district"], got["street"]) == ("西山县", "城关镇")
    assert got["confidence"] == 1.0
    alone = extractor.extract(None, "城关镇菜市场门口乱停车")
    assert alone["street"] == "城关镇" and alone["candidates"] == 2
    assert alone["confidence"] == 0.5  # two districts have a 城关镇: a guess, and it says so


def test_several_places_choose_the_most_specific_consistent_chain(extractor):
    got = extractor.extract("投诉", "我住西山县，在东湖区柳岸街道上班，单位门口天天堵车")
    assert (got["district"], got["street"]) == ("东湖区", "柳岸街道")
    assert got["candidates"] == 2
    assert got["confidence"] == pytest.approx(2 / 3, abs=0.01)
    assert got["matched"] == ["西山县", "东湖区", "柳岸街道"]


def test_traditional_characters(extractor):
    got = extractor.extract(None, "東湖區柳岸街道望月社區的電梯壞了")
    assert (got["district"], got["street"], got["community"]) == ("东湖区", "柳岸街道", "望月社区")
    assert got["matched"] == ["東湖區", "柳岸街道", "望月社區"]  # as written


def test_address_in_another_province(extractor):
    got = extractor.extract(None, "我在廣東省深圳市打工，老家的房子漏水")
    assert got["province"] == "广东省" and got["city"] == "深圳市"
    assert got["district"] is None and got["street"] is None and got["office"] is None
    assert got["matched"] == [f"廣東省 {OUTSIDE}"]


def test_national_divisions_outside_the_gazetteer(extractor):
    from chuishao.pipeline.places import _division_file

    if _division_file() is None:
        pytest.skip("jionlp (the places extra) is not installed: no national division list")
    x = PlaceExtractor(extractor.gazetteer, national=True)
    got = x.extract(None, "我在廣東省深圳市打工")
    assert (got["province"], got["city"], got["district"]) == ("广东省", "深圳市", None)
    assert got["matched"] == [f"廣東省 {OUTSIDE}", f"深圳市 {OUTSIDE}"] and got["candidates"] == 1
    got = x.extract(None, "我老家在浙江省衢州市柯城区，现在东湖区上班")
    assert got["district"] == "东湖区"  # the gazetteer's place wins, the others are counted
    assert got["candidates"] == 2
    got = x.extract(None, "衢州市柯城区府山街道的路灯坏了")
    assert (got["province"], got["city"], got["district"], got["street"]) == ("浙江省", "衢州市", None, None)
    assert got["matched"] == [f"衢州市 {OUTSIDE}", f"柯城区 {OUTSIDE}", f"府山街道 {OUTSIDE}"]
    assert got["candidates"] == 1
    assert x.mentions(None, "柯城区府山街道") == [("柯城区", "district"), ("府山街道", "street")]
    assert x.extract(None, "城关镇") == extractor.extract(None, "城关镇")  # the gazetteer's own 城关镇
    assert x.extract(None, "市中区的小城镇，属于城镇户口，经济开发区")["matched"] == []  # words and zones, not places


def test_only_the_gazetteers_own_province(extractor):
    got = extractor.extract(None, "山河省的政策什么时候落实")
    assert got["province"] == "山河省" and got["city"] is None and got["district"] is None


def test_title_counts_and_long_text_is_bounded(extractor):
    assert extractor.extract("东湖区投诉", "楼下很吵")["district"] == "东湖区"
    got = extractor.extract(None, "很吵" * 50_000 + "东湖区")
    assert got["district"] is None  # past the first MAX_CHARS characters


def test_mentions_give_levels(extractor):
    assert extractor.mentions("西山", "柳岸街道望月社区") == [("西山", "district"), ("柳岸街道", "street"),
                                                                ("望月社区", "community")]


def test_pickles_for_worker_processes(extractor):
    clone = pickle.loads(pickle.dumps(extractor))
    text = "东湖区柳岸街道望月社区"
    assert clone.extract(None, text) == extractor.extract(None, text)


def test_bundled_example_on_corpus_style_names():
    x = PlaceExtractor(Gazetteer.load())
    got = x.extract(None, "杭州市萧山区宁围街道某小区门口")
    assert (got["city"], got["district"], got["street"]) == ("杭州市", "萧山区", "宁围街道")
    got = x.extract(None, "A市A7县泉塘街道")
    assert (got["city"], got["district"], got["street"]) == ("A市", "A7县", "泉塘街道")


def test_units_in_no_list_right_after_a_known_one(extractor):
    got = extractor.extract(None, "东湖区柳岸街道石榴社区门口，西山县县白鹭乡某某村")
    assert got["street"] == "柳岸街道" and got["community"] is None  # not in the gazetteer: no office known
    assert "石榴社区 (not in the gazetteer)" in got["matched"]
    assert extractor.mentions(None, "西山县县白鹭乡青松村村民") == [
        ("西山县", "district"), ("白鹭乡", "street"), ("青松村", "community")]
    # only right after a known unit, and not a compound or a generic word
    assert extractor.mentions(None, "青松村的路") == []
    assert extractor.mentions(None, "柳岸街道东山新村小区") == [("柳岸街道", "street")]
    assert extractor.mentions(None, "西山县城乡结合部") == [("西山县", "district")]


def test_generic_words_are_no_unlisted_units(extractor):
    assert extractor.mentions(None, "柳岸街道新农村建设") == [("柳岸街道", "street")]
    assert extractor.mentions(None, "柳岸街道钱农社区") == [("柳岸街道", "street"), ("钱农社区", "community")]
