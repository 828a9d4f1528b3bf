from pathlib import Path

import pytest
import yaml

from whistle.errors import TaxonomyError
from whistle.resources import default_taxonomy_path
from whistle.taxonomy import Taxonomy


def test_bundled_taxonomy_matches_the_guide():
    tax = Taxonomy.load()
    assert (tax.name, tax.version) == ("whistle-15", "1.1")
    assert [a.name for a in tax.areas] == ["综合执法", "重点工作", "应急处置"]
    assert [t.code for t in tax.topics] == [f"W{i:02d}" for i in range(1, 16)]
    assert len(tax.sub_codes) == 32
    assert tax.subs_of("W09") == ["W09a", "W09b", "W09c"] and tax.subs_of("W14") == ["W14a", "W14b", "W14c"]
    assert tax.labels[-1] == "OTHER"
    assert tax.departments("W03") == {"lead": "住房和城乡建设局", "assist": ["公安分局(派出所)", "消防救援支队"]}
    assert tax.area("W13").name == "应急处置"
    assert tax.name_of("W07b") == "非法小广告"


def _write(tmp_path: Path, mutate) -> Path:
    raw = yaml.safe_load(default_taxonomy_path().read_text(encoding="utf-8"))
    mutate(raw)
    path = tmp_path / "tax.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("area", "topic", "key", "value", "match"),
    [(0, 1, "code", "W01", "duplicate code 'W01'"),  # a duplicate code
     (1, 0, "lead", "  ", "lead department"),  # a topic without a lead department
     (0, 0, "leed", "x", "leed")],  # an unknown field (a typo)
    ids=["duplicate-code", "no-lead-department", "unknown-field"],
)
def test_invalid_taxonomy_is_an_error(tmp_path, area, topic, key, value, match):
    def mutate(raw):
        raw["areas"][area]["topics"][topic][key] = value

    with pytest.raises(TaxonomyError, match=match):
        Taxonomy.load(_write(tmp_path, mutate))


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(TaxonomyError, match="not found"):
        Taxonomy.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("areas: [unclosed", encoding="utf-8")
    with pytest.raises(TaxonomyError, match="not valid YAML"):
        Taxonomy.load(bad)


def test_city_edit_changes_fingerprint(tmp_path):
    def rename(raw):
        raw["areas"][0]["topics"][0]["lead"] = "区城市管理综合行政执法局"

    edited = Taxonomy.load(_write(tmp_path, rename))
    assert edited.departments("W01")["lead"] == "区城市管理综合行政执法局"
    assert edited.fingerprint != Taxonomy.load().fingerprint


def test_free_taxonomy_accepts_any_labels():
    tax = Taxonomy.free(["交通运输", "教育文体", "交通运输"])
    assert tax.labels == ["交通运输", "教育文体"] and tax.is_free
    assert tax.unknown_labels(["交通运输", "其他"]) == ["其他"]
    assert tax.departments("交通运输") == {"lead": None, "assist": []}
