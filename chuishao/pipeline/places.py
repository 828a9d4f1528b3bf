"""Where a message is: its district, street and community in a city's gazetteer, and the compound or road.

The gazetteer matching is the one hand-written part: every name and alias of the gazetteer goes into
an Aho-Corasick automaton (pyahocorasick), the text is scanned once, overlapping hits keep the
leftmost-longest, and the most specific place whose chain (district > street > community) agrees
with the most mentions wins; a name two districts share is settled by the district mentioned.
Traditional characters are read through OpenCC. A province other than the gazetteer's fills only
``province`` (and ``city`` when jionlp, the optional ``places`` extra, reads one after it).
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import ahocorasick

from chuishao.gazetteer import Entry, Gazetteer

# China's provincial-level divisions, and how messages write them: a national list, not a city's data.
PROVINCES: dict[str, tuple[str, ...]] = {
    "北京市": ("北京",), "天津市": ("天津",), "上海市": ("上海",), "重庆市": ("重庆",),
    "河北省": ("河北",), "山西省": ("山西",), "辽宁省": ("辽宁",), "吉林省": ("吉林",), "黑龙江省": ("黑龙江",),
    "江苏省": ("江苏",), "浙江省": ("浙江",), "安徽省": ("安徽",), "福建省": ("福建",), "江西省": ("江西",),
    "山东省": ("山东",), "河南省": ("河南",), "湖北省": ("湖北",), "湖南省": ("湖南",), "广东省": ("广东",),
    "海南省": ("海南",), "四川省": ("四川",), "贵州省": ("贵州",), "云南省": ("云南",), "陕西省": ("陕西",),
    "甘肃省": ("甘肃",), "青海省": ("青海",), "台湾省": ("台湾",), "内蒙古自治区": ("内蒙古",),
    "广西壮族自治区": ("广西",), "西藏自治区": ("西藏",), "宁夏回族自治区": ("宁夏",),
    "新疆维吾尔自治区": ("新疆",), "香港特别行政区": ("香港",), "澳门特别行政区": ("澳门",),
}
OUTSIDE = "(outside the gazetteer)"
MAX_CHARS = 4000  # a place is named early; a 100,000-character paste must not stall a worker

# Compounds, roads and landmarks: a name of 2-8 characters before one of these words.
_PLACE_SUFFIX = ("小区", "花园", "家园", "新村", "公寓", "大厦", "广场", "商城", "市场", "公园", "大道", "路", "巷", "街")
_PLACE = re.compile("(?:" + "|".join(_PLACE_SUFFIX) + ")(?![道区])")  # 街道 is a street, 路区 is not a road
# characters that end a place name read backwards ("我们小区", "该路段" are no names)
_NOT_NAME = set("的了在我是们这那个有和与及对被将把从到向给等都也就所为其该本每各某于请问您你他她它啊吗呢吧"
                "上下外前后边旁内中附近住到至往去来位处条段号栋楼幢单元室"
                "望快求映诉决没很还又再已想能会应需让使")
_FULL_WIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


@lru_cache(maxsize=1)
def _t2s() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


@dataclass(frozen=True)
class Mention:
    surface: str  # as written in the message
    start: int
    entries: tuple[int, ...]  # gazetteer entries it names (several when two places share the name)
    province: str | None = None  # set when it names a province instead

    @property
    def end(self) -> int:
        return self.start + len(self.surface)


class PlaceExtractor:
    """The ``jurisdiction`` annotator: ``extract(title, text)`` gives the place a message names."""

    name = "jurisdiction"

    def __init__(self, gazetteer: Gazetteer, max_chars: int = MAX_CHARS) -> None:
        self.gazetteer = gazetteer
        self.max_chars = max_chars
        self._home = set(gazetteer.provinces.values())
        automaton = ahocorasick.Automaton()
        surfaces: dict[str, tuple[list[int], str | None]] = {}
        for province, short in PROVINCES.items():
            for surface in (province, *short):
                surfaces[surface] = ([], province)
        for surface, province in gazetteer.provinces.items():
            surfaces[surface] = ([], province)
        for entry in gazetteer.entries:
            for surface in {entry.name, *entry.aliases}:
                surfaces.setdefault(surface, ([], None))[0].append(entry.index)
        for surface, (entries, named) in surfaces.items():
            # a gazetteer place named like a province (北京市 as a city) is the place
            automaton.add_word(surface, (surface, tuple(entries), None if entries else named))
        automaton.make_automaton()
        self._automaton = automaton

    # ---- the annotator ----------------------------------------------------------------------------
    def annotate(self, title: str | None, text: str) -> dict[str, object]:
        return self.extract(title, text)

    def extract(self, title: str | None, text: str) -> dict[str, object]:
        """``{province, city, district, street, community, place, office, matched, confidence, candidates}``;
        all null (``matched`` empty, ``candidates`` 0) when the message names no place."""
        original = self._joined(title, text)
        mentions = self.mentions_in(original)
        result: dict[str, object] = {"province": None, "city": None, "district": None, "street": None,
                                     "community": None, "place": _place(self._normalised(original), mentions), "office": None,
                                     "matched": [], "confidence": None, "candidates": 0}
        places = [m for m in mentions if m.entries]
        if places:
            return self._inside(result, places, mentions)
        outside = [m for m in mentions if m.province is not None and m.province not in self._home]
        if outside:
            first = outside[0]
            result.update(province=first.province, city=_city_after(self._normalised(original), first),
                          matched=list(dict.fromkeys(f"{m.surface} {OUTSIDE}" for m in outside)), confidence=1.0,
                          candidates=len({m.province for m in outside}))
        elif mentions:  # only the gazetteer's own province: named, but no place in it
            result.update(province=mentions[0].province, matched=list(dict.fromkeys(m.surface for m in mentions)),
                          confidence=1.0)
        return result

    def mentions(self, title: str | None, text: str) -> list[tuple[str, str]]:
        """(surface as written, level) of each gazetteer place or province named, in text order."""
        out = []
        for m in self.mentions_in(self._joined(title, text)):
            if m.entries:
                levels = {self.gazetteer.entries[i].level for i in m.entries}
                out.append((m.surface, min(levels, key=("community", "street", "district", "city").index)))
            else:
                out.append((m.surface, "province"))
        return out

    # ---- matching ---------------------------------------------------------------------------------
    def _joined(self, title: str | None, text: str) -> str:
        joined = f"{title}\n{text}" if title else text
        return joined[: self.max_chars]

    def _normalised(self, text: str) -> str:
        """Simplified, half-width text of the same length (so offsets point into the original)."""
        converted = _t2s().convert(text.translate(_FULL_WIDTH))
        return converted if len(converted) == len(text) else text.translate(_FULL_WIDTH)

    def mentions_in(self, original: str) -> list[Mention]:
        text = self._normalised(original)
        hits = [(end - len(surface) + 1, end + 1, entries, province)
                for end, (surface, entries, province) in self._automaton.iter(text)]
        hits.sort(key=lambda h: (h[0], -(h[1] - h[0])))  # leftmost, then longest
        out: list[Mention] = []
        taken_to = 0
        for start, end, entries, province in hits:
            if start < taken_to:
                continue  # inside a longer (or earlier) name: 萧山 in 萧山区
            out.append(Mention(original[start:end], start, entries, province))
            taken_to = end
        return out

    def _inside(self, result: dict[str, object], places: list[Mention], mentions: list[Mention]) -> dict[str, object]:
        gz = self.gazetteer
        chains = {i: set(gz.ancestors(i)) for m in places for i in m.entries}

        def score(i: int) -> tuple[int, int]:
            support = sum(1 for m in places if chains[i].intersection(m.entries))
            return support, gz.entries[i].depth

        ranked = sorted(chains, key=lambda i: (score(i), -min(m.start for m in places if i in m.entries)), reverse=True)
        best = ranked[0]
        tied = [i for i in ranked if score(i) == score(best)]
        # distinct places named: those no other named place lies inside, and other provinces
        leaves = [i for i in chains if not any(i in chains[j] and i != j for j in chains)]
        elsewhere = {m.province for m in mentions if m.province is not None and m.province not in self._home}
        entry = gz.entries[best]
        support = score(best)[0]
        confidence = support / len(places) / len(tied)
        result.update(province=entry.province, city=entry.city, district=entry.district, street=entry.street,
                      community=entry.community, office=self._office(entry),
                      matched=list(dict.fromkeys(m.surface for m in mentions)),
                      confidence=round(confidence, 2), candidates=len(leaves) + len(elsewhere))
        return result

    def _office(self, entry: Entry) -> str | None:
        for i in self.gazetteer.ancestors(entry.index):
            office = self.gazetteer.entries[i].office
            if office:
                return office
        return None


def _place(text: str, mentions: list[Mention]) -> str | None:
    """The first compound, road or landmark named: "幸福里小区", "文三路" (not the district before it)."""
    ends = {m.end for m in mentions}
    for m in _PLACE.finditer(text):
        start = m.start()
        while start > 0 and m.start() - start < 8 and start not in ends and _is_name_char(text[start - 1]):
            start -= 1
        if m.start() - start >= 2:
            return text[start:m.end()]
    return None


def _is_name_char(ch: str) -> bool:
    return ("\u4e00" <= ch <= "\u9fff" or (ch.isascii() and ch.isalnum())) and ch not in _NOT_NAME


_CITY = re.compile(r"[\u4e00-\u9fff]{2,4}?(?:市|自治州|地区|盟)")


def _city_after(text: str, province: Mention) -> str | None:
    """The city written right after a province outside the gazetteer ("广东省深圳市"), by jionlp when installed."""
    snippet = text[province.start:province.start + 40]
    parsed = _jionlp_location(snippet)
    if parsed is not None:
        return parsed.get("city")
    m = _CITY.match(text, province.end)
    return m.group(0) if m else None


@lru_cache(maxsize=1)
def _jionlp() -> Any:
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # jionlp prints a banner on import
            import jionlp
    except ImportError:
        return None
    return jionlp


def _jionlp_location(snippet: str) -> dict[str, Any] | None:
    jio = _jionlp()
    if jio is None:
        return None
    try:
        return jio.parse_location(snippet)
    except Exception:  # noqa: BLE001 - the optional parser failing leaves the city unknown, not the message
        return None
