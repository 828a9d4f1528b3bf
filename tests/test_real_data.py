"""Checks against the real research data in ../shared/data (skipped when it is absent)."""

import csv
import json

import pytest

from conftest import REPO
from whistle.models.persistence import load_model
from whistle.taxonomy import Taxonomy
from whistle.training.data import check_labels, read_labelled
from whistle.training.evaluate import evaluate


def test_taxonomy_covers_every_annotated_label(shared_data):
    tax = Taxonomy.load()
    for split in ("train", "test"):
        data = read_labelled(shared_data / "whistle" / f"{split}.jsonl")
        check_labels(data, tax, split)  # raises on any label or sub-problem outside the YAML
        assert set(data.labels) == set(tax.labels)


def test_our_labels_join_the_corpus_and_never_touch_test(shared_data):
    test_ids = {json.loads(line)["id"] for line in (shared_data / "whistle" / "test.jsonl").open(encoding="utf-8")}
    corpus_ids = {json.loads(line)["id"] for line in (shared_data / "corpus.jsonl").open(encoding="utf-8")}
    tax = Taxonomy.load()
    with (REPO / "data" / "labels" / "extra-rare.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and set(rows[0]) == {"id", "label", "sub"}  # ids only: no texts are committed
    for row in rows:
        assert row["id"] in corpus_ids and row["id"] not in test_ids
        assert row["label"] in tax.labels
        assert (row["sub"] or None) in ([None] if row["label"] == "OTHER" else tax.subs_of(row["label"]))


def test_bundled_model_keeps_its_reported_quality(shared_data):
    """Regression floor a little under the README's figures (0.731 / 0.853)."""
    model = load_model()
    figures = evaluate(model, read_labelled(shared_data / "whistle" / "test.jsonl"))
    assert figures["errors"] == 0
    assert figures["macro_f1"] >= 0.72 and figures["accuracy"] >= 0.84
    assert figures["top3_accuracy"] >= 0.96
    # calibrated: answers not flagged for review are right far more often than the rest
    assert figures["accuracy_when_sure"] >= 0.92
    assert 0.1 <= figures["needs_review_share"] <= 0.35


@pytest.mark.slow
def test_teddy7_with_any_label_set(shared_data, tmp_path):
    from whistle.config import WhistleConfig
    from whistle.training.train import TrainRequest, train

    model = train(TrainRequest(data=[shared_data / "teddy7" / "train.jsonl"], taxonomy=None, config=WhistleConfig()))
    figures = evaluate(model, read_labelled(shared_data / "teddy7" / "test.jsonl"))
    assert figures["macro_f1"] >= 0.90, figures["macro_f1"]
