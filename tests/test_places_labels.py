"""data/labels/places-300.csv (dev) and places-test-150.csv (held out), the hand-annotated place mentions of issue 17
(rule: docs/annotation-places.md)."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import REPO, load_script

LABELS = REPO / "data" / "labels"
LEVEL_WORDS = {"district": ("区", "县", "市", "旗"), "street": ("街道", "镇", "乡", "办事处", "苏木"),
               "community": ("社区", "村", "居委会", "嘎查")}


SETS = {"places-300": 300, "places-test-150": 150}  # gold file stem: rows


def read_rows(name: str = "places-300") -> list[dict[str, str]]:
    with (LABELS / f"{name}.csv").open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["id", "district", "street", "community"]
        return list(reader)


def sample_ids(name: str = "places-300") -> list[str]:
    return (LABELS / f"{name}-ids.txt").read_text(encoding="utf-8").split()


@pytest.mark.parametrize("name", list(SETS))
def test_one_row_per_sampled_id_in_order(name):
    rows = read_rows(name)
    assert [r["id"] for r in rows] == sample_ids(name)
    assert len(rows) == SETS[name] and len({r["id"] for r in rows}) == SETS[name]


def test_the_held_out_set_shares_no_id_with_the_dev_set():
    assert not set(sample_ids("places-300")) & set(sample_ids("places-test-150"))


@pytest.mark.parametrize("name", list(SETS))
@pytest.mark.parametrize("level", list(LEVEL_WORDS))
def test_each_mention_is_a_clean_span_ending_in_its_level_word(level, name):
    for row in read_rows(name):
        cell = row[level]
        if not cell:
            continue
        mentions = cell.split("|")
        assert all(m and m == m.strip() for m in mentions), (row["id"], cell)
        assert len(mentions) == len(set(mentions)), (row["id"], cell)  # each surface form once
        assert all(m.endswith(LEVEL_WORDS[level]) for m in mentions), (row["id"], level, cell)
        assert all(len(m) <= 12 for m in mentions), (row["id"], cell)  # a name, never a piece of text


def corpus_by_id(shared: Path) -> dict[str, dict]:
    with (shared / "corpus.jsonl").open(encoding="utf-8") as fh:
        return {r["id"]: r for r in map(json.loads, fh)}


@pytest.mark.shared
@pytest.mark.parametrize("name", list(SETS))
def test_every_mention_is_written_in_its_message(shared_data, name):
    corpus = corpus_by_id(shared_data)
    for row in read_rows(name):
        rec = corpus[row["id"]]
        text = f"{rec.get('title') or ''}\n{rec['text']}"
        for level in LEVEL_WORDS:
            for m in filter(None, row[level].split("|")):
                assert m in text, (row["id"], level, m)


@pytest.mark.shared
def test_the_sampler_draws_the_same_stratified_ids(shared_data):
    sampler = load_script("bench/sample_places.py")
    by_source = sampler.read_ids_by_source(shared_data / "corpus.jsonl")
    ids = sampler.sample(by_source, 100, 200, seed=17)
    assert ids == sample_ids()
    corpus = corpus_by_id(shared_data)
    sources = Counter(corpus[i]["source"] for i in ids)
    assert sources["hangzhou"] == 100 and sum(n for s, n in sources.items() if s.startswith("teddy")) == 200
    assert all(corpus[i]["text"].strip() for i in ids)
    assert sampler.sample(by_source, 100, 200, seed=18) != ids  # the seed matters
    held_out = sampler.sample(by_source, 50, 100, seed=1717, exclude=frozenset(ids))
    assert held_out == sample_ids("places-test-150") and not set(held_out) & set(ids)
