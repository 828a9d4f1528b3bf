"""The urgency hand labels (issue 17): data/labels/urgency-300.csv and the sample it labels.

The file is checked for form here; against ../shared/data (skipped when absent) its ids must be the ones
bench/sample_urgency.py draws, and the cues of every danger report must be words of that message.
"""

import csv
import json
from pathlib import Path

import pytest
from conftest import REPO, load_script

LABELS = REPO / "data" / "labels" / "urgency-300.csv"
IDS = REPO / "data" / "labels" / "urgency-300-ids.txt"
LEVELS = {"1": {"high", "medium"}, "0": {"none"}}


def _rows() -> list[dict[str, str]]:
    with LABELS.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["id", "danger", "level", "cues"]
        return list(reader)


def _sampler():
    return load_script("bench/sample_urgency.py")


def test_labels_cover_the_sample_once_each_in_its_order():
    ids = IDS.read_text(encoding="utf-8").split()
    assert len(ids) == 300 and len(set(ids)) == 300
    assert [r["id"] for r in _rows()] == ids


def test_danger_and_level_agree_and_cues_are_short_words_not_sentences():
    for r in _rows():
        assert r["level"] in LEVELS[r["danger"]], r
        cues = [c for c in r["cues"].split(";") if c]
        if r["danger"] == "1":
            assert cues, r  # a danger report names what made it one
        assert len(cues) <= 4 and all(len(c) <= 16 for c in cues), r
        assert not any(p in r["cues"] for p in "。！？，,"), r


@pytest.mark.shared
def test_sample_is_redrawn_exactly_and_its_halves_are_what_they_claim(shared_data: Path):
    sampler = _sampler()
    rows = sampler.read_corpus(shared_data / "corpus.jsonl")
    randoms, candidates = sampler.draw(rows, 17)
    assert randoms + candidates == IDS.read_text(encoding="utf-8").split()
    assert not set(randoms) & set(candidates)
    by_id = {r["id"]: r for r in rows}
    assert all(by_id[i]["text"].strip() for i in randoms + candidates)
    assert all(sampler.is_candidate(by_id[i]) for i in candidates)


@pytest.mark.shared
def test_cues_of_danger_reports_are_words_of_the_message(shared_data: Path):
    with (shared_data / "corpus.jsonl").open(encoding="utf-8") as f:
        texts = {r["id"]: f"{r.get('title') or ''}\n{r.get('text') or ''}" for r in map(json.loads, f)}
    for r in _rows():
        if r["danger"] == "1":
            for cue in r["cues"].split(";"):
                assert cue in texts[r["id"]], (r["id"], cue)
