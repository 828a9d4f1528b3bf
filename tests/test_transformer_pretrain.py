"""Masked-LM pretraining on our own messages: which messages it reads (held-out ids and their near-copies never),
and, on a tiny random encoder, that it learns (held-out masked-LM loss falls), saves a plain encoder folder without
the LM head, and that fine-tuning starts from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chuishao.errors import DataError
from chuishao.transformer.pretrain import pretraining_rows

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "labelled-mini.jsonl"


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _needs_transformer_extra():
    """torch (returned), transformers and datasets, or the test skips."""
    torch = pytest.importorskip("torch", reason="needs the transformer extra (torch)")
    pytest.importorskip("transformers", reason="needs the transformer extra (transformers)")
    pytest.importorskip("datasets", reason="needs the transformer extra (datasets)")
    return torch


def _tiny_encoder(tmp_path: Path, layers: int) -> Path:
    """A tiny random e5-layout encoder folder whose vocabulary covers the fixture's messages."""
    from chuishao.transformer.data import read_jsonl
    from chuishao.transformer.encoder_import import convert
    from chuishao.transformer.tiny import write_tiny_e5

    texts = [r["title"] + "。" + r["text"] for r in read_jsonl(FIXTURE)]
    write_tiny_e5(tmp_path / "tiny-q4.bin", texts, hidden=32, layers=layers, heads=2, ffn=64)
    convert(tmp_path / "tiny-q4.bin", tmp_path / "enc", keep_vocab_from=[FIXTURE])
    return tmp_path / "enc"


def test_held_out_ids_and_their_near_copies_stay_out(tmp_path: Path) -> None:
    letter = "小区东门外的道路上有一个很深的坑，已经两个月没有人来修，晚上骑车的人经常摔倒，请尽快处理。"
    corpus = _write(tmp_path / "corpus.jsonl", [
        {"id": "a", "title": "道路坑洼", "text": letter},
        {"id": "b", "title": "道路坑洼", "text": letter + "谢谢！"},  # a near-copy of the held-out a
        {"id": "c", "title": "噪音", "text": "楼上每天半夜装修电钻声音很大，投诉多次无果。"},
        {"id": "c", "title": "重复的编号", "text": "同一个编号的第二条消息不读。"},
        {"id": "d", "title": "", "text": ""},  # nothing to read
        {"id": "e", "title": "路灯", "text": "公园里的路灯坏了一个月。"},
    ])
    held = _write(tmp_path / "test.jsonl", [{"id": "a", "title": "道路坑洼", "text": letter, "label": "W11"}])
    rows, counts = pretraining_rows([str(corpus)], [str(held)])
    assert [r["id"] for r in rows] == ["c", "e"]
    assert rows[0]["text"].startswith("楼上")
    assert counts == {"messages": 4, "skipped": 1, "held_out_ids": 1, "near_copies": 1, "kept": 2}
    rows, counts = pretraining_rows([str(corpus)], [], limit=1)
    assert [r["id"] for r in rows] == ["a"] and counts["kept"] == 1


def test_ids_match_across_files_and_formats_and_rows_without_ids_stay_apart(tmp_path: Path) -> None:
    corpus = _write(tmp_path / "corpus.jsonl", [
        {"id": 7, "title": "路灯", "text": "公园里的路灯坏了一个月。"},
        {"id": "8", "title": "噪音", "text": "楼上每天半夜装修电钻声音很大。"},
        {"title": "无编号", "text": "没有编号的第一条消息。"},
        {"title": "无编号", "text": "没有编号的第二条消息，也要读。"},
    ])
    more = tmp_path / "more.csv"
    more.write_text("title,text\n道路,东门外道路有个深坑。\n垃圾,小区垃圾三天没人清运。\n", encoding="utf-8")
    held = tmp_path / "held.csv"
    held.write_text("id,title,text\n7,,\n8,噪音,\n", encoding="utf-8")  # ids only: no text to compare
    rows, counts = pretraining_rows([str(corpus), str(more)], [str(held)])
    assert [r["text"][:4] for r in rows] == ["没有编号", "没有编号", "东门外道", "小区垃圾"]
    assert counts["held_out_ids"] == 2 and counts["kept"] == 4


