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
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import ahocorasick

from chuishao.gazetteer import Entry, Gazetteer
from chuishao.pipeline.unitnames import FUNCTION_CHARS, generic_compound, name_start, opens_with_generic_word
from chuishao.pipeline.unitnames import prepare as prepare_unit_names

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
STANDALONE = False  # a village or community in no list, written alone: measured on the place benchmark (docs/places.md)
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
    # an unlisted unit: the gazetteer entries of the known unit its chain hangs from (() after a division outside the
    # gazetteer, or when written alone), and the name of the unit right above it
    anchor: tuple[int, ...] = ()
    parent: str | None = None

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
    ``places`` extra) as places outside the gazetteer (when jionlp is installed; False: never).
    ``standalone``: also take a village or community in no list written on its own ("七里江村民"), not only right
    after a known unit."""

    name = "jurisdiction"

    def __init__(self, gazetteer: Gazetteer, max_chars: int = MAX_CHARS, national: bool | None = None,
                 standalone: bool = STANDALONE) -> None:
        self.gazetteer = gazetteer
        self.max_chars = max_chars
        self.standalone = standalone
        prepare_unit_names()  # the word tagger of units in no list: loaded with the rest, not on a first message
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

    @property
    def fingerprint(self) -> str:
        return (f"gazetteer {self.gazetteer.fingerprint}, national {self.national}, standalone {self.standalone}, "
                f"max_chars {self.max_chars}")

    def annotate(self, title: str | None, text: str) -> dict[str, object]:
        return self.extract(title, text)

    def extract(self, title: str | None, text: str) -> dict[str, object]:
        """``{province, city, district, street, community, place, office, matched, confidence, candidates, unlisted}``;
        all null (``matched`` and ``unlisted`` empty, ``candidates`` 0) when the message names no place."""
        original = self._joined(title, text)
        mentions = self.mentions_in(original)
        result: dict[str, object] = {"province": None, "city": None, "district": None, "street": None,
                                     "community": None, "place": _place(self._normalised(original), mentions), "office": None,
                                     "matched": [], "confidence": None, "candidates": 0, "unlisted": []}
        places = [m for m in mentions if m.entries]
        if places:
            return self._inside(result, places, mentions)
        # a village or community in no list written on its own: named, under no known place, no office known
        alone = list(dict.fromkeys(m.surface for m in mentions
                                   if m.region is not None and not m.region.listed and m.region.parent is None))
        result["unlisted"] = alone
        mentions = [m for m in mentions if m.region is None or m.region.listed]
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
        if alone:
            named = result["matched"]
            result["matched"] = [*(named if isinstance(named, list) else []), *(f"{a} {UNLISTED}" for a in alone)]
        return result

    def mentions(self, title: str | None, text: str) -> list[tuple[str, str]]:
        """(surface as written, level) of each place named, in text order: gazetteer places (city, district,
        street, community), divisions outside it (province, city, district, street) and units in no list
        written right after a known one (street, community, a natural village as community; with ``standalone``
        also villages and communities written alone)."""
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
            if _not_a_unit(text, start, end, region):
                continue
            if text[end - 1:end] == "村" and text.startswith(("社区", "居委会"), end):
                end += 2 if text.startswith("社区", end) else 3  # "青山新村社区": one unit, written whole
            out.append(Mention(original[start:end], start, entries, region))
            taken_to = end
        out = self._with_unlisted(out, original, text)
        return self._with_standalone(out, original, text) if self.standalone else out

    def _with_unlisted(self, mentions: list[Mention], original: str, text: str) -> list[Mention]:
        """Add the units in no list written right after a known one: a street/township after a district ("A7县某某镇"),
        a community/village after a district or street ("泉塘街道某某社区"), a natural village after a village
        ("竹山村樟树下村"), and so on down the chain. Only there: elsewhere "XX村" is too often no village's name."""
        out: list[Mention] = []
        for m in mentions:
            out.append(m)
            level = self._level(m)
            anchor = m.entries
            follow = m
            natural = False  # the chain is at village level: a further 村 is a natural village inside it
            while level in ("district", "street", "community") and not natural:
                found = None
                for wanted in _NEXT[level]:
                    found = _unit_after(text, follow.end, wanted)
                    if found is not None:
                        break
                if found is None:
                    break
                start, end = found
                if any(o.start < end and start < o.end for o in mentions):
                    break  # overlaps a known name: that one is kept
                natural = level == "community"
                level = wanted
                follow = Mention(original[start:end], start, (),
                                 Region(level, None, name=text[start:end], listed=False, anchor=anchor,
                                        parent=follow.surface))
                out.append(follow)
        return out

    def _with_standalone(self, mentions: list[Mention], original: str, text: str) -> list[Mention]:
        """Add the villages and communities in no list written on their own, with a clean name ("七里江村民")."""
        added: list[Mention] = []
        for found in _COMMUNITY_WORD.finditer(text):
            at = found.start()
            if (any(o.start <= at < o.end for o in (*mentions, *added))
                    or generic_compound(text, at, found.group(0), strict=True)):
                continue
            floor = max((o.end for o in (*mentions, *added) if o.end <= at), default=0)
            start = name_start(text, at, floor, strict=True)
            if start is None:
                continue
            added.append(Mention(original[start:found.end()], start, (),
                                 Region("community", None, name=text[start:found.end()], listed=False)))
        return sorted([*mentions, *added], key=lambda m: m.start) if added else mentions

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
        # units in no list written under the place chosen (its office stays the nearest listed unit's)
        unlisted = [m.surface for m in mentions if m.region is not None and not m.region.listed and best in m.region.anchor]
        support = score(best)[0]
        confidence = support / len(places) / len(tied)
        result.update(province=entry.province, city=entry.city, district=entry.district, street=entry.street,
                      community=entry.community, office=self._office(entry),
                      matched=list(dict.fromkeys(m.surface if m.entries or m.region is None or m.region.listed
                                                 else f"{m.surface} {UNLISTED}" for m in mentions)),
                      confidence=round(confidence, 2), candidates=len(leaves) + _distinct(elsewhere),
                      unlisted=list(dict.fromkeys(unlisted)))
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


