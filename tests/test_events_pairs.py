"""bench/events_pairs.py scoring on an invented verdict file; the real verdicts are data/labels/event-pairs.csv."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import load_script

REPO = Path(__file__).resolve().parent.parent


def _script():
    return load_script("bench/events_pairs.py")


@pytest.fixture()
def files(tmp_path):
    pairs = tmp_path / "pairs.csv"
    rows = [  # 4 grouped (3 same), 2 near misses (1 same)
        ("1", "grouped", "a", "b", "1"), ("2", "grouped", "c", "d", "1"), ("3", "grouped", "e", "f", "1"),
        ("4", "grouped", "g", "h", "0"), ("5", "near_miss", "i", "j", "1"), ("6", "near_miss", "k", "l", "0"),
    ]
    with pairs.open("w", encoding="utf-8", newline="") as fh:
        fh.write('# {"grouped_pairs_total": 40, "near_miss_pairs_total": 10}; kind is hidden\n')
        w = csv.writer(fh)
        w.writerow(["pair", "kind", "id_a", "id_b", "similarity", "same_problem"])
        for p, k, a, b, v in rows:
            w.writerow([p, k, a, b, "0.5", v])
    events = tmp_path / "other.jsonl"  # another grouping: keeps a-b and g-h, splits c-d, e-f has no event
    ev = {"a": "E1", "b": "E1", "c": "E2", "d": "E3", "e": None, "f": None, "g": "E4", "h": "E4",
          "i": "E5", "j": "E6", "k": "E7", "l": "E7"}
    events.write_text("".join(json.dumps({"id": i, "event_id": e}) + "\n" for i, e in ev.items()), encoding="utf-8")
    return pairs, events


def test_score_scales_shares_to_populations_and_saves(files, tmp_path, monkeypatch):
    mod = _script()
    results = tmp_path / "events.json"
    results.write_text(json.dumps({"corpus": {"events": 1}}), encoding="utf-8")
    monkeypatch.setattr(mod, "RESULTS", results)
    out = mod.score(files[0], str(files[1]))
    assert out["precision"] == 0.75 and out["near_miss_same_problem_rate"] == 0.5
    # true grouped 0.75 * 40 = 30; same problems among near misses 0.5 * 10 = 5
    assert out["estimated_recall_against_near_misses"] == round(30 / 35, 3)
    lo, hi = out["precision_95ci"]
    assert 0 < lo < 0.75 < hi < 1
    assert out["compare"]["grouped_same_1"] == {"together": 1, "apart": 2}
    assert out["compare"]["grouped_same_0"] == {"together": 1}
    assert out["compare"]["near_miss_same_0"] == {"together": 1}
    saved = json.loads(results.read_text(encoding="utf-8"))
    assert saved["corpus"] == {"events": 1}  # other keys kept
    assert saved["hand_check"]["precision"] == 0.75


def test_wilson_interval():
    mod = _script()
    assert mod.wilson(0, 10)[0] == 0.0
    assert mod.wilson(10, 10)[1] == 1.0
    lo, hi = mod.wilson(190, 200)
    assert (lo, hi) == (0.91, 0.973)  # textbook Wilson 95 % for 0.95 at n = 200


def test_unjudged_pairs_are_left_out(files, tmp_path, monkeypatch):
    mod = _script()
    monkeypatch.setattr(mod, "RESULTS", tmp_path / "events.json")
    text = files[0].read_text(encoding="utf-8").replace("g,h,0.5,0", "g,h,0.5,")  # pair 4 not judged yet
    files[0].write_text(text, encoding="utf-8")
    out = mod.score(files[0])
    assert out["judged"] == 5 and out["of"] == 6 and out["precision"] == 1.0


def test_the_verdict_file_holds_ids_and_verdicts_only():
    pairs, _ = _script().read_pairs(REPO / "data" / "labels" / "event-pairs.csv")
    assert pairs and set(pairs[0]) == {"pair", "kind", "id_a", "id_b", "similarity", "same_problem"}
    assert all(p["same_problem"] in ("0", "1") for p in pairs)
    assert all(len(p["id_a"]) <= 40 and len(p["id_b"]) <= 40 for p in pairs)
