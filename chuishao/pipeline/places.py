"""Where a message is: its district, street and community in a city's gazetteer, and the compound or road.

The gazetteer matching is the one hand-written part: every name and alias of the gazetteer goes into
an Aho-Corasick automaton (pyahocorasick), the text is scanned once, overlapping hits keep the
leftmost-longest, and the most specific place whose chain (district > street > community) agrees
with the most mentions wins; a name two districts share is settled by the district mentioned.
Traditional characters are read through OpenCC. A place outside the gazetteer (another province;
with the ``places`` extra, any city, county or township of China from jionlp's division list) fills
only ``province`` and ``city``, and ``matched`` says it is outside.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
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
_SPECIFIC_FIRST = ("community", "street", "district", "city")
OUTSIDE = "(outside the gazetteer)"
UNLISTED = "(not in the gazetteer)"
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
class Region:
    """A division outside the gazetteer (a province, or from the national list): the parts known."""

    level: str  # province, city, district, street or community
    province: str | None
    city: str | None = None
    county: str | None = None
    name: str | None = None  # the division's own name
    listed: bool = True  # False: a unit written right after a known one, in no list ("泉塘街道某某社区")

    @property
    def key(self) -> tuple[str | None, ...]:
        parts = (self.province, self.city, self.county, self.name if self.level == "street" else None,
                 self.name if self.level == "community" else None)
        return parts[: ("province", "city", "district", "street", "community").index(self.level) + 1]


@dataclass(frozen=True)
class Mention:
    surface: str  # as written in the message
    start: int
    entries: tuple[int, ...]  # gazetteer entries it names (several when two places share the name)
    region: Region | None = None  # set when it names a division outside the gazetteer instead

    @property
    def end(self) -> int:
        return self.start + len(self.surface)


class PlaceExtractor:
    """The ``jurisdiction`` annotator: ``extract(title, text)`` gives the place a message names.

    ``national``: also find the cities, counties and townships of all China (jionlp's division list, the
    ``places`` extra) as places outside the gazetteer (when jionlp is installed; False: never)."""

    name = "jurisdiction"

    def __init__(self, gazetteer: Gazetteer, max_chars: int = MAX_CHARS, national: bool | None = None) -> None:
        self.gazetteer = gazetteer
        self.max_chars = max_chars
        self._home = set(gazetteer.provinces.values())
        surfaces: dict[str, tuple[list[int], Region | None]] = {}
        divisions = national_divisions() if national or national is None else {}
        self.national = bool(divisions)
        for surface, division in divisions.items():
            surfaces[surface] = ([], division)
        for province, short in PROVINCES.items():
            for surface in (province, *short):
                surfaces[surface] = ([], Region("province", province))
        for surface, province in gazetteer.provinces.items():
            surfaces[surface] = ([], Region("province", province))
        for entry in gazetteer.entries:
            for surface in {entry.name, *entry.aliases}:
                if surface in surfaces and not surfaces[surface][0]:
                    del surfaces[surface]  # the gazetteer's place, not the national one of that name
                surfaces.setdefault(surface, ([], None))[0].append(entry.index)
        automaton = ahocorasick.Automaton()
        for surface, (entries, region) in surfaces.items():
            automaton.add_word(surface, (surface, tuple(entries), None if entries else region))
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
        outside = [m for m in mentions if m.region is not None and m.region.listed
                   and (m.region.level != "province" or m.region.province not in self._home)]
        if outside:
            # the most specific division named outside the gazetteer: its province and city, no district or
            # street (no office of this city is responsible), and matched says so
            regions = [m.region for m in outside if m.region is not None]

            def rank(r: Region) -> tuple[int, int]:  # agreeing mentions, then how much of the chain is known
                return sum(1 for o in regions if r.key[: len(o.key)] == o.key), sum(p is not None for p in r.key)

            region = max(regions, key=rank)
            best = outside[regions.index(region)]
            city = region.city
            if city is None and region.level == "province":
                city = _city_after(self._normalised(original), best)
            result.update(province=region.province, city=city, confidence=1.0,
                          matched=list(dict.fromkeys(f"{m.surface} {OUTSIDE}" for m in outside)),
                          candidates=_distinct([m.region.key for m in outside if m.region]))
        elif mentions:  # only the gazetteer's own province: named, but no place in it
            result.update(province=mentions[0].region.province if mentions[0].region else None,
                          matched=list(dict.fromkeys(m.surface for m in mentions)), confidence=1.0)
        return result

    def mentions(self, title: str | None, text: str) -> list[tuple[str, str]]:
        """(surface as written, level) of each place named, in text order: gazetteer places (city, district,
        street, community), divisions outside it (province, city, district, street) and units in no list
        written right after a known one (street, community)."""
        return [(m.surface, level) for m in self.mentions_in(self._joined(title, text))
                if (level := self._level(m)) is not None]

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
        hits = [(end - len(surface) + 1, end + 1, entries, region)
                for end, (surface, entries, region) in self._automaton.iter(text)]
        hits.sort(key=lambda h: (h[0], -(h[1] - h[0])))  # leftmost, then longest
        out: list[Mention] = []
        taken_to = 0
        for start, end, entries, region in hits:
            if start < taken_to:
                continue  # inside a longer (or earlier) name: 萧山 in 萧山区
            out.append(Mention(original[start:end], start, entries, region))
            taken_to = end
        return self._with_unlisted(out, original, text)

    def _with_unlisted(self, mentions: list[Mention], original: str, text: str) -> list[Mention]:
        """Add the units written right after a known district or street that no list has: "泉塘街道某某社区"
        gives the community 某某社区. Only there: elsewhere "XX村" is too often not a village's name."""
        out: list[Mention] = []
        starts = {m.start for m in mentions}
        for m in mentions:
            out.append(m)
            level = self._level(m)
            follow = m
            while level in ("district", "street"):
                pattern = _UNLISTED_STREET if level == "district" else _UNLISTED_COMMUNITY
                at = follow.end
                if text[at:at + 1] == text[at - 1:at] and text[at - 1:at] in "县区市镇乡":
                    at += 1  # "L10县县飞山乡": a doubled level word is an artefact
                found = pattern.match(text, at)
                if found is None or found.start() in starts or not _unit_name(found.group(1)):
                    break
                level = "street" if level == "district" else "community"
                follow = Mention(original[found.start():found.end()], found.start(), (),
                                 Region(level, None, name=found.group(0), listed=False))
                if any(o.start < follow.end and follow.start < o.end for o in mentions):
                    break  # overlaps a known name: that one is kept
                out.append(follow)
        return out

    def _level(self, m: Mention) -> str | None:
        if m.entries:
            return min((self.gazetteer.entries[i].level for i in m.entries), key=_SPECIFIC_FIRST.index)
        return m.region.level if m.region is not None else None

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
        elsewhere = [m.region.key for m in mentions if m.region is not None and m.region.listed
                     and (m.region.level != "province" or m.region.province not in self._home)]
        entry = gz.entries[best]
        support = score(best)[0]
        confidence = support / len(places) / len(tied)
        result.update(province=entry.province, city=entry.city, district=entry.district, street=entry.street,
                      community=entry.community, office=self._office(entry),
                      matched=list(dict.fromkeys(m.surface if m.entries or m.region is None or m.region.listed
                                                 else f"{m.surface} {UNLISTED}" for m in mentions)),
                      confidence=round(confidence, 2), candidates=len(leaves) + _distinct(elsewhere))
        return result

    def _office(self, entry: Entry) -> str | None:
        for i in self.gazetteer.ancestors(entry.index):
            office = self.gazetteer.entries[i].office
            if office:
                return office
        return None


