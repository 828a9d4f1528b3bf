"""chuishao/pipeline/unitnames.py: where a unit's name starts before its level word, and when there is none."""

from __future__ import annotations

import pytest

from chuishao.pipeline.unitnames import generic_compound, name_start, opens_with_generic_word


def _unit(text: str, word: str, **kwargs) -> str | None:
    at = text.rindex(word)
    start = name_start(text, at, **kwargs)
    return None if start is None else text[start:at + len(word)]


@pytest.mark.parametrize(("text", "word", "unit"), [
    ("请问百善台社区的相关领导", "社区", "百善台社区"),  # 请问: a verb ends the name
    ("造成八里排村灌溉渠道", "村", "八里排村"),
    ("物业已和凯西社区开过会", "社区", "凯西社区"),  # 和: a function character
    ("我是七里江村民", "村", "七里江村"),
    ("乡现老里村低保", "村", "老里村"),  # 现 (now) is dropped
    ("希望联合银兴社区修剪", "社区", "银兴社区"),
    ("玉环市小王村篮球场", "村", "小王村"),  # a level word ends the name
    ("大园山村八组一村民", "村", None),  # 一: too short; 八组 is a group
    ("给周围几大社区", "社区", None),
    ("关系全体村民切身利益", "村", None),
    ("瑶琳镇下属村的农民", "村", None),
    ("地方镇府不出面", "镇", None),
    ("涉及一个村", "村", None),
    ("这个方案符合2000多村民", "村", None),
    ("前进村", "村", "前进村"),  # a verb right before the level word may be a name ...
])
def test_name_start(text, word, unit):
    assert _unit(text, word) == unit


def test_strict_reading_for_a_unit_written_alone():
    assert _unit("前进村", "村", strict=True) is None  # ... but not for a unit written alone
    assert _unit("维护村民利益", "村") == "维护村"
    assert _unit("维护村民利益", "村", strict=True) is None


def test_floor_and_length():
    assert _unit("柳岸街道石榴社区", "社区", floor=4) == "石榴社区"
    assert _unit("柳岸街道石榴社区", "社区", floor=7) is None  # one character left: no name
    assert _unit("一二三四五六村", "村", longest=4) is None


def test_generic_compounds():
    def generic(text: str, word: str, strict: bool = False) -> bool:
        return generic_compound(text, text.rindex(word), word, strict)

    assert generic("偏远农村", "村") and generic("旅游度假村", "村") and generic("西塘古镇", "镇")
    assert generic("这是集镇", "镇") and not generic("吴集镇", "镇")  # 集镇 alone is a word, 吴集镇 a town
    assert generic("吹南风全村", "村", strict=True) and not generic("吹南风全村", "村")
    assert not generic("竹山村", "村")


def test_opens_with_generic_word():
    assert opens_with_generic_word("地方") and opens_with_generic_word("全体")
    assert not opens_with_generic_word("府山") and not opens_with_generic_word("")
