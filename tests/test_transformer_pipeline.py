"""The whole path on a tiny random model, in well under a minute: import from a tiny E5S1 file, fine-tune a few
steps on the labelled fixture, export to ONNX, predict with onnxruntime (logits equal torch's)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TRANSFORMER_EXTRA, installed

from chuishao.transformer.data import read_jsonl, sqrt_inverse_frequency, stratified_split
from chuishao.transformer.encoder_import import convert
from chuishao.transformer.tiny import write_tiny_e5

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "labelled-mini.jsonl"

pytestmark = [pytest.mark.transformer,  # torch and onnxruntime: make test runs these, make check does not
              installed(*TRANSFORMER_EXTRA, why="needs the transformer extra")]


def test_stratified_split_is_seeded_and_stratified() -> None:
    labels = ["A"] * 20 + ["B"] * 7 + ["C"] * 1
    tr, dv = stratified_split(labels, 0.15, seed=0)
    assert (tr, dv) == stratified_split(labels, 0.15, seed=0)
    assert sorted(tr + dv) == list(range(28))
    assert [labels[i] for i in dv].count("A") == 3 and [labels[i] for i in dv].count("B") == 1
    assert "C" not in [labels[i] for i in dv]


def test_sqrt_inverse_frequency() -> None:
    w = sqrt_inverse_frequency(["A"] * 100 + ["B"] * 25, ["A", "B", "Z"])
    assert w[1] / w[0] == pytest.approx(2.0) and w[2] == 1.0
    assert (w[0] * 100 + w[1] * 25) / 125 == pytest.approx(1.0)


def _tiny_encoder(tmp_path: Path) -> list[dict]:
    """The fixture's rows; a tiny random e5 imported into tmp_path / "enc" with their vocabulary."""
    rows = read_jsonl(FIXTURE)
    write_tiny_e5(tmp_path / "tiny-q4.bin", [r["title"] + "。" + r["text"] for r in rows], hidden=32, layers=2, heads=2,
                  ffn=64)
    convert(tmp_path / "tiny-q4.bin", tmp_path / "enc", keep_vocab_from=[FIXTURE])
    return rows


def test_tiny_end_to_end(tmp_path: Path) -> None:
    from chuishao.transformer.finetune import FinetuneConfig, finetune, load_classifier, predict_logits
    from chuishao.transformer.onnx_export import OnnxClassifier, compare_with_torch, export_onnx

    t0 = time.time()
    rows = _tiny_encoder(tmp_path)
    summary = finetune(FinetuneConfig(model_dir=str(tmp_path / "enc"), train=str(FIXTURE),
                                      out_dir=str(tmp_path / "ft"), max_steps=4, batch_size=8, max_length=64,
                                      lr=1e-3, log_every=2, threads=1, dev_fraction=0.2))
    labels = sorted({r["label"] for r in rows})
    assert summary["labels"] == labels and summary["temperature"] > 0
    cfg = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert cfg["id2label"] == {str(i): lab for i, lab in enumerate(labels)}
    export_onnx(tmp_path / "ft", tmp_path / "onnx", quantize=True)
    diff = compare_with_torch(tmp_path / "ft", tmp_path / "onnx", rows)
    assert diff["max_abs_diff"] < 1e-4 and diff["argmax_agree"] == 1.0
    clf = OnnxClassifier.load(tmp_path / "onnx")
    proba = clf.predict_proba(rows[:5])
    assert proba.shape == (5, len(labels)) and np.allclose(proba.sum(1), 1.0, atol=1e-5)
    assert all(p in labels for p in clf.predict(rows[:5]))
    model, tok, meta = load_classifier(tmp_path / "ft")
    z = predict_logits(model, tok, meta, rows[:5]) / meta["temperature"]
    np.testing.assert_allclose(proba, np.exp(z) / np.exp(z).sum(1, keepdims=True), atol=1e-5)
    assert OnnxClassifier.load(tmp_path / "onnx", int8=True).predict_proba(rows[:2]).shape == (2, len(labels))
    assert time.time() - t0 < 60


def test_no_dev_split_trains_every_row_and_keeps_the_given_temperature(tmp_path: Path) -> None:
    from chuishao.transformer.finetune import FinetuneConfig, finetune

    rows = _tiny_encoder(tmp_path)
    summary = finetune(FinetuneConfig(model_dir=str(tmp_path / "enc"), train=str(FIXTURE),
                                      out_dir=str(tmp_path / "ft"), epochs=1, batch_size=8, max_length=64,
                                      threads=1, dev_fraction=0.0, temperature=1.3))
    assert summary["train_rows"] == len(rows) and summary["dev_rows"] == 0 and summary["dev"] is None
    assert summary["temperature"] == 1.3 and summary["best_checkpoint"] is None
    assert summary["global_step"] == -(-len(rows) // 8)  # one epoch, every row, no early stop
    meta = json.loads((tmp_path / "ft" / "chuishao_transformer.json").read_text())
    assert meta["temperature"] == 1.3 and (tmp_path / "ft" / "model.safetensors").exists()
    assert not (tmp_path / "ft" / "checkpoints").exists()  # nothing picks among checkpoints: none is written
