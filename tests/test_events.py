"""Event grouping: signatures equal datasketch's, paraphrases join, topic / place / time split, bad input kept."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from chuishao.analysis.events import group, place_key
from chuishao.analysis.events_config import EventsConfig
from chuishao.analysis.minhash import block_key, normalise, shingle_hash, shingles, signatures, similarity
from chuishao.batch.events import parse_time
from chuishao.cli import app
from chuishao.errors import DataError

# Authored for these tests (no third-party text): three paraphrases of one night-work complaint, two of a
# water cut, and an unrelated message.
NIGHT = ["工地夜间施工扰民 幸福路地铁工地每天晚上十一点以后还在打桩，噪音特别大，孩子根本睡不着，请相关部门管一管。",
         "夜间施工噪音 幸福路地铁工地每天晚上十一点以后还在打桩施工，噪音太大了，孩子睡不着觉，希望有关部门管管。",
         "工地半夜施工 幸福路地铁工地每天晚上十一点后仍在打桩，噪音非常大，家里孩子根本睡不着，请相关部门处理。"]
WATER = ["小区停水 我们小区从昨天早上开始停水，到现在也没有来水，物业说不清楚原因，家里老人孩子生活很不方便。",
         "小区停水 我们小区从昨天早上就开始停水了，到现在还没有来水，物业也说不清楚原因，老人孩子很不方便。"]
OTHER = "咨询社保 请问灵活就业人员的医疗保险怎么在网上缴费？缴费基数是多少？"
DAY = 86400.0


def _group(texts, topics, places, times=None, config=None):
    config = config or EventsConfig()
    sigs = signatures([normalise(t) for t in texts], config.num_perm, config.seed, config.shingle)
    blocks = np.array([block_key(t, p) for t, p in zip(topics, places, strict=True)], dtype=np.uint64)
    return group(sigs, blocks, None if times is None else np.array(times, dtype=float), config)


@pytest.mark.parametrize("use_kernel", [True, False])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_signatures_equal_datasketch(n, use_kernel):
    datasketch = pytest.importorskip("datasketch")
    texts = [normalise(t) for t in [*NIGHT, *WATER, OTHER, "", "楼", "楼道"]]
    sigs = signatures(texts, num_perm=32, seed=7, n=n, batch=3, use_kernel=use_kernel)  # batches that split the list
    for text, sig in zip(texts, sigs, strict=True):
        m = datasketch.MinHash(num_perm=32, seed=7, hashfunc=shingle_hash)
        m.update_batch(shingles(text, n))
        assert np.array_equal(m.hashvalues, sig), text


def test_normalise_drops_punctuation_and_long_numbers_only():
    assert normalise("Ａ３区，3号楼！电话 138-0000-1234，２０２６年") == "a3区3号楼电话0年"
    assert normalise("  ，。！") == ""


def test_similarity_of_empty_texts_is_zero():
    sigs = signatures(["", ""])
    assert similarity(sigs[0], sigs[1]) == 0


def test_paraphrases_join_and_unrelated_stay_apart():
    labels = _group([*NIGHT, *WATER, OTHER], ["W05"] * 3 + ["W13"] * 2 + ["OTHER"], ["和平街道"] * 6)
    assert labels.tolist() == [0, 0, 0, 1, 1, 2]


def test_same_text_other_topic_or_place_splits():
    labels = _group([NIGHT[0]] * 4, ["W05", "W06", "W05", "W05"], ["和平街道", "和平街道", "月坛街道", None])
    assert labels.tolist() == [0, 1, 2, 3]


def test_unknown_place_joins_only_unknown():
    labels = _group([NIGHT[0], NIGHT[1], NIGHT[2]], ["W05"] * 3, [None, None, "和平街道"])
    assert labels[0] == labels[1] != labels[2]


def test_time_window_splits_and_untimed_join_by_text():
    times = [0.0, 2 * DAY, 40 * DAY, np.nan, np.nan]
    labels = _group([NIGHT[0], NIGHT[1], NIGHT[0], NIGHT[2], NIGHT[0]], ["W05"] * 5, ["和平街道"] * 5, times)
    assert labels[0] == labels[1] != labels[2]
    assert labels[3] == labels[4] not in (labels[0], labels[2])  # no time: join each other only, bridge nothing
    no_window = _group([NIGHT[0], NIGHT[0]], ["W05"] * 2, ["和平街道"] * 2, [0.0, 400 * DAY],
                       EventsConfig(window_days=None))
    assert no_window[0] == no_window[1]


def test_threshold_decides():
    strict = _group(NIGHT[:2], ["W05"] * 2, ["x"] * 2, config=EventsConfig(threshold=0.99))
    assert strict[0] != strict[1]


def test_grouping_is_deterministic_and_numbered_by_first_row():
    texts = [OTHER, *NIGHT, *WATER] * 3
    topics = ["OTHER", "W05", "W05", "W05", "W13", "W13"] * 3
    a = _group(texts, topics, ["p"] * len(texts))
    b = _group(texts, topics, ["p"] * len(texts))
    assert a.tolist() == b.tolist()
    assert a[0] == 0 and sorted(set(a.tolist())) == list(range(a.max() + 1))
    firsts = [a.tolist().index(k) for k in range(a.max() + 1)]
    assert firsts == sorted(firsts)


def test_invalid_rows_join_nothing():
    config = EventsConfig()
    sigs = signatures([normalise(t) for t in [NIGHT[0], NIGHT[0], NIGHT[0]]], config.num_perm, config.seed, config.shingle)
    blocks = np.full(3, block_key("W05", "p"), dtype=np.uint64)
    labels = group(sigs, blocks, None, config, valid=np.array([True, False, True]))
    assert labels.tolist() == [0, -1, 0]


def test_place_key_levels():
    place = {"district": "东城区", "street": "和平街道", "community": "幸福里社区"}
    assert place_key(place) == "东城区/和平街道"
    assert place_key(place, "community") == "东城区/和平街道/幸福里社区"
    assert place_key({"district": "东城区", "street": None}) == "东城区"
    assert place_key({"street": "和平街道"}) is None  # a street without its district is not a key
    assert place_key("  ") is None and place_key(None) is None


def test_parse_time():
    assert parse_time("2026-11-01 00:00") == parse_time("2026/11/01") == parse_time(1793491200) == 1793491200.0
    assert parse_time(1793491200000) == 1793491200.0  # milliseconds
    assert parse_time("") is None
    for bad in ("yesterday", True, float("nan"), [1]):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(DataError, match="bands"):
        EventsConfig.load(num_perm=96, bands=7)
    bad = tmp_path / "events.yaml"
    bad.write_text("threshold: 2\nwindow: 3\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"threshold.*window|window.*threshold"):
        EventsConfig.load(bad)
    good = tmp_path / "ok.yaml"
    good.write_text("threshold: 0.6\n", encoding="utf-8")
    assert EventsConfig.load(good, window_days=3).model_dump()["threshold"] == 0.6


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_input(path):
    rows = [{"id": f"n{i}", "title": "", "text": t, "time": f"2026-11-0{i + 1} 23:00", "place": "东城区/和平街道"}
            for i, t in enumerate(NIGHT)]
    rows.append({"id": "other-place", "title": "", "text": NIGHT[0], "time": "2026-11-01 23:00", "place": "西城区/月坛街道"})
    rows += [{"id": f"w{i}", "title": "", "text": t, "place": {"district": "东城区", "street": "和平街道"}}
             for i, t in enumerate(WATER)]
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    lines += ["not json", json.dumps({"id": "empty", "text": "  "}),
              json.dumps({"id": "badtime", "text": OTHER, "time": "yesterday"}),
              json.dumps({"id": "badplace", "text": OTHER, "place": 7}),
              json.dumps({"id": "phone", "text": "联系电话13812345678，" + WATER[0], "place": "东城区/和平街道"})]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def test_events_command_keeps_every_row(tiny_model_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    n = _write_input(src)
    out, summary, page = tmp_path / "out.csv", tmp_path / "events.jsonl", tmp_path / "events.html"
    result = CliRunner().invoke(app, ["events", str(src), "-o", str(out), "--model", str(tiny_model_dir),
                                      "--summary", str(summary), "--html", str(page), "--time-field", "time",
                                      "--place-field", "place", "--whistle-size", "3"])
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o044 == (0o666 & ~_umask()) & 0o044  # as any file the user writes
    rows = list(csv.DictReader(out.open(encoding="utf-8-sig")))
    assert len(rows) == n
    by_id = {r["id"]: r for r in rows}
    assert by_id["n0"]["event_id"] == by_id["n1"]["event_id"] == by_id["n2"]["event_id"] != by_id["other-place"]["event_id"]
    assert by_id["n0"]["event_size"] == "3" and by_id["n0"]["whistle"] == "true"
    for bad in ("row-7", "empty", "badtime", "badplace"):
        assert by_id[bad]["error"] and not by_id[bad]["event_id"], bad
    assert "time" in by_id["badtime"]["error"] and "place" in by_id["badplace"]["error"]
    events = [json.loads(line) for line in summary.open(encoding="utf-8")]
    assert sum(e["count"] for e in events) == n - 4
    assert events[0]["count"] == 3 and events[0]["whistle"] and events[0]["report_ids"] == ["n0", "n1", "n2"]
    text = page.read_text(encoding="utf-8")
    assert "13812345678" not in text and "http" not in text.replace('lang="zh"', "")
    assert "东城区/和平街道" in text


def test_events_command_refuses_bad_config(tiny_model_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    _write_input(src)
    result = CliRunner().invoke(app, ["events", str(src), "-o", str(tmp_path / "o.jsonl"), "--model", str(tiny_model_dir),
                                      "--threshold", "1.5"])
    assert result.exit_code == 2 and "threshold" in result.output
    assert not (tmp_path / "o.jsonl").exists()


# ---- the place from the text (--gazetteer): the test city of tests/test_gazetteer.py ------------------------
def _placed_input(path):
    """The night-work paraphrases: three naming 东湖区柳岸街道, one 东湖区城关镇 (another street), two no place,
    and one whose place column (which wins over the text) says another place."""
    street, other = "东湖区柳岸街道", "东湖区城关镇"
    rows = [{"id": f"s{i}", "text": t.replace("幸福路", street + "幸福路"), "place": ""} for i, t in enumerate(NIGHT)]
    rows.append({"id": "other-street", "text": NIGHT[1].replace("幸福路", other + "幸福路"), "place": None})
    rows += [{"id": f"u{i}", "text": t} for i, t in enumerate(NIGHT[:2])]  # similar enough without a third
    rows.append({"id": "column", "text": NIGHT[2].replace("幸福路", street + "幸福路"), "place": "西城区/月坛街道"})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _run_placed(tiny_model_dir, tmp_path, *gazetteer):
    src = tmp_path / "placed.jsonl"
    _placed_input(src)
    out, summary, page = tmp_path / "placed.csv", tmp_path / "placed-sum.jsonl", tmp_path / "placed.html"
    result = CliRunner().invoke(app, ["events", str(src), "-o", str(out), "--model", str(tiny_model_dir), "--summary",
                                      str(summary), "--html", str(page), "--place-field", "place", *gazetteer])
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in csv.DictReader(out.open(encoding="utf-8-sig"))}
    assert len({r["topic"] for r in rows.values()}) == 1  # one topic: only the place can split them
    return rows, [json.loads(line) for line in summary.open(encoding="utf-8")], page.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def city_file(tmp_path_factory):
    import yaml

    from tests.test_gazetteer import CITY

    path = tmp_path_factory.mktemp("gz") / "city.yaml"
    path.write_text(yaml.safe_dump(CITY, allow_unicode=True), encoding="utf-8")
    return path


def test_events_place_from_the_text_groups_by_street(tiny_model_dir, city_file, tmp_path):
    rows, summary, page = _run_placed(tiny_model_dir, tmp_path, "--gazetteer", str(city_file))
    event = {k: r["event_id"] for k, r in rows.items()}
    assert all(event.values())
    assert event["s0"] == event["s1"] == event["s2"]  # the same street, named in the text
    assert event["other-street"] not in (event["s0"], event["u0"])  # another street of the same district
    assert event["u0"] == event["u1"] != event["s0"]  # no place: joins only the unknown places
    assert event["column"] not in (event["s0"], event["u0"])  # the place column wins over the text
    assert rows["s0"]["place"] == "东湖区/柳岸街道" and rows["s0"]["jurisdiction_street"] == "柳岸街道"
    assert rows["other-street"]["place"] == "东湖区/城关镇" and rows["u0"]["place"] == ""
    assert rows["column"]["place"] == "西城区/月坛街道" and rows["column"]["jurisdiction_street"] == "柳岸街道"
    biggest = summary[0]
    assert biggest["place"] == "东湖区/柳岸街道" and biggest["report_ids"] == ["s0", "s1", "s2"]
    assert {e["place"] for e in summary} == {"东湖区/柳岸街道", "东湖区/城关镇", "西城区/月坛街道", None}
    heat = page[page.index("Heat table"):]
    assert "东湖区/柳岸街道" in heat and "(unknown place)" in heat  # its rows: the streets of events of 2+


def test_events_gazetteer_none_keeps_places_from_the_column_only(tiny_model_dir, tmp_path):
    rows, summary, _ = _run_placed(tiny_model_dir, tmp_path, "--gazetteer", "none")
    event = {k: r["event_id"] for k, r in rows.items()}
    placeless = [k for k in rows if k != "column"]
    assert len({event[k] for k in placeless}) == 1  # no place read from the text: one event by text and topic
    assert event["column"] != event["s0"] and rows["column"]["place"] == "西城区/月坛街道"
    assert all(rows[k]["place"] == "" and rows[k]["jurisdiction_street"] == "" for k in placeless)
    assert sorted((e["place"] or "", e["count"]) for e in summary) == [("", 6), ("西城区/月坛街道", 1)]


def test_events_bad_gazetteer_is_a_one_line_error(tiny_model_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    _placed_input(src)
    result = CliRunner().invoke(app, ["events", str(src), "-o", str(tmp_path / "o.jsonl"), "--model", str(tiny_model_dir),
                                      "--gazetteer", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "gazetteer file not found" in result.output
    assert not (tmp_path / "o.jsonl").exists()
