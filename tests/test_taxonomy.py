from pathlib import Path

import pytest
import yaml

from chuishao.errors import TaxonomyError
from chuishao.resources import default_taxonomy_path
from chuishao.taxonomy import Taxonomy


def test_bundled_taxonomy_matches_the_guide():
    tax = Taxonomy.load()
    assert (tax.name, tax.version) == ("whistle-15", "1.2")
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


# ---- a city edits the YAML: every mistake is one line naming the file and the place -------------
BUNDLED = default_taxonomy_path().read_text(encoding="utf-8")


def _text(tmp_path: Path, text: str, name: str = "tax.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path) -> str:
    with pytest.raises(TaxonomyError) as info:
        Taxonomy.load(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    return message


def test_non_utf8_file_names_the_file_and_the_encoding(tmp_path):
    path = tmp_path / "gbk.yaml"
    path.write_bytes(BUNDLED.encode("gbk"))
    assert "UTF-8" in _error(path)


def test_utf8_with_bom_loads(tmp_path):  # Windows Notepad writes one
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + BUNDLED.encode("utf-8"))
    assert Taxonomy.load(path).fingerprint == Taxonomy.load().fingerprint


def test_yaml_syntax_error_is_one_line_with_line_and_column(tmp_path):
    text = BUNDLED.replace("lead: 城管执法局\n", "lead: [城管执法局\n", 1)
    message = _error(_text(tmp_path, text))
    assert "not valid YAML at line 21, column 15" in message
    assert "<unicode string>" not in message


def test_control_character_is_one_line_with_line_and_column(tmp_path):
    message = _error(_text(tmp_path, "name: a\nversion: \"1\x07\"\n"))
    assert "line 2, column 12" in message and "<unicode string>" not in message


def test_check_errors_name_the_file(tmp_path):
    def mutate(raw):
        raw["areas"][0]["topics"][1]["code"] = "W01"

    path = _write(tmp_path, mutate)
    message = _error(path)
    assert "duplicate code 'W01'" in message and "enforcement" in message


def test_area_without_topics_is_an_error(tmp_path):
    def mutate(raw):
        raw["areas"][2]["topics"] = []

    message = _error(_write(tmp_path, mutate))
    assert "area emergency" in message and "no topics" in message


def test_taxonomy_without_topics_is_an_error(tmp_path):
    def mutate(raw):
        for area in raw["areas"]:
            area["topics"] = []

    assert "no topics" in _error(_write(tmp_path, mutate))


@pytest.mark.parametrize(
    ("mutate", "match"),
    [(lambda raw: raw["areas"][0]["topics"][2].update(code=""), "topic 3 of area enforcement"),
     (lambda raw: raw["areas"][0]["topics"][0]["subs"][1].update(code=""), "sub-problem 2 of topic W01"),
     (lambda raw: raw["areas"][1].update(code=" "), "area 2"),
     (lambda raw: raw["other"].update(code=""), "other"),
     (lambda raw: raw["areas"][0]["topics"][0].update(code="W01 "), "'W01 '")],
    ids=["topic", "sub", "area", "other", "spaces"],
)
def test_empty_code_is_an_error(tmp_path, mutate, match):
    message = _error(_write(tmp_path, mutate))
    assert "code" in message and match in message


@pytest.mark.parametrize(
    ("topics", "match"),
    [({"W01": "W09z"}, "W09z"),  # reads as a W09 sub-problem but is listed under W01
     ({"W01": "a"}, "'a'"),  # the guide's convention: W01a, W01b under W01
     ({"X1": "X10a", "X10": "X10b"}, "X10a")],  # starts with X1, but X10a reads as a sub-problem of X10
    ids=["other-topic", "no-prefix", "longer-topic-code"],
)
def test_sub_code_must_start_with_its_topic_code(tmp_path, topics, match):
    def mutate(raw):
        for topic, (code, sub) in zip(raw["areas"][0]["topics"], topics.items(), strict=False):
            topic["code"], topic["subs"] = code, [{"code": sub, "name": "某问题"}]

    message = _error(_write(tmp_path, mutate))
    assert match in message and "start with" in message


def test_sub_code_equal_to_its_topic_code_is_an_error(tmp_path):
    def mutate(raw):
        raw["areas"][0]["topics"][0]["subs"][1]["code"] = "W01"

    assert "W01" in _error(_write(tmp_path, mutate))


def test_topic_codes_that_prefix_each_other_are_fine(tmp_path):
    def mutate(raw):  # X1 and X10: X10a starts with X1 too, but belongs to X10
        topics = raw["areas"][0]["topics"]
        topics[0]["code"], topics[0]["subs"] = "X1", [{"code": "X1a", "name": "a"}]
        topics[1]["code"], topics[1]["subs"] = "X10", [{"code": "X10a", "name": "b"}]

    assert Taxonomy.load(_write(tmp_path, mutate)).subs_of("X10") == ["X10a"]


@pytest.mark.parametrize("key", ["lead", "name"])
def test_duplicate_yaml_key_is_an_error(tmp_path, key):
    old = "        lead: 城管执法局\n"
    extra = "        lead: 生态环境局\n" if key == "lead" else "        name: 另一个名字\n"
    text = BUNDLED.replace(old, old + extra, 1)
    message = _error(_text(tmp_path, text))
    assert f"duplicate key {key!r}" in message and "line 21" in message


def test_yaml_merge_keys_still_work(tmp_path):
    """Keys merged in with `<<: *anchor` and then overridden are not duplicate keys."""
    text = BUNDLED.replace("      - code: W01\n", "      - &w01\n        code: W01\n", 1)
    text = text.replace("        lead: 城管执法局\n        assist: [住房和城乡建设局, 市场监督管理局]\n", "        <<: *w01\n", 1)
    tax = Taxonomy.load(_text(tmp_path, text))
    assert tax.departments("W02") == tax.departments("W01") and tax.subs_of("W02") == ["W02a", "W02b"]


def test_free_labels_in_a_file_is_an_error(tmp_path):
    message = _error(_text(tmp_path, BUNDLED + "free_labels: [a, b]\n"))
    assert "free_labels" in message


def test_directory_is_not_reported_missing(tmp_path):
    with pytest.raises(TaxonomyError, match="is a directory"):
        Taxonomy.load(tmp_path)


@pytest.mark.parametrize(("value", "hint"), [("1.1", 'version: "1.1"'), ("2", 'version: "2"')])
def test_unquoted_version_hints_to_quote_it(tmp_path, value, hint):
    text = BUNDLED.replace('version: "1.2"', f"version: {value}", 1)
    assert hint in _error(_text(tmp_path, text))


def test_numeric_code_hints_to_quote_it(tmp_path):
    text = BUNDLED.replace("code: W01\n", "code: 101\n", 1)
    message = _error(_text(tmp_path, text))
    assert "topic 1 of area enforcement" in message and "quote" in message


def test_wrong_type_names_the_topic(tmp_path):
    def mutate(raw):
        raw["areas"][1]["topics"][0]["assist"] = "城管执法局"

    assert "topic W08" in _error(_write(tmp_path, mutate))


def test_sub_problems_may_name_their_own_departments():
    tax = Taxonomy.load()
    w14 = {"lead": "城市管理局(供热燃气)", "assist": ["供热企业", "燃气企业", "供电企业"]}
    assert tax.departments("W14") == w14  # the topic's: the fallback
    assert tax.departments("W14", "W14a") == {"lead": w14["lead"], "assist": ["供热企业"]}
    assert tax.departments("W14", "W14b") == {"lead": w14["lead"], "assist": ["燃气企业"]}
    assert tax.departments("W14", "W14c") == {"lead": w14["lead"], "assist": ["供电企业"]}
    assert tax.departments("W03", "W03a") == tax.departments("W03")  # no departments of its own
    # a sub-problem without departments dumps as before they existed (saved models' fingerprints hold)
    assert "departments" not in tax.topic("W03").subs[0].model_dump()


@pytest.mark.parametrize(("departments", "match"), [
    ({}, "names neither lead nor assist"), ({"lead": " "}, "lead department is empty"),
    ({"assist": ["燃气企业", ""]}, "an assist department is empty"), ({"leed": "x"}, "leed")])
def test_invalid_sub_problem_departments_are_an_error(tmp_path, departments, match):
    def mutate(raw):
        raw["areas"][0]["topics"][0]["subs"][0]["departments"] = departments

    with pytest.raises(TaxonomyError, match=match):
        Taxonomy.load(_write(tmp_path, mutate))


def test_an_answer_with_a_sub_problem_gets_its_departments(tmp_path):
    import re

    from chuishao.models.persistence import load_model

    bundled = load_model()  # trained on the shipped file, with the W14 sub-problems' departments
    # the same taxonomy without sub-problem departments: every W14 answer gets the topic's
    plain_text = re.sub(r",\s*departments: \{assist: \[[^]]*\]\}", "", BUNDLED)
    assert plain_text != BUNDLED
    plain = load_model(taxonomy=Taxonomy.load(_text(tmp_path, plain_text)))
    edited = load_model(taxonomy=Taxonomy.load())
    for text, sub, assist in (("暖气不热，家里只有十几度", "W14a", ["供热企业"]),
                              ("楼道里燃气管道漏气，煤气味很重", "W14b", ["燃气企业"])):
        answer, fallback = bundled.route([text])[0], plain.route([text])[0]
        assert answer.sub == fallback.sub == sub
        assert answer.departments.assist == assist and answer.departments.lead == "城市管理局(供热燃气)"
        assert fallback.departments.assist == ["供热企业", "燃气企业", "供电企业"]
    other = edited.route(["楼下烧烤店油烟很大，窗户都不敢开"])[0]  # no sub-problem departments: the topic's
    assert other.departments.model_dump() == Taxonomy.load().departments(other.topic)
