"""The enriched urgency hand labels (issue 17): data/labels/urgency-enriched-300.csv and the sample it labels.

The file is checked for form and against urgency-300 (disjoint ids); the sampler bench/sample_urgency_enriched.py is
checked on a small made-up corpus (stratification cap, exclusions, duplicates, empty texts); against ../shared/data
(skipped when absent) its ids must be the ones the sampler draws, and the cues of every danger report must be words
of that message.
"""

import csv
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import REPO, load_script

LABELS = REPO / "data" / "labels" / "urgency-enriched-300.csv"
IDS = REPO / "data" / "labels" / "urgency-enriched-ids.txt"
FIRST_IDS = REPO / "data" / "labels" / "urgency-300-ids.txt"
LEVELS = {"1": {"high", "medium"}, "0": {"none"}}


def _rows() -> list[dict[str, str]]:
    with LABELS.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["id", "danger", "level", "cues"]
        return list(reader)


@pytest.fixture
def sampler(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "bench"))  # the script imports its sibling sample_urgency
    yield load_script("bench/sample_urgency_enriched.py")
    sys.modules.pop("sample_urgency", None)


def test_labels_cover_the_sample_once_each_in_its_order():
    ids = IDS.read_text(encoding="utf-8").split()
    assert len(ids) == 300 and len(set(ids)) == 300
    assert [r["id"] for r in _rows()] == ids


def test_sample_is_disjoint_from_the_first_urgency_sample():
    assert not set(IDS.read_text(encoding="utf-8").split()) & set(FIRST_IDS.read_text(encoding="utf-8").split())


def test_danger_and_level_agree_and_cues_are_short_words_not_sentences():
    for r in _rows():
        assert r["level"] in LEVELS[r["danger"]], r
        cues = [c for c in r["cues"].split(";") if c]
        if r["danger"] == "1":
            assert cues, r  # a danger report names what made it one
        assert len(cues) <= 4 and all(len(c) <= 16 for c in cues), r
        assert not any(p in r["cues"] for p in "。！？，,"), r


def _row(i: int, text: str) -> dict[str, str]:
    return {"id": f"m{i}", "title": "", "text": text}


def test_sampler_caps_each_expression_and_skips_excluded_duplicate_and_empty_texts(sampler, monkeypatch):
    monkeypatch.setattr(sampler, "SIZE", 8)  # 5 积水 (capped) + all 3 起火
    monkeypatch.setattr(sampler, "MAX_PER_EXPRESSION", 5)
    rows = [_row(i, f"路口积水第{i}天") for i in range(30)]  # one common expression
    rows += [_row(100 + i, f"楼道起火第{i}次") for i in range(3)]  # a rare one: gives all it has
    rows += [_row(200, "路口积水第0天"), _row(201, ""), _row(202, "没有任何危险词")]  # a repeat, empty, no match
    rows += [_row(300, "电梯被困一小时")]
    exclude = {"m300"}
    taken = sampler.draw(rows, exclude, seed=3)
    ids = [i for i, _ in taken]
    assert len(ids) == len(set(ids))
    assert not {"m200", "m201", "m202", "m300"} & set(ids)
    given = Counter(e for _, e in taken)
    assert given["起火"] == 3 and given["积水"] == 5  # the cap stops the common expression


def test_sampler_refuses_a_pool_too_small_and_is_reproducible(sampler, monkeypatch):
    rows = [_row(i, f"路口积水第{i}天") for i in range(30)] + [_row(100 + i, f"楼道起火第{i}次") for i in range(30)]
    monkeypatch.setattr(sampler, "MAX_PER_EXPRESSION", 5)
    monkeypatch.setattr(sampler, "SIZE", 12)
    with pytest.raises(SystemExit, match="only 10"):
        sampler.draw(rows, set(), seed=3)
    monkeypatch.setattr(sampler, "SIZE", 8)
    first = sampler.draw(rows, set(), seed=3)
    assert first == sampler.draw(rows, set(), seed=3)
    assert first != sampler.draw(rows, set(), seed=4)


