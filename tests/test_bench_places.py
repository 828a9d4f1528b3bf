"""bench/bench_places.py on a tiny invented corpus and gold file (the real one is data/labels/places-300.csv)."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import load_script

from tests.test_gazetteer import CITY


def _bench():
    return load_script("bench/bench_places.py")


@pytest.fixture()
def files(tmp_path):
    gz = tmp_path / "city.yaml"
    gz.write_text(yaml.safe_dump(CITY, allow_unicode=True), encoding="utf-8")
    corpus = tmp_path / "corpus.jsonl"
    messages = [
        {"id": "m1", "title": "东湖区投诉", "text": "柳岸街道望月社区楼下施工"},  # all found
        {"id": "m2", "title": None, "text": "西山县城关镇的路灯坏了"},  # all found
        {"id": "m3", "title": None, "text": "北岭区白沙街道的垃圾没人管"},  # not in the gazetteer: missed
        {"id": "m4", "title": None, "text": "西山县的菜市场"},  # found, gold says none: a false positive
        {"id": "m6", "title": None, "text": "西山的菜市场"},  # a bare name (alias): found, not scored
        {"id": "m5", "title": None, "text": "没有地名"},
        {"id": "other", "title": None, "text": "东湖区"},  # not in the gold file: not read
    ]
    corpus.write_text("".join(json.dumps(m, ensure_ascii=False) + "\n" for m in messages), encoding="utf-8")
    gold = tmp_path / "gold.csv"
    gold.write_text("id,district,street,community\n"
                    "m1,东湖区,柳岸街道,望月社区\n"
                    "m2,西山县,城关镇,\n"
                    "m3,北岭区,白沙街道,\n"
                    "m4,,,\n"
                    "m5,,,\n"
                    "m6,,,\n", encoding="utf-8")
    return gz, corpus, gold


def test_bench_scores_recall_and_precision(files, tmp_path, capsys):
    gz, corpus, gold = files
    out = tmp_path / "places.json"
    assert _bench().main(["--gold", str(gold), "--corpus", str(corpus), "--gazetteer", str(gz), "--no-national",
                          "-o", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["messages"] == 6
    assert result["district_gold"] == 3 and result["district_recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert result["street_community_gold"] == 4 and result["street_community_recall"] == pytest.approx(3 / 4, abs=1e-4)
    assert result["false_positives"] == 1 and result["precision"] == pytest.approx(5 / 6, abs=1e-4)
    assert result["met"] == {"district_recall": False, "street_community_recall": False, "precision": False}
    assert {e["id"] for e in result["errors"]} == {"m3", "m4"}
    assert '"district_recall"' in capsys.readouterr().out


def test_bench_refuses_bad_gold_files(files, tmp_path):
    gz, corpus, _ = files
    bench = _bench()
    assert bench.main(["--gold", str(tmp_path / "none.csv"), "--corpus", str(corpus)]) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("id,district\nm1,东湖区\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="missing column"):
        bench.main(["--gold", str(bad), "--corpus", str(corpus), "--gazetteer", str(gz), "-o", str(tmp_path / "o.json")])
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("id,district,street,community\nzz,,,\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="not in"):
        bench.main(["--gold", str(unknown), "--corpus", str(corpus), "--gazetteer", str(gz), "-o", str(tmp_path / "o.json")])


def test_bench_scores_only_the_ids_asked(files, tmp_path):
    gz, corpus, gold = files
    ids = tmp_path / "ids.txt"
    ids.write_text("# the held-out ids\nm1\n\nm4\n", encoding="utf-8")
    out = tmp_path / "places.json"
    bench = _bench()
    assert bench.main(["--gold", str(gold), "--ids", str(ids), "--corpus", str(corpus), "--gazetteer", str(gz),
                       "--no-national", "-o", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["messages"] == 2 and result["ids"].endswith("ids.txt")
    assert result["district_gold"] == 1 and result["district_recall"] == 1.0
    assert result["false_positives"] == 1 and {e["id"] for e in result["errors"]} == {"m4"}
    assert result["standalone"] is False  # the extractor's default
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("m1\nzz\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="without a row in the gold file"):
        bench.main(["--gold", str(gold), "--ids", str(unknown), "--corpus", str(corpus), "--gazetteer", str(gz),
                    "-o", str(out)])
    assert bench.main(["--gold", str(gold), "--ids", str(tmp_path / "none.txt"), "--corpus", str(corpus)]) == 2
