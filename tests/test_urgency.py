"""Urgency detection (issue 17): the bundled rules find each danger kind, false friends and negations cancel,
traditional characters and odd input are handled, and a bad rules file is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from chuishao.pipeline.urgency import (
    UrgencyDetector,
    UrgencyRulesError,
    _first_chars,
    load_rules,
    prepare,
    sort_urgent_first,
)
from chuishao.resources import default_urgency_path


@pytest.fixture(scope="module")
def detector() -> UrgencyDetector:
    return UrgencyDetector.from_file(None)


# One invented message per danger kind of the bundled file, with its expected level.
KIND_EXAMPLES = {
    "gas_leak": ("high", "3号楼二单元楼道里闻到很浓的煤气味，好像是哪家的燃气管道漏气了"),
    "fire": ("high", "小区地下车库着火了，浓烟往楼上冒"),
    "explosion": ("high", "刚才路口一家餐馆的液化气罐爆炸了，玻璃碎了一地"),
    "trapped": ("high", "幸福里5号楼电梯突然停了，现在里面有两个老人被困"),
    "collapse": ("high", "新华路路面刚刚塌陷了，一辆车陷在坑里"),
    "toxic_leak": ("high", "化工厂氯气泄漏，村里好几个人呼吸困难"),
    "live_wire_down": ("high", "大风把电线刮断了，电线掉在地上还带电"),
    "exposed_wire": ("medium", "楼道里电线裸露在外面，小孩经常经过"),
    "fire_exit_blocked": ("medium", "商场把安全出口锁住了，消防通道堆满杂物"),
    "burst_main": ("medium", "解放路自来水管爆裂，水漫到马路上"),
    "falling_object": ("medium", "7号楼外墙瓷砖脱落，下面就是人行道"),
    "building_danger": ("medium", "旁边工地挖基坑后我们这栋楼墙体开裂，越来越宽"),
    "manhole": ("medium", "人民路和中山路路口井盖丢失，晚上看不见"),
    "lift_fault": ("medium", "小区电梯运行中突然下坠好几层，物业不修还在用"),
    "tree_falling": ("medium", "台风后小区门口一棵大树倾斜，压在电线上"),
    "hazardous_storage": ("medium", "一楼商铺在店里囤积大量液化气罐和汽油"),
    "acute_symptoms": ("medium", "化工厂晚上排放废气，刺鼻的气味让居民头晕呕吐"),
    "open_pit": ("medium", "村口施工留下一个三米深的大坑，周边没有任何防护，小孩天天在旁边玩"),
}


def test_every_bundled_kind_has_an_example():
    assert {k.name for k in load_rules().kinds} == set(KIND_EXAMPLES)


@pytest.mark.parametrize("kind", sorted(KIND_EXAMPLES))
def test_each_danger_kind_is_found_at_its_level(detector, kind):
    level, text = KIND_EXAMPLES[kind]
    got = detector.annotate(None, text)
    assert got["level"] == level, got
    assert got["triggers"], got
    assert all(t in prepare(text) for t in got["triggers"])  # the message's own words, as normalised


def test_the_highest_level_wins_and_every_trigger_is_listed(detector):
    got = detector.annotate("消防通道被堵", "楼下饭店着火了")
    assert got["level"] == "high"
    assert any("消防通道" in t for t in got["triggers"]) and "着火" in got["triggers"]


@pytest.mark.parametrize("text", [
    "请问燃气费为什么涨价了，每月燃气费比去年多",  # fees
    "周末去吃火锅，火锅店很热闹",  # 火 in a false friend
    "火车站附近出租车乱收费",
    "我们小区的消防验收什么时候能通过",  # paperwork
    "小区存在安全隐患，物业管理不到位",  # a general complaint: no concrete danger
    "一旦发生火灾，后果不堪设想",  # a hypothetical
    "如果燃气泄漏怎么办，谁来负责",
    "2015年我家曾经发生过一次火灾，已经修复",  # a past event, fixed
    "村里危房改造补贴什么时候发放",  # a policy question
    "我们被噪音困扰了很久",
    "小区电梯坏了，停运一个星期了",  # a stopped lift is a nuisance, not a danger
    "3月5日晚上小区起火，烧毁两辆车",  # a fire on a stated day is over
    "2015年冬天楼下一户人家着火",  # a year in the sentence: over
    "这样下去随时可能倒塌，担心路基坍塌",  # a fear, not a collapse
    "小区的消防设施不合格，小区发生火灾",  # a fire with nothing saying it burns now: told of the past or feared
    "楼道装了漏电保护开关",  # a false friend
    "交房时发现房屋墙体开裂、空鼓。",  # a flat at handover: a quality complaint (the message scope)
    "房屋漏水空鼓开裂等质量问题",  # a list of defects
    "红树湾小区几乎每个月都水管破裂，反复维修",  # recurring, with water cuts: a nuisance
    "现实中电表箱漏电的案例不少",  # cases elsewhere
    "我家房屋因发大水已经倒塌，请求审批重建",  # a house that fell long ago, in a rebuilding request
    "申请危房改造资金，房子是危房",  # a request for rebuilding money
    "",
])
def test_false_friends_and_negations_cancel(detector, text):
    assert detector.annotate(None, text) == {"level": None, "triggers": []}


def test_a_cancel_word_only_voids_triggers_in_its_own_clause(detector):
    # the hypothetical is in another clause: the leak now still counts
    got = detector.annotate(None, "现在楼道里煤气泄漏了，如果有人抽烟就危险了")
    assert got["level"] == "high" and "煤气泄漏" in got["triggers"]


def test_a_dated_event_counts_when_the_sentence_says_it_goes_on(detector):
    # "2016年" alone would date the trapping; "到现在 … 家常便饭" says it still happens: medium (repeated trapping)
    got = detector.annotate(None, "从2016年交房到现在，业主被困电梯是家常便饭")
    assert got["level"] == "medium" and "被困" in got["triggers"]
    assert detector.annotate(None, "2016年业主被困电梯")["level"] is None


def test_a_high_kind_without_a_now_cue_counts_at_medium(detector):
    # a cave-in or a trapping told with nothing saying it is happening now: a hazard, not a life in danger now
    assert detector.annotate(None, "新华路路面塌陷，出现一个大坑")["level"] == "medium"
    assert detector.annotate(None, "新华路路面现在塌陷了，出现一个大坑")["level"] == "high"
    assert detector.annotate(None, "经常有人被困在电梯里")["level"] == "medium"
    explained = detector.explain(None, "经常有人被困在电梯里")
    assert explained == [{"trigger": "被困", "kind": "trapped", "level": "medium", "cancelled_by": None}]


def test_a_fire_needs_a_now_cue_to_count_at_all(detector):
    assert detector.annotate(None, "小区发生火灾")["level"] is None
    assert detector.explain(None, "小区发生火灾") == [
        {"trigger": "火灾", "kind": "fire", "level": "high", "cancelled_by": "now: none"}]
    assert detector.annotate(None, "小区着火了，浓烟滚滚")["level"] == "high"


def test_acute_symptoms_count_only_beside_a_smell_or_fumes(detector):
    assert detector.annotate(None, "工厂废气刺鼻，居民头晕")["level"] == "medium"
    assert detector.annotate(None, "老人头晕，去医院看病")["level"] is None
    assert detector.annotate(None, "这事让我很头痛，气味也难闻")["level"] is None  # 很头痛: troubled (ignored)


def test_a_trigger_deep_in_a_long_letter_is_background(detector):
    head = "反映小区物业收费问题。" + "物业收费不合理，" * 130  # over 1,000 characters before the trigger
    assert detector.annotate(None, "楼房墙体开裂。" + head)["level"] == "medium"
    assert detector.annotate(None, head + "楼房墙体开裂。")["level"] is None
    assert detector.explain(None, head + "楼房墙体开裂。")[0]["cancelled_by"] == "within: 1000"


def test_traditional_and_full_width_text(detector):
    got = detector.annotate("緊急", "樓道裡聞到煤氣味，電梯裡有人被困")
    assert got["level"] == "high"
    assert got["triggers"] == ["闻到煤气", "被困"]  # reported in the simplified form the rules use
    assert detector.annotate(None, "ＡＢＣ小區電線裸露")["level"] == "medium"


@pytest.mark.parametrize("title", [None, "", "反映问题"])
def test_empty_or_missing_title(detector, title):
    assert detector.annotate(title, "厨房燃气泄漏")["level"] == "high"
    assert detector.annotate(title, "")["level"] is None


def test_the_title_alone_can_flag(detector):
    assert detector.annotate("小区着火了", "请尽快处理")["level"] == "high"


def test_very_long_text_is_cut_not_refused(detector):
    got = detector.annotate(None, "着火了" + "啊" * 200_000)
    assert got["level"] == "high"


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "urgency.yaml"
    path.write_text(body, encoding="utf-8")
    return path


GOOD = "version: 1\nkinds:\n  - {name: fire, level: high, words: [着火]}\n"


@pytest.mark.parametrize(("body", "message"), [
    ("version: 1\nkinds:\n  - {name: fire, level: urgent, words: [着火]}\n", "kinds.0.level"),
    ("version: 1\nkinds:\n  - {name: fire, level: high}\n", "neither words nor patterns"),
    ("version: 1\nkinds:\n  - {name: fire, level: high, patterns: ['(着火']}\n", "not a valid regular expression"),
    ("version: 1\nkinds:\n  - {name: fire, level: high, patterns: ['着?']}\n", "matches the empty text"),
    ("version: 1\nkinds:\n  - {name: fire, level: high, words: ['']}\n", "a word is empty"),
    (GOOD + "  - {name: fire, level: medium, words: [冒烟]}\n", "named twice: fire"),
    (GOOD + "cancel:\n  - {name: past, scope: clause, words: [去年], kinds: [gass]}\n", "unknown kinds: gass"),
    (GOOD + "cancel:\n  - {name: past, scope: paragraph, words: [去年]}\n", "cancel.0.scope"),
    (GOOD + "colour: red\n", "colour"),
    ("version: 1\nkinds: []\n", "kinds"),
    ("- just\n- a list\n", "expected a mapping"),
    ("version: 1\nkinds: [\n", "not valid YAML at line"),
    ("version: 1\nkinds:\n  - {name: fire, level: high, needs_now: true, words: [着火]}\n", "need a now cue"),
    ("version: 1\nnow: {scope: sentence, words: [现在]}\n"
     "kinds:\n  - {name: fire, level: medium, needs_now: true, words: [着火]}\n", "only makes sense for high kinds"),
    ("version: 1\nkinds:\n  - {name: fire, level: high, without_now: none, words: [着火]}\n", "needs_now is not"),
    ("version: 1\nkinds:\n  - {name: fire, level: high, within: 0, words: [着火]}\n", "kinds.0.within"),
    ("version: 1\nkinds:\n  - {name: fire, level: high, words: [着火], context: {scope: clause}}\n", "a cue has neither"),
    (GOOD + "cancel:\n  - {name: past, scope: clause, words: [去年], unless: ['']}\n", "a word is empty"),
    (GOOD + "now: {scope: chapter, words: [现在]}\n", "now.scope"),
])
def test_a_bad_rules_file_is_one_clear_error(tmp_path, body, message):
    path = _write(tmp_path, body)
    with pytest.raises(UrgencyRulesError) as err:
        UrgencyDetector.from_file(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_a_missing_rules_file(tmp_path):
    with pytest.raises(UrgencyRulesError, match="urgency rules file not found"):
        UrgencyDetector.from_file(tmp_path / "nope.yaml")
    with pytest.raises(UrgencyRulesError, match="is a directory, not an urgency rules file"):
        UrgencyDetector.from_file(tmp_path)


def test_a_city_file_with_traditional_words_and_its_own_cancels(tmp_path):
    path = _write(tmp_path, GOOD.replace("[着火]", "[燒起來, 失火]") + "ignore: [失火险]\n"
                  "cancel:\n  - {name: drill, scope: sentence, words: [演習]}\n")
    det = UrgencyDetector.from_file(path)
    assert det.annotate(None, "仓库烧起来了")["level"] == "high"  # the rule's word was traditional
    assert det.annotate(None, "买了失火险")["level"] is None  # ignored
    assert det.annotate(None, "明天消防演习，模拟仓库失火")["level"] is None  # cancelled in the sentence
    assert det.annotate(None, "明天消防演习。仓库失火了")["level"] == "high"  # another sentence


def test_a_city_file_with_message_scope_unless_context_and_within(tmp_path):
    path = _write(tmp_path, "version: 1\n"
                  "cancel:\n"
                  "  - {name: handover, scope: message, words: [交房], unless: [入住]}\n"
                  "  - {name: past, scope: sentence, words: [去年], unless: [至今]}\n"
                  "kinds:\n"
                  "  - {name: crack, level: medium, words: [开裂], within: 20}\n"
                  "  - {name: fumes, level: medium, words: [头晕], context: {scope: clause, words: [气味]}}\n"
                  "  - {name: fire, level: high, words: [着火]}\n")
    det = UrgencyDetector.from_file(path)
    assert det.annotate(None, "墙体开裂。交房时就这样")["level"] is None  # handover anywhere in the message
    assert det.annotate(None, "墙体开裂。交房后入住三年")["level"] == "medium"  # unless: people live there
    assert det.annotate(None, "去年仓库着火")["level"] is None
    assert det.annotate(None, "去年仓库着火。至今还在冒烟")["level"] is None  # unless is looked for in the same span
    assert det.annotate(None, "去年开始仓库着火至今不断")["level"] == "high"
    assert det.annotate(None, "一" * 25 + "墙体开裂")["level"] is None  # past the first 20 characters
    assert det.annotate(None, "气味难闻，头晕")["level"] is None and det.annotate(None, "气味让人头晕")["level"] == "medium"


def test_the_bundled_file_is_found():
    assert default_urgency_path().is_file()


def test_sort_urgent_first_is_stable_and_takes_dicts_and_objects():
    class Answer:
        def __init__(self, id_: str, level: str | None) -> None:
            self.id = id_
            self.urgency = {"level": level, "triggers": []}

    answers = [
        {"id": "a", "urgency": None},
        {"id": "b", "urgency": {"level": "medium", "triggers": ["漏电"]}},
        {"id": "c"},
        {"id": "d", "urgency": {"level": "high", "triggers": ["着火"]}},
        {"id": "e", "urgency": {"level": "medium", "triggers": ["爆管"]}},
        {"id": "f", "urgency": {"level": "high", "triggers": ["被困"]}},
        {"id": "g", "urgency": {"level": "bogus"}},
    ]
    assert [a["id"] for a in sort_urgent_first(answers)] == ["d", "f", "b", "e", "a", "c", "g"]
    objs = [Answer("x", None), Answer("y", "high"), Answer("z", "medium")]
    assert [a.id for a in sort_urgent_first(objs)] == ["y", "z", "x"]
    flat = [("p", None), ("q", "medium"), ("r", "high")]
    assert [a[0] for a in sort_urgent_first(flat, level=lambda a: a[1])] == ["r", "q", "p"]


@pytest.mark.parametrize(("pattern", "first"), [
    ("(?:燃气|煤气)[^,]{0,6}(?:泄漏|漏气)", {"燃", "煤"}),
    ("a?b|[cd]e", {"a", "b", "c", "d"}),
    ("(?P<k0>着火|起火)|(?P<k1>x+)", {"着", "起", "x"}),
    (".x", None),  # any character: no shortcut
    ("a*", None),  # can match the empty text
    ("[^a]b", None),
    ("[a-c]x|\\d+个", {"a", "b", "c", *"0123456789"}),  # small ranges and \\d (ASCII after NFKC)
    ("[\\u4e00-\\u9fff]", None),  # a large range: no shortcut
    ("(?<=发现)漏气", {"漏"}),  # a lookbehind is zero width
    ("(?=a)b", None),
])
def test_the_lookahead_shortcut_knows_where_a_match_can_start(pattern, first):
    assert _first_chars(pattern) == first


def test_the_shortcut_changes_no_answer(detector):
    import re

    plain = re.compile(detector._triggers.pattern.split("(?:", 1)[1][:-1])
    text = "楼道燃气泄漏，电梯困人，外墙瓷砖脱落，消防通道被堵，火锅店失火，井盖丢失"
    assert [m.group() for m in detector._triggers.finditer(text)] == [m.group() for m in plain.finditer(text)]
    assert len(plain.findall(text)) >= 6


def test_explain_names_what_cancelled_a_trigger(detector):
    got = detector.explain(None, "一旦发生火灾，后果不堪设想。楼道里电线裸露")
    assert {"trigger": "火灾", "kind": "fire", "level": "high", "cancelled_by": "hypothetical: 一旦"} in got
    assert {"trigger": "电线裸露", "kind": "exposed_wire", "level": "medium", "cancelled_by": None} in got


@pytest.mark.shared
def test_the_whole_corpus_is_annotated_and_few_messages_are_flagged(detector, shared_data):
    import json

    rows = [json.loads(line) for line in (shared_data / "corpus.jsonl").open(encoding="utf-8") if line.strip()]
    got = [detector.annotate(r.get("title"), r.get("text") or "") for r in rows]
    assert len(got) == len(rows)  # no row lost, none raised
    flagged = sum(g["level"] is not None for g in got)
    # a rule that fires on everyday words would flag a large share; danger reports are a few per cent of a hotline
    assert 0 < flagged < 0.08 * len(rows), flagged