def test_sampler_leaves_out_near_repeats_of_a_test_set_and_reads_id_files(sampler, tmp_path):
    rows = [_row(i, f"路口积水第{i}天，车辆无法通行") for i in range(6)]
    rows += [_row(50, "三号楼楼道起火，浓烟很大，住户被困在六楼无法下楼，请尽快处理"),
             _row(51, "三号楼楼道起火，浓烟很大，住户被困在六楼无法下楼，请尽快处理！！"),  # a near-repeat of m50
             _row(52, "菜市场旁边的仓库起火了，浓烟很大")]
    taken = [i for i, _ in sampler.draw(rows, {"m50"}, seed=1, size=7, exclude_near={"m50"})]
    assert "m51" not in taken and "m52" in taken and len(taken) == 7
    with pytest.raises(SystemExit, match="only 9"):  # nothing excluded: m50 and m51 are drawable too
        sampler.draw(rows, set(), seed=1, size=10)
    ids, labels = tmp_path / "ids.txt", tmp_path / "labels.csv"
    ids.write_text("a1\na2\n", encoding="utf-8")
    labels.write_text("id,danger,level,cues\nb1,0,none,\nb2,1,medium,裂缝\n", encoding="utf-8")
    assert sampler.read_ids(ids) == {"a1", "a2"} and sampler.read_ids(labels) == {"b1", "b2"}
    labels.write_text("\ufeffid,danger\nb3,1\n", encoding="utf-8")  # Excel's BOM
    assert sampler.read_ids(labels) == {"b3"}
    labels.write_text("name,id\nx,b4\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="first column is 'id'"):
        sampler.read_ids(labels)


def test_natural_sampler_is_random_reproducible_and_leaves_out_tests_and_their_near_repeats(sampler):
    natural = load_script("bench/sample_urgency_natural.py")
    text = "小区门口的路灯坏了一个多月了，晚上出行很不方便，希望尽快修好"
    rows = [_row(i, f"第{i}号楼的住户反映物业费收费标准不透明问题{i}") for i in range(40)]
    rows += [_row(90, text), _row(91, text + "。"), _row(92, "")]  # m91 nearly repeats the test message m90
    first = natural.draw(rows, {"m3"}, {"m90"}, 30, seed=5)
    assert first == natural.draw(rows, {"m3"}, {"m90"}, 30, seed=5) != natural.draw(rows, {"m3"}, {"m90"}, 30, seed=6)
    assert len(set(first)) == 30 and not {"m3", "m90", "m91", "m92"} & set(first)
    with pytest.raises(SystemExit, match="only 39"):
        natural.draw(rows, {"m3"}, {"m90"}, 41, seed=5)


@pytest.mark.shared
def test_sample_is_redrawn_exactly_from_distinct_matching_texts(shared_data: Path, sampler):
    rows = sampler.read_corpus(shared_data / "corpus.jsonl")
    exclude = set(FIRST_IDS.read_text(encoding="utf-8").split())
    taken = sampler.draw(rows, exclude, 17)
    assert [i for i, _ in taken] == IDS.read_text(encoding="utf-8").split()
    by_id = {r["id"]: r for r in rows}
    texts = [by_id[i]["text"].strip() for i, _ in taken]
    assert all(texts) and len(set(texts)) == len(texts)
    first_texts = {by_id[i]["text"].strip() for i in exclude}
    assert not first_texts & set(texts)
    for i, expression in taken:
        assert expression in sampler.expressions_in(by_id[i])
    assert max(Counter(e for _, e in taken).values()) <= sampler.MAX_PER_EXPRESSION


@pytest.mark.shared
def test_cues_of_danger_reports_are_words_of_the_message(shared_data: Path, sampler):
    rows = {r["id"]: f"{r['title']}\n{r['text']}" for r in sampler.read_corpus(shared_data / "corpus.jsonl")}
    for r in _rows():
        if r["danger"] == "1":
            for cue in r["cues"].split(";"):
                assert cue in rows[r["id"]], (r["id"], cue)


@pytest.mark.parametrize("name", ["urgency-train", "urgency-natural"])
def test_training_labels_follow_their_draw_and_never_hold_a_test_id(name):
    labels = REPO / "data" / "labels"
    with (labels / f"{name}-500.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == (labels / f"{name}-ids.txt").read_text(encoding="utf-8").split()
    assert all((r["danger"] == "1") == (r["level"] in ("high", "medium")) and r["level"] in ("high", "medium", "none")
               for r in rows)
    tests = set((labels / "urgency-300-ids.txt").read_text(encoding="utf-8").split())
    tests |= set((labels / "urgency-enriched-test-ids.txt").read_text(encoding="utf-8").split())
    assert not tests & {r["id"] for r in rows}
