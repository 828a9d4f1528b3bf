"""Which messages an encoder may still learn from (chuishao.transformer.cascade_build.messages_not_held): none that a
held-out or training file holds by id, nor a copy of one, even when the held-out file lists ids only."""

from __future__ import annotations

import json
from pathlib import Path

from chuishao.transformer.cascade_build import messages_not_held

NOISE = "每天晚上八点到十点小区广场舞音响声音特别大，严重扰民，老人孩子都无法休息。"
TEST = "附近工地每天夜里十二点还在施工，打桩机噪音很大，吵得居民睡不着觉，希望有关部门管一管。"
LAMP = "小区门口的路灯坏了一个多月了，晚上出行很不方便，老人走路差点摔倒。"
BINS = "楼下垃圾桶三天没人清理，臭味很大，夏天招苍蝇。"


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_only_messages_in_no_file_by_id_or_text_are_left(tmp_path):
    train = _jsonl(tmp_path / "train.jsonl", [{"id": "t1", "title": "广场舞", "text": NOISE, "label": "W05"}])
    test = _jsonl(tmp_path / "test.jsonl", [{"id": "h1", "title": "工地", "text": TEST, "label": "W05"}])
    ids_only = tmp_path / "held-ids.csv"  # a held-out file may list ids only
    ids_only.write_text("id\nh2\n", encoding="utf-8")
    corpus = _jsonl(tmp_path / "corpus.jsonl", [
        {"id": "t1", "title": "广场舞", "text": NOISE},  # a training row
        {"id": "h1", "title": "工地", "text": TEST},  # a test row
        {"id": "h2", "title": "路灯", "text": LAMP},  # held out by its id only
        {"id": "c-copy", "title": "工地", "text": TEST + "谢谢。"},  # a near-copy of the test row under another id
        {"id": "c-copy2", "title": "路灯", "text": LAMP + "请尽快修。"},  # a near-copy of the id-only held-out message
        {"id": "held:h2", "title": "路灯", "text": LAMP + "谢谢。"},  # another, whose id reads like an internal one
        {"id": "c-empty", "title": "", "text": ""},
        {"id": "c-new", "title": "垃圾", "text": BINS},
        {"id": "c-new", "title": "垃圾", "text": "同一编号的第二条"},  # an id the corpus repeats: its first message
    ])
    messages, counts = messages_not_held([corpus], [train, test, ids_only])
    assert [(m["id"], m["text"]) for m in messages] == [("c-new", BINS)]
    assert counts == {"messages": 7, "skipped": 1, "held_out_ids": 3, "near_copies": 3}


def test_classical_self_training_reads_no_copy_of_a_held_out_message(tmp_path):
    """`chuishao train --corpus`: the corpus messages it pseudo-labels leave out the copies of held-out texts, those of
    a held-out file that lists ids only included (their text is the corpus message with that id)."""
    from typer.testing import CliRunner

    from chuishao.cli import app
    from chuishao.models.persistence import read_manifest

    mini = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "labelled-mini.jsonl"
    test = _jsonl(tmp_path / "test.jsonl", [{"id": "h1", "title": "工地", "text": TEST, "label": "W05"}])
    ids_only = tmp_path / "held-ids.csv"
    ids_only.write_text("id\nh2\n", encoding="utf-8")
    corpus = _jsonl(tmp_path / "corpus.jsonl", [
        {"id": "h2", "title": "路灯", "text": LAMP},
        {"id": "c-copy", "title": "工地", "text": TEST + "谢谢。"},
        {"id": "c-copy2", "title": "路灯", "text": LAMP + "请尽快修。"},
        {"id": "c-new", "title": "垃圾", "text": BINS},
        {"id": "c-new2", "title": "广场舞", "text": NOISE},
    ])
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("features: {min_df: 1, max_features: null}\nclassifier: {calibration_folds: 2}\n", encoding="utf-8")
    out = tmp_path / "model"
    result = CliRunner().invoke(app, ["train", str(mini), "-o", str(out), "--config", str(cfg), "--corpus", str(corpus),
                                      "--exclude", str(test), "--exclude", str(ids_only)])
    assert result.exit_code == 0, result.output
    assert read_manifest(out)["unlabelled_docs"] == 2  # c-new and c-new2
