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