# the levels that can follow a known unit, the nearest first: a district names its street, or (Teddy's messages
# often skip it) its community; a street its community; a village (administrative) its natural village
_NEXT: dict[str, tuple[str, ...]] = {"district": ("street", "community"), "street": ("community",),
                                     "community": ("community",)}
_LEVEL_WORD = {
    "street": re.compile(r"(?:街道|镇|乡)(?![长区镇])"),  # 镇长, 镇区: no unit ("我们镇上" has no name before it)
    # "滨二村社区": one unit; 村路, 村站, XX村小区 are a road, a stop, a compound
    "community": re.compile(r"(?:村社区|村居委会|社区|居委会|村)(?!小区|镇|乡|街道|[路站])"),
}
# written alone: also not 村委 (the village's committee: its name comes before), 社区用房 (rooms for a community's use)
_COMMUNITY_WORD = re.compile(r"(?:村社区|村居委会|社区|居委会|村)(?!小区|镇|乡|街道|[路站委村]|民委员会|用房)")
_GAP = 2  # characters allowed between a known unit and the next one's name: "皋埠街道联合银兴社区", "藕团乡现老里村"


def _unit_after(text: str, at: int, level: str) -> tuple[int, int] | None:
    """(start, end) of a unit of ``level`` whose name starts within _GAP characters of ``at``, else None."""
    found = _LEVEL_WORD[level].search(text, at, at + _GAP + 5 + 3)
    if found is None:
        return None
    word_at = found.start()
    if text[at - 1:at] == text[at:at + 1] and text[at:at + 1] in "县区市镇乡村":
        at += 1  # "L10县县飞山乡": a doubled level word is an artefact
    start = name_start(text, word_at, at, longest=5)
    if start is None or start - at > _GAP or not all(_is_name_char(ch) for ch in text[at:start]):
        return None
    if generic_compound(text, word_at, found.group(0)) or "局" in text[start:word_at]:
        return None  # "A3区林业局": an organ
    return start, found.end()


