"""The dev/test split of the enriched urgency labels and the tuning labels (issue 17).

bench/split_urgency_enriched.py is checked on made-up data (stratified halves, near-repeats kept together, a near-repeat
of a held-out message forced into the test half, reproducible); the committed id lists cover the enriched sample once,
half of its danger reports each; against ../shared/data (skipped when absent) they are exactly what the script draws.
data/labels/urgency-tuning-80.csv (messages labelled while tuning) must stay clear of both test sets.
"""

import csv
import sys
from pathlib import Path

import pytest
from conftest import REPO, load_script

LABELS = REPO / "data" / "labels"
ENRICHED = LABELS / "urgency-enriched-300.csv"
DEV = LABELS / "urgency-enriched-dev-ids.txt"
TEST = LABELS / "urgency-enriched-test-ids.txt"
FIRST_IDS = LABELS / "urgency-300-ids.txt"
TUNING = LABELS / "urgency-tuning-80.csv"


def _ids(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split()


def _labels(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["id", "danger", "level", "cues"]
        return {r["id"]: r for r in reader}


@pytest.fixture
def splitter(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "bench"))  # the script imports its sibling sample_urgency
    yield load_script("bench/split_urgency_enriched.py")
    sys.modules.pop("sample_urgency", None)


def _texts(n: int, prefix: str) -> dict[str, str]:
    # texts of characters drawn apart from each other: no 5-gram in common, so each is its own group
    base = 0x4E00 + (0 if prefix == "d" else 5000)
    return {f"{prefix}{i:02d}": "".join(chr(base + i * 200 + k) for k in range(30)) for i in range(n)}


def test_split_halves_each_stratum_and_is_reproducible(splitter):
    texts = {**_texts(10, "d"), **_texts(20, "n")}
    danger = {i: "1" if i.startswith("d") else "0" for i in texts}
    dev, test = splitter.split(danger, texts, set())
    assert sorted(dev + test) == sorted(texts) and not set(dev) & set(test)
    assert sum(danger[i] == "1" for i in dev) == 5 and sum(danger[i] == "0" for i in dev) == 10
    assert (dev, test) == splitter.split(danger, texts, set())
    assert dev == sorted(dev) and test == sorted(test)


def test_near_repeats_travel_together_and_a_held_out_near_repeat_goes_to_test(splitter):
    texts = {**_texts(8, "d"), **_texts(8, "n")}
    texts["d99"] = texts["d00"] + "（转发）"  # a repost of d00
    texts["n99"] = "与测试集里一封信几乎一样的长长的内容" * 3
    danger = {i: "1" if i.startswith("d") else "0" for i in texts}
    held = {"h1": "与测试集里一封信几乎一样的长长的内容" * 3 + "落款"}
    groups = splitter.groups_of(sorted(texts), texts)
    assert ["d00", "d99"] in groups
    dev, test = splitter.split(danger, {**texts, **held}, set(held))
    assert ("d00" in dev) == ("d99" in dev)
    assert "n99" in test


def test_near_repeats_with_different_labels_stop_the_split(splitter):
    texts = {"a": "同一封信的内容一模一样" * 3, "b": "同一封信的内容一模一样" * 3 + "。"}
    with pytest.raises(SystemExit, match="different danger labels"):
        splitter.split({"a": "1", "b": "0"}, texts, set())


def test_committed_halves_cover_the_enriched_sample_with_half_the_danger_each():
    labels = _labels(ENRICHED)
    dev, test = _ids(DEV), _ids(TEST)
    assert sorted(dev + test) == sorted(labels) and not set(dev) & set(test)
    assert len(dev) == len(test) == 150
    assert sum(labels[i]["danger"] == "1" for i in dev) == sum(labels[i]["danger"] == "1" for i in test) == 50


def test_tuning_labels_are_well_formed_and_clear_of_both_test_sets():
    rows = _labels(TUNING)
    assert len(rows) == 80
    for r in rows.values():
        assert (r["danger"], r["level"]) in {("1", "high"), ("1", "medium"), ("0", "none")}, r
        cues = [c for c in r["cues"].split(";") if c]
        assert cues and len(cues) <= 4 and all(len(c) <= 16 for c in cues), r
        assert not any(p in r["cues"] for p in "。！？，,"), r
    assert not set(rows) & (set(_ids(TEST)) | set(_ids(FIRST_IDS)) | set(_ids(DEV)))


@pytest.mark.shared
@pytest.mark.slow  # reads the whole corpus twice: make test runs it, make check does not
def test_committed_halves_are_what_the_script_draws(shared_data: Path, splitter):
    labels = _labels(ENRICHED)
    corpus = {r["id"]: r["title"] + "\n" + r["text"] for r in splitter.read_corpus(shared_data / "corpus.jsonl")}
    held_out = set(_ids(FIRST_IDS)) & set(corpus)
    dev, test = splitter.split({i: r["danger"] for i, r in labels.items()}, corpus, held_out)
    assert dev == _ids(DEV) and test == _ids(TEST)


@pytest.mark.shared
def test_tuning_messages_are_no_near_repeat_of_a_test_message_and_cues_are_their_words(shared_data: Path, splitter):
    corpus = {r["id"]: r["title"] + "\n" + r["text"] for r in splitter.read_corpus(shared_data / "corpus.jsonl")}
    tests = [splitter.grams(corpus[i]) for i in set(_ids(TEST)) | set(_ids(FIRST_IDS)) if i in corpus]
    for i, r in _labels(TUNING).items():
        g = splitter.grams(corpus[i])
        assert not any(splitter.near(g, t) for t in tests), i
        if r["danger"] == "1":
            for cue in r["cues"].split(";"):
                assert cue in corpus[i], (i, cue)