def _distinct(keys: list[tuple[str | None, ...]]) -> int:
    """How many distinct divisions are named: 浙江省, 衢州市柯城区 and a 府山街道 of some Zhejiang county are one
    (a part not known matches any)."""
    def agree(a: tuple[str | None, ...], b: tuple[str | None, ...]) -> bool:
        return all(x is None or y is None or x == y for x, y in zip(a, b, strict=False))

    groups: list[tuple[str | None, ...]] = []
    for key in sorted(set(keys), key=len, reverse=True):
        if not any(agree(key, g) for g in groups):
            groups.append(key)
    return len(groups)


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


# a unit in no list, right after a known district ("A7县某某镇") or street ("某某街道某某社区")
_UNLISTED_STREET = re.compile(r"([\u4e00-\u9fff]{2,4}?)(?:街道|镇|乡)(?![长上里区镇])")
_UNLISTED_COMMUNITY = re.compile(r"([\u4e00-\u9fff]{2,5}?)(?:社区|居委会|村)(?!小区|镇|乡|街道|[路站])")
_GENERIC_UNIT = frozenset({"城中", "新农", "本", "该", "全", "城乡", "小城", "农"})


def _unit_name(name: str) -> bool:
    # "县县飞山乡": a doubled level word is an artefact, not part of the name; "林业局" is an organ
    return (name not in _GENERIC_UNIT and all(_is_name_char(ch) and ch != "局" for ch in name)
            and not name.endswith(("新农", "小城")) and not name.startswith(("县", "区", "市", "镇", "乡")))


