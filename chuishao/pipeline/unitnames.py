"""Is the text before a level word (村, 社区, 居委会, 镇, 乡, 街道) the name of a unit, and where does that name start?

One rule for the place extractor (a unit in no list) and for tools/build_example_gazetteer.py (names read from
the corpus). "全体村民", "下属村", "几大社区", "现老里村", "联合银兴社区", "山区农村": the characters before the
level word are not all the unit's name. The words right before it are read with jieba's dictionary and
part-of-speech tags (rjieba, the Rust port, when installed): the name is the run of words before the level word,
back to a word that cannot be part of a name (a pronoun, preposition, conjunction, particle, adverb, verb or
time word of two or more characters, a function character, a generic word such as 全体/地方/下属, a count such as
一个), at most ``longest`` characters; single scope characters at its front (现, 原, 几, 全, 各 ...) are dropped.
A level word that ends a common word (农村, 度假村, 城镇, 家乡) names no unit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

# common words that end in a level word: no unit is named ("偏远农村", "旅游度假村", "城乡结合部", "西塘古镇")
GENERIC_COMPOUNDS = frozenset({
    "农村", "乡村", "城中村", "度假村", "新农村", "自然村", "行政村", "建制村", "建制镇", "城乡", "家乡", "故乡",
    "老乡", "下乡", "回乡", "异乡", "他乡", "古镇", "小镇", "重镇", "名镇", "和谐社区", "智慧社区", "所在社区",
    "所在街道",
})
# ... and those that are a word only standing alone: "全村", "集镇", "本乡", but 吴集镇, 云集镇 are towns
GENERIC_ALONE = frozenset({
    "全村", "本村", "该村", "各村", "邻村", "同村", "整村", "村村", "城镇", "乡镇", "集镇", "本镇", "全镇", "该镇",
    "各镇", "本乡", "全乡", "该乡", "各乡", "同乡", "外乡", "该社区", "本社区", "全社区", "各社区", "新社区", "大社区",
    "老社区", "本街道", "该街道", "各街道", "全街道",
})
# words that are no part of a name: scope, quantity, place words and generic nouns
GENERIC_WORDS = frozenset({
    "全体", "下属", "所属", "地方", "当地", "本地", "外地", "附近", "周边", "周围", "旁边", "对面", "隔壁", "城乡",
    "农村", "乡村", "我们", "你们", "他们", "咱们", "大家", "所有", "整个", "其他", "其它", "相关", "有关", "辖区",
    "管辖", "时候", "现在", "目前", "以前", "原来", "一些", "很多", "许多", "部分", "多数", "大多数", "少数",
    "沿线", "沿途", "万人",
})
# single characters that open a phrase rather than a name when they stand first ("现老里村": now 老里村)
SCOPE_CHARS = frozenset("现原几全各每本该此这那某诸多")
# function characters: never inside a name
FUNCTION_CHARS = frozenset("的了在我是们这那个有和与及对被将把从到向给等都也就所为其该本每各某于请问您你他她它啊吗呢吧"
                           "往去来住至由经让使想能会应需已又再还很没即且并或而但若如")
# jieba tags of words (two characters or more) that are no part of a name: pronouns, prepositions, conjunctions,
# particles ...; further from the level word also verbs, adverbs, adjectives, time and place words ("请问百善台社区"),
# while right before it they may be a name (前进村, 光明村)
_STOP_TAGS = ("r", "p", "c", "u", "y", "e", "o")
_STOP_TAGS_FURTHER = (*_STOP_TAGS, "v", "d", "t", "a", "b", "f", "q", "z")
# a unit's level word ends the name before it ("瑶琳镇下村" is no 镇下村), and so does a village group or team
# ("八组一村民", "马王队火炬村")
LEVEL_WORDS = frozenset({"省", "市", "区", "县", "旗", "街道", "镇", "乡", "社区", "村", "居委会", "办事处", "组", "队"})
# a count ("一个", "2000多") or a village group ("八组", "12组"): groups are below the levels named
_COUNT = re.compile(r"^[0-9一二两三四五六七八九十百千几多每某半]+[个些组多余]$|\d")
_WINDOW = 10  # characters before a level word read: a name is short


@lru_cache(maxsize=1)
def _tagger() -> Callable[[str], list[tuple[str, str]]]:
    try:
        import rjieba

        tokenizer = rjieba.Jieba()
        return lambda text: tokenizer.tag(text, False)
    except ImportError:  # the reference jieba: same dictionary and tags, slower
        import logging

        import jieba
        import jieba.posseg  # type: ignore[import-untyped]

        jieba.setLogLevel(logging.WARNING)
        return lambda text: [(p.word, p.flag) for p in jieba.posseg.cut(text, HMM=False)]


def prepare() -> None:
    """Load the word tagger now (about a second, once per process) rather than on the first unit read."""
    _tagger()


def _is_name_char(ch: str) -> bool:
    return ("\u4e00" <= ch <= "\u9fff" or (ch.isascii() and ch.isalnum())) and ch not in FUNCTION_CHARS


def _stops(word: str, tag: str, first: bool, strict: bool = False) -> bool:
    if word in GENERIC_WORDS or word in LEVEL_WORDS or _COUNT.match(word) or not all(_is_name_char(ch) for ch in word):
        return True
    if strict:  # alone, any verb, adverb or adjective ends the name ("影响社区形象")
        return len(word) >= 2 and tag.startswith(_STOP_TAGS_FURTHER)
    return len(word) >= 2 and tag != "vn" and tag.startswith(_STOP_TAGS if first else _STOP_TAGS_FURTHER)


def generic_compound(text: str, at: int, level_word: str, strict: bool = False) -> bool:
    """Whether the level word at ``at`` ends a common word ("农村", "度假村", "城镇"): then it names no unit.
    ``strict``: also where such a word follows other characters ("吹南风全村", where 吴集镇 is a town)."""
    end = at + len(level_word)
    for k in (1, 2, 3):
        if at - k < 0:
            break
        word = text[at - k:end]
        if word in GENERIC_COMPOUNDS:
            return True
        if word in GENERIC_ALONE and (strict or at - k == 0 or not _is_name_char(text[at - k - 1])):
            return True
    return False


def name_start(text: str, at: int, floor: int = 0, longest: int = 4, strict: bool = False) -> int | None:
    """Where the name of the unit whose level word starts at ``at`` begins (not before ``floor``), or None when the
    words before it are no name of 2 to ``longest`` characters. ``strict`` (a unit written alone, after no known
    one): a verb, adverb or adjective right before the level word ends the name too ("维护村民", "获得社区")."""
    lo = max(floor, at - _WINDOW)
    if at - lo < 2:
        return None
    words = _tagger()(text[lo:at])
    size = 0
    kept: list[str] = []
    for word, tag in reversed(words):
        if _stops(word, tag, not kept, strict) or size + len(word) > longest:
            break
        kept.append(word)
        size += len(word)
    name = "".join(reversed(kept))
    while len(name) > 2 and name[0] in SCOPE_CHARS:  # "现老里" -> 老里 ("大坪" keeps its 大)
        name = name[1:]
    if len(name) < 2 or name[0] in SCOPE_CHARS:  # "几大社区"
        return None
    return at - len(name)


_GENERIC_FIRST = frozenset(word[0] for word in GENERIC_WORDS)


def opens_with_generic_word(name: str) -> bool:
    """Whether a name (without its level word) opens with a generic word: "地方" of 地方镇, "全体" of 全体村."""
    if not name or (name[0] not in _GENERIC_FIRST and not _COUNT.match(name[:2])):
        return False  # no generic word starts so: no need to read it (the national list asks 30,000 times)
    words = _tagger()(name)
    return bool(words) and (words[0][0] in GENERIC_WORDS or _COUNT.match(words[0][0]) is not None)
