"""Which corpus messages a student encoder may learn from (chuishao.transformer.pseudo_labels.unlabelled): none that
a labelled or held-out file holds by id or by text."""

from __future__ import annotations

import json
from pathlib import Path

from chuishao.transformer.pseudo_labels import unlabelled

NOISE = "每天晚上八点到十点小区广场舞音响声音特别大，严重扰民，老人孩子都无法休息。"
TEST = "附近工地每天夜里十二点还在施工，打桩机噪音很大，吵得居民睡不着觉，希望有关部门管一管。"


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
        {"id": "h2", "title": "路灯", "text": "小区门口的路灯坏了一个多月了，晚上出行很不方便。"},
        {"id": "c-copy", "title": "工地", "text": TEST + "谢谢。"},  # a near-copy of the test row under another id
        {"id": "c-empty", "title": "空", "text": ""},
        {"id": "c-new", "title": "垃圾", "text": "楼下垃圾桶三天没人清理，臭味很大，夏天招苍蝇。"},
        {"id": "c-new", "title": "垃圾", "text": "同一编号的第二条"},  # an id the corpus repeats: its first message
    ])
    messages, left_out = unlabelled(corpus, [train, test, ids_only])
    assert [(m["id"], m["text"]) for m in messages] == [("c-new", "楼下垃圾桶三天没人清理，臭味很大，夏天招苍蝇。")]
    assert left_out == {"new_ids": 2, "near_copies": 1}  # c-copy and c-new were not held by id; c-copy by text
