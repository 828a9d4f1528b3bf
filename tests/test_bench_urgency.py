"""bench/bench_urgency.py on a tiny invented corpus and gold file: the figures it reports are the right ones."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench" / "bench_urgency.py"

CORPUS = [
    {"id": "g1", "title": "燃气泄漏", "text": "楼道里燃气泄漏了，快来人"},  # high, found
    {"id": "m1", "title": None, "text": "消防通道被堵死了"},  # medium, found
    {"id": "m2", "title": "", "text": "后院那堵墙看着不太稳当"},  # medium by the gold, missed
    {"id": "n1", "title": "火锅", "text": "火锅店收费太贵"},  # none, none
    {"id": "n2", "title": None, "text": "小区门口电线掉在地上，还带电"},  # none by the gold (say it was dead), a false alarm
    {"id": "x1", "title": None, "text": "不在金标里的消息"},
]
GOLD = "id,danger,level,cues\ng1,1,high,燃气泄漏\nm1,1,medium,消防通道\nm2,1,medium,墙\nn1,0,none,\nn2,0,none,\n"


def _run(tmp_path: Path, gold: str, *extra: str, name: str = "gold.csv") -> subprocess.CompletedProcess[str]:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in CORPUS), encoding="utf-8")
    (tmp_path / name).write_text(gold, encoding="utf-8")
    return subprocess.run([sys.executable, str(BENCH), "--gold", str(tmp_path / name), "--corpus", str(corpus),
                           "--repeats", "1", "-o", str(tmp_path / "out.json"), *extra],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def _sets(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))["quality"]


def test_the_bench_scores_an_invented_gold_file(tmp_path):
    done = _run(tmp_path, GOLD, "--show-ids")
    assert done.returncode == 0, done.stderr
    figures = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert list(figures["quality"]) == ["gold"]  # a file without split lists is one (test) set
    q = figures["quality"]["gold"]
    assert q["split"] == "test"
    assert q["messages"] == 5
    assert q["danger"] | {"precision_ci95": None, "recall_ci95": None} == {
        "precision": 0.6667, "recall": 0.6667, "tp": 2, "fp": 1, "fn": 1, "precision_ci95": None, "recall_ci95": None}
    assert q["danger"]["recall_ci95"] == [0.208, 0.939]  # Wilson, 2 of 3
    high, medium = q["per_level"]["high"], q["per_level"]["medium"]
    assert (high["precision"], high["recall"], high["tp"], high["fp"], high["fn"]) == (0.5, 1.0, 1, 1, 0)  # n2 is detected high
    assert (medium["precision"], medium["recall"], medium["tp"], medium["fp"], medium["fn"]) == (1.0, 0.5, 1, 0, 1)
    assert q["confusion"]["medium"] == {"high": 0, "medium": 1, "none": 1}
    assert q["misses"] == ["m2"] and q["false_alarms"] == ["n2"] and q["level_swaps"] == []
    assert q["target_met"] is False
    assert figures["speed"]["rows"] == len(CORPUS) and figures["speed"]["rows_per_s"] > 0


def test_a_test_set_names_no_id_unless_asked(tmp_path):
    done = _run(tmp_path, GOLD)
    assert done.returncode == 0, done.stderr
    q = _sets(tmp_path)["gold"]
    assert (q["misses"], q["false_alarms"], q["level_swaps"]) == (1, 1, 0)  # counted, not named
    assert "m2" not in done.stdout and "n2" not in done.stdout
    assert q["danger"]["tp"] == 2


def test_a_split_gold_file_is_scored_per_half_and_only_dev_names_ids(tmp_path):
    (tmp_path / "x-dev-ids.txt").write_text("g1\nm2\nn1\n", encoding="utf-8")
    (tmp_path / "x-test-ids.txt").write_text("m1\nn2\n", encoding="utf-8")
    done = _run(tmp_path, GOLD, name="x-300.csv")
    assert done.returncode == 0, done.stderr
    sets = _sets(tmp_path)
    assert list(sets) == ["x-300/dev", "x-300/test"]
    dev, test = sets["x-300/dev"], sets["x-300/test"]
    assert dev["messages"] == 3 and dev["misses"] == ["m2"] and dev["false_alarms"] == []
    assert test["messages"] == 2 and test["false_alarms"] == 1 and test["danger"]["tp"] == 1
    assert _run(tmp_path, GOLD, "--split", "dev", name="x-300.csv").returncode == 0
    assert list(_sets(tmp_path)) == ["x-300/dev"]  # tuning sees the dev half only
    assert _run(tmp_path, GOLD, "--split", "all", name="x-300.csv").returncode == 0
    assert _sets(tmp_path)["x-300/all"]["messages"] == 5


def test_a_gold_file_without_split_lists_is_left_out_of_dev(tmp_path):
    done = _run(tmp_path, GOLD, "--split", "dev")
    assert done.returncode == 0, done.stderr
    assert _sets(tmp_path) == {} and "speed only" in done.stderr


def test_ids_restrict_every_gold_file_and_must_all_be_there(tmp_path):
    (tmp_path / "ids.txt").write_text("g1\nn2\n", encoding="utf-8")
    assert _run(tmp_path, GOLD, "--ids", str(tmp_path / "ids.txt")).returncode == 0
    q = _sets(tmp_path)["gold@ids"]
    assert q["messages"] == 2 and q["false_alarms"] == ["n2"]  # an id list is a tuning set: its ids are named
    (tmp_path / "ids.txt").write_text("g1\nzz\n", encoding="utf-8")
    done = _run(tmp_path, GOLD, "--ids", str(tmp_path / "ids.txt"))
    assert done.returncode != 0 and "1 ids of the list are not in" in done.stderr


@pytest.mark.parametrize(("gold", "message"), [
    ("id,danger\ng1,1\n", "no column level"),
    ("id,danger,level,cues\ng1,1,urgent,\n", "level 'urgent' is not high, medium or none"),
    ("id,danger,level,cues\ng1,yes,high,\n", "danger 'yes' is not 1 or 0"),
    ("id,danger,level,cues\ng1,0,high,\n", "danger 0 does not agree with level high"),
    ("id,danger,level,cues\ng1,1,high,\ng1,1,high,\n", "id g1 given twice"),
    ("id,danger,level,cues\nzz,1,high,\n", "1 ids not in"),
])
def test_a_bad_gold_file_stops_the_bench_with_a_clear_message(tmp_path, gold, message):
    done = _run(tmp_path, gold)
    assert done.returncode != 0
    assert message in done.stderr
    assert not (tmp_path / "out.json").exists()