def test_a_held_out_file_of_ids_alone_leaves_those_ids_out(tmp_path: Path) -> None:
    corpus = _write(tmp_path / "corpus.jsonl", [{"id": "a", "title": "路灯", "text": "公园里的路灯坏了一个月。"},
                                                {"id": "b", "title": "噪音", "text": "楼上每天半夜装修电钻声音很大。"}])
    held = _write(tmp_path / "dev-ids.jsonl", [{"id": "a"}])
    rows, counts = pretraining_rows([str(corpus)], [str(held)])
    assert [r["id"] for r in rows] == ["b"] and counts["held_out_ids"] == 1
    with pytest.raises(DataError, match="no 'text' column"):
        pretraining_rows([str(held)], [])  # the messages to read need their text


def test_a_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        pretraining_rows([str(tmp_path / "none.jsonl")], [])


def test_nothing_left_is_an_error(tmp_path: Path) -> None:
    corpus = _write(tmp_path / "corpus.jsonl", [{"id": "a", "title": "t", "text": "路灯坏了"}])
    with pytest.raises(DataError, match="no message left to pretrain on"):
        pretraining_rows([str(corpus)], [str(corpus)])


@pytest.mark.transformer
def test_tiny_pretrain_learns_and_fine_tuning_starts_from_it(tmp_path: Path) -> None:
    torch = _needs_transformer_extra()
    from safetensors.torch import load_file
    from transformers import AutoModel

    from chuishao.transformer.data import read_jsonl
    from chuishao.transformer.finetune import FinetuneConfig, finetune
    from chuishao.transformer.pretrain import PRETRAIN_META, PretrainConfig, pretrain

    rows = read_jsonl(FIXTURE)
    _tiny_encoder(tmp_path, layers=2)
    held = _write(tmp_path / "held.jsonl", rows[:4])
    summary = pretrain(PretrainConfig(model_dir=str(tmp_path / "enc"), texts=[str(FIXTURE)], out_dir=str(tmp_path / "pt"),
                                      exclude=[str(held)], max_length=16, max_steps=30, batch_size=8, lr=3e-3,
                                      eval_fraction=0.2, threads=1, log_every=10))
    assert summary["kept"] == len(rows) - 4 and summary["held_out_ids"] == 4
    assert summary["windows"] > summary["kept"]  # 16 pieces cut the longer messages into several windows
    assert summary["steps"] == 30
    assert summary["eval_loss_after"] < summary["eval_loss_before"]
    assert json.loads((tmp_path / "pt" / PRETRAIN_META).read_text())["steps"] == 30
    assert sorted(p.name for p in (tmp_path / "pt").iterdir() if p.is_dir()) == []  # no checkpoint folder left behind

    before, after = load_file(tmp_path / "enc" / "model.safetensors"), load_file(tmp_path / "pt" / "model.safetensors")
    assert not any(k.startswith("cls.") for k in after)  # the LM head is not part of the encoder folder
    moved = [k for k in before if k in after and not torch.equal(before[k], after[k])]
    assert moved, "pretraining changed no encoder weight"
    assert AutoModel.from_pretrained(str(tmp_path / "pt")).config.hidden_size == 32

    ft = finetune(FinetuneConfig(model_dir=str(tmp_path / "pt"), train=str(FIXTURE), out_dir=str(tmp_path / "ft"),
                                 max_steps=2, batch_size=8, max_length=32, threads=1, dev_fraction=0.2))
    assert ft["labels"] == sorted({r["label"] for r in rows})


@pytest.mark.transformer
def test_cli_pretrain_refuses_a_folder_that_is_not_an_encoder(tmp_path: Path) -> None:
    _needs_transformer_extra()
    from typer.testing import CliRunner

    from chuishao.cli import app

    res = CliRunner().invoke(app, ["transformer", "pretrain", str(tmp_path), str(FIXTURE), "-o", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert res.stderr.strip() == f"chuishao: error: {tmp_path}: not an encoder folder (no config.json)"


@pytest.mark.transformer
def test_a_tokenizer_without_a_mask_token_is_refused(tmp_path: Path) -> None:
    _needs_transformer_extra()
    from chuishao.transformer.pretrain import PretrainConfig, pretrain

    settings = _tiny_encoder(tmp_path, layers=1) / "tokenizer_config.json"
    config = json.loads(settings.read_text())
    config.pop("mask_token")
    settings.write_text(json.dumps(config))
    with pytest.raises(DataError, match="no mask token"):
        pretrain(PretrainConfig(model_dir=str(tmp_path / "enc"), texts=[str(FIXTURE)], out_dir=str(tmp_path / "pt")))
