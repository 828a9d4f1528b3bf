"""The gazetteer file: a city's places, validated on load with one-line errors naming file and entry."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chuishao.errors import GazetteerError
from chuishao.gazetteer import Gazetteer
from chuishao.resources import default_gazetteer_path

# Invented places (no corpus text): one city, two districts sharing a township name.
CITY = {
    "name": "test", "version": "1",
    "cities": [{
        "name": "青石市", "aliases": ["青石"], "province": "山河省", "province_aliases": ["山河"], "office": "青石市人民政府",
        "districts": [
            {"name": "东湖区", "office": "东湖区人民政府", "streets": [
                {"name": "柳岸街道", "aliases": ["柳岸街"], "office": "柳岸街道办事处", "communities": [
                    {"name": "望月社区", "office": "望月社区居民委员会"}]},
                {"name": "城关镇", "office": "东湖区城关镇人民政府"}]},
            {"name": "西山县", "aliases": ["西山"], "streets": [
                {"name": "城关镇", "office": "西山县城关镇人民政府", "communities": [{"name": "松林村"}]}]},
        ],
    }],
}


def write(tmp_path: Path, data: object, name: str = "g.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_loads_and_flattens_parents_first(tmp_path):
    g = Gazetteer.load(write(tmp_path, CITY))
    assert g.summary()["district"] == 2 and g.summary()["street"] == 3 and g.summary()["community"] == 2
    community = next(e for e in g.entries if e.name == "望月社区")
    assert (community.province, community.city, community.district, community.street) == (
        "山河省", "青石市", "东湖区", "柳岸街道")
    assert [g.entries[i].name for i in g.ancestors(community.index)] == ["望月社区", "柳岸街道", "东湖区", "青石市"]
    assert g.provinces == {"山河省": "山河省", "山河": "山河省"}


def test_bundled_example_loads_in_checkout_and_wheel_path():
    g = Gazetteer.load()
    assert default_gazetteer_path().name == "example.yaml"
    names = {e.name for e in g.entries}
    assert {"A市", "A3区", "杭州市", "萧山区"} <= names
    assert g.summary()["street"] > 100


def _mutated(change) -> dict:
    data = yaml.safe_load(yaml.safe_dump(CITY, allow_unicode=True))
    change(data)
    return data


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d["cities"][0]["districts"][0]["streets"].append({"name": "柳岸街道"}),
     "district 青石市 > 东湖区: street '柳岸街道' is given twice"),
    (lambda d: d["cities"][0]["districts"][0].update(name=" "), "a name or alias is empty"),
    (lambda d: d["cities"][0]["districts"][1]["streets"][0].update(aliases=["柳岸街"]),
     "alias '柳岸街' is claimed by two places"),
    (lambda d: d["cities"][0]["districts"][1].update(aliases=["东湖区"]), "alias '东湖区' is claimed by two places"),
    (lambda d: d["cities"][0]["districts"][0]["streets"][0].update(office=""), "office is empty"),
    (lambda d: d["cities"][0].update(districts=[]), "city 青石市: no districts"),
    (lambda d: d.update(cities=[]), "no cities"),
    (lambda d: d["cities"][0]["districts"][0]["streets"][0].update(streets=[]),
     "street 青石市 > 东湖区 > 柳岸街道: streets: unknown field"),
    (lambda d: d["cities"][0]["districts"][0].update(name=7),
     "district 青石市 > #1: name: Input should be a valid string: YAML reads 7 as a number, quote it"),
    (lambda d: d["cities"][0]["districts"][0].update(streets={"name": "x"}),
     "district 青石市 > 东湖区: streets: Input should be a valid list"),
    (lambda d: d.pop("version"), "version: Field required"),
])
def test_invalid_gazetteer_is_one_line_naming_file_and_entry(tmp_path, change, expected):
    path = write(tmp_path, _mutated(change))
    with pytest.raises(GazetteerError) as err:
        Gazetteer.load(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert expected in message


def test_same_name_in_two_districts_is_allowed(tmp_path):
    g = Gazetteer.load(write(tmp_path, CITY))
    assert sorted(e.district for e in g.entries if e.name == "城关镇") == ["东湖区", "西山县"]


@pytest.mark.parametrize(("content", "expected"), [
    ("", "expected a mapping with name, version, cities (the file is empty)"),
    ("- a\n- b\n", "expected a mapping"),
    ("name: x\nname: y\nversion: '1'\ncities: []\n", "duplicate key 'name'"),
    ("name: [x\n", "not valid YAML at line"),
])
def test_unreadable_files(tmp_path, content, expected):
    with pytest.raises(GazetteerError, match=expected.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        Gazetteer.load(write(tmp_path, content))


def test_missing_directory_and_non_utf8(tmp_path):
    with pytest.raises(GazetteerError, match="gazetteer file not found"):
        Gazetteer.load(tmp_path / "nope.yaml")
    with pytest.raises(GazetteerError, match="is a directory"):
        Gazetteer.load(tmp_path)
    bad = tmp_path / "gbk.yaml"
    bad.write_bytes("name: 东湖\n".encode("gbk"))
    with pytest.raises(GazetteerError, match=r"not UTF-8.*save the gazetteer file as UTF-8"):
        Gazetteer.load(bad)