_CITY = re.compile(r"[\u4e00-\u9fff]{2,4}?(?:市|自治州|地区|盟)")


def _city_after(text: str, province: Mention) -> str | None:
    """The city written right after a province ("广东省深圳市") when the national list is not in use."""
    m = _CITY.match(text, province.end)
    return m.group(0) if m else None


# county and township names that are also ordinary words or zones ("the old town", "small town"): never a mention
_GENERIC = frozenset({"市中区", "新城区", "老城区", "城关区", "城镇", "乡镇", "集镇", "小城镇", "新城镇", "城关镇", "古镇",
                      "小镇", "城乡", "新市镇"})
_SUFFIX = {"city": ("市", "州", "盟", "地区"), "district": ("区", "县", "市", "旗"), "street": ("街道", "镇", "乡", "苏木")}
_ZONES = ("开发区", "示范区", "园区", "度假区", "景区", "管理区", "试验区", "实验区", "保护区", "新城", "小区", "古镇")


@lru_cache(maxsize=1)
def national_divisions() -> dict[str, Region]:
    """Full names of China's cities, counties and townships (jionlp's division list) -> where they are;
    a name several places share keeps only the parts they have in common. Empty without jionlp."""
    path = _division_file()
    if path is None:
        return {}
    out: dict[str, Region] = {}

    def add(name: str, region: Region) -> None:
        # 城区, 郊区: words before they are places; 3-character X城镇 (属于城镇户口) too; zones are no divisions
        if (len(name) < 3 or name in _GENERIC or (len(name) == 3 and name.endswith("城镇"))
                or name.endswith(_ZONES) or not name.endswith(_SUFFIX[region.level])):
            return
        seen = out.get(name)
        if seen is None:
            out[name] = region
        elif seen != region:
            same = [a if a == b else None for a, b in zip((seen.province, seen.city, seen.county),
                                                          (region.province, region.city, region.county), strict=True)]
            level = seen.level if seen.level == region.level else min(seen.level, region.level, key=_LEVELS.index)
            out[name] = Region(level, same[0], same[1], same[2], name=name)

    for province, city, county, town in _division_lines(path):
        if town is not None:
            add(town, Region("street", province, city, county, name=town))
        elif county is not None:
            add(county, Region("district", province, city, county, name=county))
        elif city is not None:
            add(city, Region("city", province, city, name=city))
    return out


def _division_file() -> Path | None:
    """jionlp's list of China's divisions (Apache-2.0), found without importing jionlp (seconds, a banner on stdout)."""
    spec = importlib.util.find_spec("jionlp")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "dictionary" / "china_location.txt"
    return path if path.is_file() else None


# one line per division, indented by level (province, city, county, township, village); villages are left out
_DIVISION_LINE = re.compile(r"^(\t{0,3})([^\t\r\n]+)", re.MULTILINE)


def _division_lines(path: Path) -> list[tuple[str, str | None, str | None, str | None]]:
    """(province, city, county, town) of each division down to townships."""
    out: list[tuple[str, str | None, str | None, str | None]] = []
    chain: list[str] = []
    for m in _DIVISION_LINE.finditer(path.read_text(encoding="utf-8")):
        depth = len(m.group(1))
        chain = [*chain[:depth], m.group(2).strip()]
        if depth == 0 or len(chain) != depth + 1:
            continue
        out.append((chain[0], chain[1], chain[2] if depth >= 2 else None, chain[3] if depth == 3 else None))
    return out


_LEVELS = ("province", "city", "district", "street")


def _children(node: Any) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in node.items() if not k.startswith("_")] if isinstance(node, dict) else []
