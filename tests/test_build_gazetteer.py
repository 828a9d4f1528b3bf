"""tools/build_example_gazetteer.py on invented messages: the units it reads, and the junk the shared name rule
(chuishao/pipeline/unitnames.py) keeps out."""

from __future__ import annotations

import yaml
from conftest import load_script

from chuishao.gazetteer import Gazetteer


def _tool():
    return load_script("tools/build_example_gazetteer.py")


def test_units_after_known_ones_without_prefix_words_or_generic_names(tmp_path):
    texts = ["A7县泉塘街道泉星社区的路灯坏了", "A7县泉塘街道全体村民反映", "A7县泉塘街道下属村的农民",
             "A7县地方镇府不出面", "A7县泉塘街道青山新村社区", "A7县泉塘街道现老里村低保", "A7县吴集镇新坪村"]
    rows = [{"id": str(i), "source": "teddy", "title": "", "text": t} for i, t in enumerate(texts)]
    built = _tool().build(rows)
    (a7,) = [d for c in built["cities"] for d in c["districts"] if d["name"] == "A7县"]
    streets = {s["name"]: [c["name"] for c in s.get("communities", [])] for s in a7["streets"]}
    assert streets == {"泉塘街道": ["泉星社区", "老里村", "青山新村社区"], "吴集镇": ["新坪村"]}
    path = tmp_path / "built.yaml"
    path.write_text(yaml.safe_dump(built, allow_unicode=True), encoding="utf-8")
    assert Gazetteer.load(path).summary()["community"] == 4  # a valid gazetteer