# a unit word that is part of a road's or river's name ("A3区大道", "C5市中路", "A1区北大道"); 路边, 河道 are no
# names, and 街 is left out: "D10县街心公园"
_ROAD_AFTER = re.compile(r"(?:[东西南北中]?(?:大道|路(?![边上口段面灯况])|河(?![道边])|大桥|公路))")
_LETTER_UNIT = re.compile(r"[A-Z]\d{1,2}[区县市]")  # the Teddy data's anonymised units


def _not_a_unit(text: str, start: int, end: int, region: Region | None) -> bool:
    """A district or city name that is not a mention there: part of a road's name, an anonymisation artefact
    ("极品A1区王", "村民大L6县意将": a letter token that replaced part of a word, glued to characters on both sides),
    or a division of the national list that is only an ordinary word there ("大学城北区域")."""
    if text[end - 1:end] not in "区县市":
        return False
    if _ROAD_AFTER.match(text, end):
        return True
    if _LETTER_UNIT.fullmatch(text, start, end):
        before, after, then = text[start - 1:start], text[end:end + 1], text[end + 1:end + 2]
        glued = _is_name_char(before) and before not in "省市区县镇乡村" and _is_name_char(after)
        return glued and (not _is_name_char(then) or then in FUNCTION_CHARS)
    return region is not None and region.listed and text[end:end + 1] == "域"


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
        # a township whose name is an ordinary word before its level word (地方镇: "地方镇府"), a county ending in
        # 社区 (台湾's 大社区: "几大社区"): in a message these are words, not places
        if name.endswith("社区") or (region.level == "street" and _ordinary_name(name)):
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


def _ordinary_name(name: str) -> bool:
    """The name before the level word opens with a word that is no name (地方镇, 全体乡)."""
    for word in _SUFFIX["street"]:
        if name.endswith(word):
            return opens_with_generic_word(name[:-len(word)])
    return False


def _division_file() -> Path | None:
    """jionlp's list of China's divisions (Apache-2.0), found without importing jionlp (seconds, a banner on stdout)."""
    spec = importlib.util.find_spec("jionlp")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "dictionary"
    # jionlp unzips its dictionaries on its first import: a fresh install has only the .zip
    for path in (folder / "china_location.txt", folder / "china_location.zip"):
        if path.is_file():
            return path
    return None


# one line per division, indented by level (province, city, county, township, village); villages are left out
_DIVISION_LINE = re.compile(r"^(\t{0,3})([^\t\r\n]+)", re.MULTILINE)


def _division_lines(path: Path) -> list[tuple[str, str | None, str | None, str | None]]:
    """(province, city, county, town) of each division down to townships."""
    out: list[tuple[str, str | None, str | None, str | None]] = []
    chain: list[str] = []
    for m in _DIVISION_LINE.finditer(_division_text(path)):
        depth = len(m.group(1))
        chain = [*chain[:depth], m.group(2).strip()]
        if depth == 0 or len(chain) != depth + 1:
            continue
        out.append((chain[0], chain[1], chain[2] if depth >= 2 else None, chain[3] if depth == 3 else None))
    return out


def _division_text(path: Path) -> str:
    if path.suffix != ".zip":
        return path.read_text(encoding="utf-8")
    with zipfile.ZipFile(path) as archive:
        return archive.read("china_location.txt").decode("utf-8")


_LEVELS = ("province", "city", "district", "street")


def _children(node: Any) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in node.items() if not k.startswith("_")] if isinstance(node, dict) else []
