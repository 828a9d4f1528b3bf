"""The second annotator's files (issue 17 double annotation) and bench/agreement.py, which compares them with the first.

The scorer is checked on small hand-made files whose figures are worked out by hand here; the second files are
checked for form, and against ../shared/data (skipped when absent) that what they cite is written in the message.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import REPO, load_script

LABELS = REPO / "data" / "labels"


def _agreement():
    return load_script("bench/agreement.py")


def _write(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return path


PLACES_HEADER = ["id", "district", "street", "community"]
URGENCY_HEADER = ["id", "danger", "level", "cues"]


def test_place_figures_are_mention_sets_and_identical_cells(tmp_path):
    ag = _agreement()
    first = ag.read_places(_write(tmp_path / "a.csv", [
        PLACES_HEADER, ["m1", "甲区|乙县", "丙街道", ""], ["m2", "", "", ""], ["m3", "丁市", "", "戊村"],
        ["m9", "庚区", "", ""]]))  # m9: not double-annotated, left out
    second = ag.read_places(_write(tmp_path / "b.csv", [
        PLACES_HEADER, ["m1", "乙县|甲区", "丙街道", ""], ["m2", "", "", "己村"], ["m3", "丁市", "", "戊村"]]))
    out = ag.places_agreement(first, second)
    assert out["ids_shared"] == 3
    d, c = out["levels"]["district"], out["levels"]["community"]
    assert (d["mentions_both"], d["f1"], d["message_agreement"]) == (3, 1.0, 1.0)  # order within a cell is not a difference
    # community: first {戊村}, second {己村, 戊村}: P 1/2, R 1/1, F1 2/3; m2 differs
    assert (c["precision"], c["recall"], c["f1"]) == (0.5, 1.0, 0.6667)
    assert c["messages_identical"] == 2
    assert c["disagreements"] == [{"id": "m2", "first_only": [], "second_only": ["己村"]}]
    assert out["all_levels"]["messages_identical"] == 2
    assert (out["all_levels"]["messages_with_a_mention_either"], out["all_levels"]["of_those_identical"]) == (3, 2)


def test_kappa_matches_the_hand_computation_and_is_none_when_undefined(tmp_path):
    ag = _agreement()
    first = ag.read_urgency(_write(tmp_path / "a.csv", [
        URGENCY_HEADER, ["u1", "1", "medium", "消防通道"], ["u2", "1", "high", "燃气味"], ["u3", "0", "none", ""],
        ["u4", "0", "none", "燃气费"]]))
    second = ag.read_urgency(_write(tmp_path / "b.csv", [
        URGENCY_HEADER, ["u1", "1", "medium", "堵死"], ["u2", "0", "none", ""], ["u3", "0", "none", ""],
        ["u4", "0", "none", ""]]))
    out = ag.urgency_agreement(first, second)
    # danger: p_o = 3/4; p_e = 1/2*1/4 + 1/2*3/4 = 1/2; kappa = (3/4 - 1/2) / (1 - 1/2) = 0.5
    assert out["kappa_danger"] == 0.5 and out["danger_agreement"] == 0.75
    assert out["confusion_danger"]["rows_first_cols_second"] == [[2, 0], [1, 1]]
    assert out["confusion_level"]["rows_first_cols_second"] == [[2, 0, 0], [0, 1, 0], [1, 0, 0]]
    assert [d["id"] for d in out["disagreements"]] == ["u2"]
    assert out["disagreements"][0]["first"] == "1/high" and out["disagreements"][0]["second"] == "0/none"
    same = ag.urgency_agreement({"u3": first["u3"]}, {"u3": second["u3"]})
    assert same["kappa_danger"] is None and same["danger_agreement"] == 1.0  # one label only: kappa undefined


@pytest.mark.parametrize(("rows", "message"), [
    ([URGENCY_HEADER, ["u1", "1", "none", ""]], "contradicts"),
    ([URGENCY_HEADER, ["u1", "2", "none", ""]], "not 0 or 1"),
    ([URGENCY_HEADER, ["u1", "0", "low", ""]], "not one of"),
    ([URGENCY_HEADER, ["u1", "0", "none", ""], ["u1", "0", "none", ""]], "appears twice"),
    ([["id", "danger", "level"], ["u1", "0", "none"]], "header"),
])
def test_bad_urgency_files_are_refused_with_the_reason(tmp_path, rows, message):
    with pytest.raises(SystemExit, match=message):
        _agreement().read_urgency(_write(tmp_path / "bad.csv", rows))


def test_bad_place_cells_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="empty mention"):
        _agreement().read_places(_write(tmp_path / "bad.csv", [PLACES_HEADER, ["m1", "甲区||乙县", "", ""]]))


def test_second_files_cover_the_ids_the_rules_name():
    places_ids = (LABELS / "places-300-ids.txt").read_text(encoding="utf-8").split()
    ag = _agreement()
    places = ag.read_places(LABELS / "places-second-60.csv")
    assert list(places) == places_ids[::5] and len(places) == 60
    urgency = ag.read_urgency(LABELS / "urgency-second.csv")
    first_ids = set((LABELS / "urgency-300-ids.txt").read_text(encoding="utf-8").split())
    assert len(urgency) == 71 and set(urgency) <= first_ids
    for row in urgency.values():
        cues = [c for c in row["cues"].split(";") if c]
        assert len(cues) <= 4 and all(len(c) <= 16 for c in cues), row  # words, never sentences
        assert bool(cues) or row["danger"] == 0, row


@pytest.mark.shared
def test_second_files_cite_only_what_the_message_writes(shared_data: Path):
    with (shared_data / "corpus.jsonl").open(encoding="utf-8") as f:
        texts = {r["id"]: f"{r.get('title') or ''}\n{r.get('text') or ''}" for r in map(json.loads, f)}
    ag = _agreement()
    for i, cells in ag.read_places(LABELS / "places-second-60.csv").items():
        for level, mentions in cells.items():
            assert all(m in texts[i] for m in mentions), (i, level, mentions)
    for i, row in ag.read_urgency(LABELS / "urgency-second.csv").items():
        if row["danger"] == 1:
            assert all(c in texts[i] for c in row["cues"].split(";")), (i, row["cues"])
